"""Drains the spool to MQTT: QoS 1, in order, deleted only after the PUBACK.

Threads: one publisher thread (this class) plus paho's network thread (inside
:class:`MqttLink`). The publisher hands at most ``window`` messages to paho at
a time, in ``seq`` order, and remembers which MQTT message id carries which
``seq``. paho's thread reports PUBACKs through :meth:`_on_published`, which
only queues the id (no disk I/O on the network thread); the publisher thread
then deletes acknowledged messages from the spool in one transaction.

After a reconnect paho itself resends the unacknowledged messages of the
window, in order, with the DUP flag (the same session); everything beyond the
window is still in the spool and follows. After a restart of the agent the
whole spool is sent again from its oldest message: QoS 1 means a message may
arrive twice, never that it is lost (the hub drops duplicates by stream+seq).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from nurserycry.shared.mqtt import Link

from .spool import Spool

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, spool: Spool, link: Link, window: int = 32) -> None:
        self.spool = spool
        self.link = link
        self.window = window
        self.sent = 0  # acknowledged by the broker in this run
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._cursor = -1  # highest seq handed to paho
        self._acked: list[int] = []  # acknowledged, not yet removed from the spool
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Event()
        self._thread: threading.Thread | None = None
        link.on_published(self._on_published)

    # -- other threads ---------------------------------------------------
    def _on_published(self, mid: int) -> None:  # paho's network thread
        self._acks.put(mid)
        self._wake.set()

    def notify(self) -> None:
        """New messages were spooled."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once the spool is empty: every message acknowledged (or dropped when full)."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.spool.depth:
            left = 0.05 if end is None else min(0.05, end - time.monotonic())
            if left <= 0:
                return False
            self._progress.wait(left)
            self._progress.clear()
        return True

    # -- the publisher thread --------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self.step()
            except Exception:
                log.exception("publisher step failed; retrying")
                self._stop.wait(1.0)

    def step(self) -> None:
        """Apply PUBACKs, then top the window up from the spool."""
        acked = self._acked  # kept until the spool took them (a disk error is retried)
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                acked.append(seq)
        if acked:
            self.spool.ack(acked)
            self.sent += len(acked)
            self._acked = []
        room = self.window - len(self._inflight)
        if room > 0 and self.link.connected:
            for item in self.spool.peek(self._cursor, room):
                info = self.link.publish(item.topic, item.payload, qos=1)
                self._inflight[info.mid] = item.seq
                self._cursor = item.seq
        if acked:
            self._progress.set()
