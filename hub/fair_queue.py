"""A bounded queue that hands out work fairly between nurseries (#14.13).

paho's network thread puts every message under a key (its nursery); the
processing thread takes batches that visit the keys in turn, one message each,
starting one key further every batch. Each nursery's messages keep their order.
So a nursery flooding the hub (a day of spool, or an attacker with its
credentials) fills only its own share of every batch, and another nursery's
next message is in the very next batch instead of behind the whole flood.
When the queue is full, ``put`` waits (back-pressure: the broker holds the rest).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()
        self._size = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def empty(self) -> bool:
        return len(self) == 0

    def waiting(self, key: str) -> int:
        """Items queued under ``key``."""
        with self._cond:
            q = self._queues.get(key)
            return len(q) if q is not None else 0

    def put(self, key: str, item: T, timeout: float) -> bool:
        """Add ``item`` under ``key``; False if the queue stayed full for ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._size >= self.maxsize:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._queues.setdefault(key, deque()).append(item)
            self._size += 1
            self._cond.notify_all()
            return True

    def take(self, limit: int, timeout: float = 0.0) -> list[T]:
        """Up to ``limit`` items, one key after the other; waits ``timeout`` s for one."""
        with self._cond:
            if not self._size and timeout > 0:
                self._cond.wait(timeout)
            out: list[T] = []
            while self._size and len(out) < limit:
                for key in list(self._queues):
                    q = self._queues[key]
                    out.append(q.popleft())
                    self._size -= 1
                    if not q:
                        del self._queues[key]
                    if len(out) >= limit:
                        break
            if self._queues:  # the next batch starts with the next key
                self._queues.move_to_end(next(iter(self._queues)))
            self._cond.notify_all()
            return out
