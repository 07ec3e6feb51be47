"""A bounded, ordered point buffer: memory first, a durable queue when memory overflows.

Order is kept by construction: the disk (a
:class:`~nurserycry.shared.durable_queue.DurableQueue`) always holds the *oldest*
points and memory the newest. When memory exceeds ``memory_max`` its oldest
half moves to the disk's tail. Readers take from the disk first, then memory,
and acknowledge what was written. Only when the disk also exceeds
``spool_max`` are its oldest points dropped (and counted).

On :meth:`close` whatever is still in memory goes to disk, so points that
could not be written before the hub stopped are written after the next start.

A bad disk costs history, never the hub: a corrupt file is moved aside; while
the disk refuses writes, points stay in memory (the oldest beyond
``memory_max`` are dropped and counted); written points the disk cannot delete
yet are skipped (a later write of them again is harmless: same timestamps).

Thread safety: one lock around everything; the processing thread appends,
the InfluxDB writer thread peeks and acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from pathlib import Path
from typing import Final

from nurserycry.shared.durable_queue import DurableQueue
from nurserycry.shared.throttle import RateLimitedWarnings

log = logging.getLogger(__name__)

# points files of before the durable queue: copied over once
_MIGRATE: Final = (
    "points",
    "INSERT INTO messages (topic, payload) SELECT '', CAST(line AS BLOB) FROM points ORDER BY id;"
    "DROP TABLE points",
)


class PointBuffer:
    """FIFO of line-protocol strings: ``append`` / ``peek(n)`` / ``ack(n)``."""

    def __init__(self, spool_path: Path, memory_max: int = 20_000, spool_max: int = 5_000_000):
        self.memory_max = memory_max
        self.spool_max = spool_max
        self.spool_path = spool_path
        self._lock = threading.Lock()
        self._warn = RateLimitedWarnings(log)
        self._memory: deque[str] = deque()
        self._disk: DurableQueue | None = None
        self._skip = 0  # oldest points on disk already written, not yet deleted
        self._closed = False
        self._left = 0  # on disk when closed
        self.dropped = 0
        self._dropped_since_peek = 0
        self.spilled = 0
        if spool_path.exists():  # points left by a previous run
            disk = self._open()
            if len(disk):
                log.info("%d points waiting in %s from before", len(disk), spool_path)

    # -- spool -----------------------------------------------------------
    def _open(self) -> DurableQueue:
        if self._disk is None:
            self._disk = DurableQueue(
                self.spool_path, what="InfluxDB buffer", synchronous="NORMAL", migrate=_MIGRATE
            )
        return self._disk

    @property
    def _on_disk(self) -> int:
        return len(self._disk) - self._skip if self._disk is not None else self._left

    def _spill(self, lines: list[str]) -> bool:
        try:
            disk = self._open()
        except (sqlite3.Error, OSError) as exc:  # e.g. the folder went away: memory only
            self._warn.warn(("open",), "cannot open %s: %s", self.spool_path, exc)
            return False
        if not disk.put([(None, "", x.encode()) for x in lines]):
            return False
        self.spilled += len(lines)
        excess = self._on_disk - self.spool_max
        if excess > 0:
            done = disk.drop_oldest(excess + self._skip)
            if done is not None:
                dropped = done[0] - self._skip
                self._skip = 0
                self._count_dropped(dropped)
                log.error("InfluxDB spool full: dropped the %d oldest points", dropped)
        return True

    def _count_dropped(self, n: int) -> None:
        self.dropped += n
        self._dropped_since_peek += n

    # -- queue -----------------------------------------------------------
    def append(self, lines: list[str]) -> None:
        with self._lock:
            self._memory.extend(lines)
            if len(self._memory) > self.memory_max:
                n = max(len(self._memory) - self.memory_max, self.memory_max // 2)
                moved = [self._memory[i] for i in range(n)]
                if self._spill(moved):
                    for _ in range(n):
                        self._memory.popleft()
                    return
                excess = len(self._memory) - self.memory_max  # the disk refuses: bound memory
                for _ in range(excess):
                    self._memory.popleft()
                self._count_dropped(excess)

    def __len__(self) -> int:
        with self._lock:
            return self._on_disk + len(self._memory)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spooled(self) -> int:
        with self._lock:
            return self._on_disk

    def peek(self, n: int) -> list[str]:
        """The oldest ``n`` points (fewer if fewer wait), without removing them."""
        with self._lock:
            self._dropped_since_peek = 0
            if self._on_disk and self._disk is not None:
                return [r.payload.decode() for r in self._disk.rows(n, skip=self._skip)]
            return [self._memory[i] for i in range(min(n, len(self._memory)))]

    def ack(self, n: int) -> None:
        """Remove the ``n`` points the last :meth:`peek` returned (they were written).

        Those are still the ``n`` oldest (a spill only moves memory's oldest to
        the spool's tail), unless the spool overflowed since and dropped some.
        After :meth:`close` (a write that outlived the shutdown) nothing changes.
        """
        with self._lock:
            if self._closed:
                return
            k = max(0, n - self._dropped_since_peek)
            from_spool = min(k, self._on_disk)
            if from_spool and self._disk is not None:
                self._skip += from_spool
                done = self._disk.drop_oldest(self._skip)
                if done is not None:
                    self._skip = 0
            for _ in range(min(k - from_spool, len(self._memory))):
                self._memory.popleft()

    def close(self) -> None:
        """Spool what is still in memory (kept for the next run) and close the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._memory:
                if self._spill(list(self._memory)):
                    log.warning(
                        "%d InfluxDB points not written; kept in %s for the next start",
                        len(self._memory),
                        self.spool_path,
                    )
                else:
                    log.error(
                        "%d InfluxDB points not written and the disk refuses them: lost",
                        len(self._memory),
                    )
                self._memory.clear()
            if self._disk is not None:
                if self._skip:
                    self._disk.drop_oldest(self._skip)
                self._left = len(self._disk)
                self._disk.close()
                self._disk = None
