"""What the edge agents say about themselves: availability (last will) and heartbeats.

Written by the processing thread, read by ``Hub.snapshot()`` from any thread
(hence the lock).
"""

from __future__ import annotations

import threading

from nurserycry.shared.schemas import EdgeStatus, MessageError
from nurserycry.shared.topics import ONLINE

from .ingest import Ingest


class Edges:
    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest  # rejections are counted and logged like feature messages
        self._lock = threading.Lock()
        self._online: dict[str, bool] = {}
        self._status: dict[str, EdgeStatus] = {}

    def availability(self, nursery: str, payload: bytes) -> None:
        with self._lock:
            self._online[nursery] = payload.strip() == ONLINE.encode()

    def heartbeat(self, nursery: str, topic: str, payload: bytes) -> None:
        try:
            status = EdgeStatus.decode(payload)
        except MessageError as exc:
            self._ingest.reject("rejected_malformed", nursery, topic, exc.reason)
            return
        if status.device != nursery:
            self._ingest.reject("rejected_topic", nursery, topic, "device is not the topic's")
            return
        with self._lock:
            self._status[nursery] = status

    def online(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._online)

    def status(self) -> dict[str, EdgeStatus]:
        with self._lock:
            return dict(self._status)
