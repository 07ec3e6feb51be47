"""A bounded, ordered point buffer: memory first, an SQLite file when memory overflows.

Order is kept by construction: the disk spool always holds the *oldest*
points and memory the newest. When memory exceeds ``memory_max`` its oldest
half moves to the spool's tail. Readers take from the spool first, then
memory, and acknowledge what was written. Only when the spool also exceeds
``spool_max`` are its oldest points dropped (and counted).

On :meth:`close` whatever is still in memory is spooled, so points that could
not be written before the hub stopped are written after the next start.

Thread safety: one lock around everything; the processing thread appends,
the InfluxDB writer thread peeks and acknowledges.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)


class PointBuffer:
    """FIFO of line-protocol strings: ``append`` / ``peek(n)`` / ``ack(n)``."""

    def __init__(self, spool_path: Path, memory_max: int = 20_000, spool_max: int = 5_000_000):
        self.memory_max = memory_max
        self.spool_max = spool_max
        self.spool_path = spool_path
        self._lock = threading.Lock()
        self._memory: deque[str] = deque()
        self._db: sqlite3.Connection | None = None
        self._spooled = 0
        self.dropped = 0
        self._dropped_since_peek = 0
        self.spilled = 0
        if spool_path.exists():  # points left by a previous run
            self._open()

    # -- spool -----------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.spool_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS points (id INTEGER PRIMARY KEY, line TEXT)")
            self._spooled = int(db.execute("SELECT count(*) FROM points").fetchone()[0])
            if self._spooled:
                log.info("%d points waiting in %s from before", self._spooled, self.spool_path)
            self._db = db
        return self._db

    def _spill(self, lines: list[str]) -> None:
        db = self._open()
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT INTO points (line) VALUES (?)", ((x,) for x in lines))
        self._spooled += len(lines)
        self.spilled += len(lines)
        excess = self._spooled - self.spool_max
        if excess > 0:
            with db:
                db.execute("BEGIN")
                db.execute(
                    "DELETE FROM points WHERE id IN (SELECT id FROM points ORDER BY id LIMIT ?)",
                    (excess,),
                )
            self._spooled -= excess
            self.dropped += excess
            self._dropped_since_peek += excess
            log.error("InfluxDB spool full: dropped the %d oldest points", excess)

    # -- queue -----------------------------------------------------------
    def append(self, lines: list[str]) -> None:
        with self._lock:
            self._memory.extend(lines)
            if len(self._memory) > self.memory_max:
                n = max(len(self._memory) - self.memory_max, self.memory_max // 2)
                moved = [self._memory.popleft() for _ in range(n)]
                self._spill(moved)

    def __len__(self) -> int:
        with self._lock:
            return self._spooled + len(self._memory)

    @property
    def spooled(self) -> int:
        with self._lock:
            return self._spooled

    def peek(self, n: int) -> list[str]:
        """The oldest ``n`` points (fewer if fewer wait), without removing them."""
        with self._lock:
            self._dropped_since_peek = 0
            if self._spooled and self._db is not None:
                rows = self._db.execute(
                    "SELECT line FROM points ORDER BY id LIMIT ?", (n,)
                ).fetchall()
                return [r[0] for r in rows]
            return [self._memory[i] for i in range(min(n, len(self._memory)))]

    def ack(self, n: int) -> None:
        """Remove the ``n`` points the last :meth:`peek` returned (they were written).

        Those are still the ``n`` oldest (a spill only moves memory's oldest to
        the spool's tail), unless the spool overflowed since and dropped some.
        """
        with self._lock:
            k = max(0, n - self._dropped_since_peek)
            from_spool = min(k, self._spooled)
            if from_spool and self._db is not None:
                with self._db:
                    self._db.execute("BEGIN")
                    self._db.execute(
                        "DELETE FROM points WHERE id IN "
                        "(SELECT id FROM points ORDER BY id LIMIT ?)",
                        (from_spool,),
                    )
                self._spooled -= from_spool
            for _ in range(min(k - from_spool, len(self._memory))):
                self._memory.popleft()

    def close(self) -> None:
        """Spool what is still in memory (kept for the next run) and close the file."""
        with self._lock:
            if self._memory:
                self._spill(list(self._memory))
                log.warning(
                    "%d InfluxDB points not written; kept in %s for the next start",
                    len(self._memory),
                    self.spool_path,
                )
                self._memory.clear()
            if self._db is not None:
                self._db.close()
                self._db = None
