"""What the edge agents say about themselves: availability (last will) and heartbeats.

Written by the processing thread, read by ``Hub.snapshot()`` from any thread
(hence the lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nurserycry.shared.errors import MessageError
from nurserycry.shared.schemas import EdgeStatus
from nurserycry.shared.topics import ONLINE

from .counters import Rejections


class Edges:
    def __init__(
        self, reject: Rejections, grace_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._reject = reject  # counted and logged like rejected feature messages
        self.grace_s = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self._online: dict[str, bool] = {}
        self._status: dict[str, EdgeStatus] = {}
        self._offline_since: dict[str, float] = {}
        self._awaited: dict[str, float] = {}  # open episodes from before a restart

    def availability(self, nursery: str, payload: bytes) -> None:
        """Record ``online`` / ``offline`` (an edge's last will, or a broker restart)."""
        online = payload.strip() == ONLINE.encode()
        with self._lock:
            self._online[nursery] = online
        if online:
            self._offline_since.pop(nursery, None)
        else:
            self._offline_since.setdefault(nursery, self._clock())

    def heard(self, nursery: str) -> None:
        """Frames arrived: whatever the will said, the edge is sending."""
        self._offline_since.pop(nursery, None)
        self._awaited.pop(nursery, None)

    def await_frames(self, nursery: str) -> None:
        """An episode of ``nursery`` was open when the hub last stopped: if no frames come
        for ``grace_s``, whatever its availability says, it is gone."""
        self._awaited[nursery] = self._clock()

    def gone(self) -> list[str]:
        """Nurseries offline (or awaited), with no frames, for ``grace_s``: reported once."""
        now = self._clock()
        out = []
        for table in (self._offline_since, self._awaited):
            for n in [n for n, t in table.items() if now - t >= self.grace_s]:
                del table[n]
                if n not in out:
                    out.append(n)
        return out

    def heartbeat(self, nursery: str, topic: str, payload: bytes) -> None:
        try:
            status = EdgeStatus.decode(payload)
        except MessageError as exc:
            self._reject("rejected_malformed", nursery, topic, exc.reason)
            return
        if status.device != nursery:
            self._reject("rejected_topic", nursery, topic, "device is not the topic's")
            return
        with self._lock:
            self._status[nursery] = status

    def online(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._online)

    def status(self) -> dict[str, EdgeStatus]:
        with self._lock:
            return dict(self._status)
