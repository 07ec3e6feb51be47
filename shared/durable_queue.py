"""A durable FIFO on disk (SQLite, WAL): the edge spool and the hub's InfluxDB buffer.

Rows are ``(seq, topic, payload)`` ordered by ``seq`` (the caller's number, or
the next free one), beside a small ``meta`` key/value table written in the same
transaction. The queue keeps its row count and payload bytes, so callers never
scan the file.

What a disk does must not stop the program that queues (detection goes on;
the queue is the safety net, not the point):

* a **corrupt** file is moved aside and a fresh one started
  (:mod:`~nurserycry.shared.sqlite_file`), at open or at any later call; the rows
  it held are lost, and an ERROR says how many;
* a path that cannot be opened at all when the queue is made (no such folder, no
  permission) is raised: that is a setting to fix, not a disk to wait for;
* **disk trouble** (full, I/O error, read-only) makes the writing call return
  ``False`` / ``None`` instead of raising: the caller keeps the data in memory.
  Writes are not tried again for ``retry_s`` (cheap while the disk is full), a
  WARNING per minute says the queue is degraded, and the first write that
  succeeds again says it recovered.

Not thread-safe by itself: each user (``Spool``, ``PointBuffer``) holds its own lock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from .sqlite_file import Synchronous, connect, corrupt, disk_failing, disk_trouble, move_aside
from .throttle import RateLimitedWarnings

log = logging.getLogger(__name__)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COUNT: Final = "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages"

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    seq: int
    topic: str
    payload: bytes


class DurableQueue:
    """``put`` / ``rows`` / ``delete`` / ``drop_oldest``; ``len()``, ``size_bytes``, ``meta``."""

    def __init__(
        self,
        path: Path,
        *,
        what: str = "queue",
        synchronous: Synchronous = "FULL",
        retry_s: float = 5.0,
        migrate: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``migrate``: ``(table, sql)``: when an older ``table`` is in the file, ``sql``
        (run once, in one transaction) copies its rows in and drops it."""
        self.path, self.what = path, what
        self.synchronous: Synchronous = synchronous
        self.retry_s = retry_s
        self._migrate = migrate
        self._clock = clock
        self._warn = RateLimitedWarnings(log)
        self._db: sqlite3.Connection | None = None
        self._retry_at = 0.0
        self._degraded = False
        self._count = self._bytes = 0
        self.meta: dict[str, str] = {}
        self._reopen(first=True)

    # -- the file ----------------------------------------------------------
    def _reopen(self, first: bool = False) -> bool:
        try:
            db = connect(self.path, SCHEMA, synchronous=self.synchronous, autocommit=True)
            if (
                self._migrate is not None
                and db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (self._migrate[0],),
                ).fetchone()[0]
            ):
                db.executescript(f"BEGIN IMMEDIATE; {self._migrate[1]}; COMMIT;")
            count, size = db.execute(_COUNT).fetchone()
            self.meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as exc:
            if first and not disk_failing(exc):
                raise
            self._trouble(exc, "open", reopen=False)
            return False
        self._db, self._count, self._bytes = db, int(count), int(size)
        self._recovered()
        return True

    def _trouble(self, exc: BaseException, doing: str, reopen: bool = True) -> None:
        if corrupt(exc) and reopen:
            lost = self._count
            if self._db is not None:
                self._db.close()
                self._db = None
            move_aside(self.path, f"{type(exc).__name__}: {exc}")
            if lost:
                log.error("%s: %d queued item(s) were in the damaged file", self.what, lost)
            self._count = self._bytes = 0
            self.meta = {}
            self._reopen()
            return
        if not disk_trouble(exc) and not corrupt(exc):
            raise exc
        self._degraded = True
        self._retry_at = self._clock() + self.retry_s
        self._warn.warn(
            ("disk", self.what),
            "%s: cannot %s %s (%s: %s); keeping new data in memory, retrying every %g s",
            self.what,
            doing,
            self.path,
            type(exc).__name__,
            exc,
            self.retry_s,
        )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.warning("%s: writing to %s again", self.what, self.path)

    def _ready(self) -> sqlite3.Connection | None:
        """The connection, unless the disk failed less than ``retry_s`` ago."""
        if self._degraded and self._clock() < self._retry_at:
            return None
        if self._db is None and not self._reopen():
            return None
        return self._db

    def _tx(self, doing: str, work: Callable[[sqlite3.Connection], T]) -> T | None:
        db = self._ready()
        if db is None:
            return None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._trouble(exc, doing)
            return None
        self._recovered()
        return result

    # -- state -------------------------------------------------------------
    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def degraded(self) -> bool:
        """The last write failed: new data stays with the caller for now."""
        return self._degraded

    # -- writes (False / None: nothing changed, keep the data) --------------
    def put(
        self, rows: Sequence[tuple[int | None, str, bytes]], meta: Mapping[str, str] | None = None
    ) -> bool:
        """Append rows (``seq`` None: the next free one) and set ``meta``, in one transaction."""
        meta = meta or {}

        def work(db: sqlite3.Connection) -> bool:
            db.executemany("INSERT INTO messages VALUES (?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            return True

        if not self._tx("write", work):
            return False
        self._count += len(rows)
        self._bytes += sum(len(p) for _, _, p in rows)
        self.meta.update(meta)
        return True

    def delete(self, seqs: Iterable[int]) -> tuple[int, int] | None:
        """Delete these rows; ``(rows, bytes)`` deleted (absent ones are skipped)."""
        keys = [(s,) for s in seqs]

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            n = size = 0
            for key in keys:
                row = db.execute(
                    "DELETE FROM messages WHERE seq = ? RETURNING LENGTH(payload)", key
                ).fetchone()
                if row is not None:
                    n, size = n + 1, size + int(row[0])
            return n, size

        return self._account(self._tx("delete from", work) if keys and self._count else (0, 0))

    def drop_oldest(self, n: int) -> tuple[int, int] | None:
        """Delete the ``n`` oldest rows; ``(rows, bytes)`` deleted."""

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            rows = db.execute(
                "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)"
                " RETURNING LENGTH(payload)",
                (n,),
            ).fetchall()
            return len(rows), sum(int(r[0]) for r in rows)

        return self._account(self._tx("delete from", work) if n > 0 and self._count else (0, 0))

    def _account(self, done: tuple[int, int] | None) -> tuple[int, int] | None:
        if done is not None:
            self._count -= done[0]
            self._bytes -= done[1]
        return done

    # -- reads ---------------------------------------------------------------
    def rows(self, limit: int, *, after: int | None = None, skip: int = 0) -> list[Row]:
        """Up to ``limit`` rows with ``seq > after``, oldest first, past the first ``skip``."""
        if not self._count or self._db is None:
            return []
        try:
            found = self._db.execute(
                "SELECT seq, topic, payload FROM messages WHERE seq > ? ORDER BY seq "
                "LIMIT ? OFFSET ?",
                (-(2**63) if after is None else after, limit, skip),
            ).fetchall()
        except (sqlite3.Error, OSError) as exc:
            self._trouble(exc, "read")
            return []
        return [Row(int(s), str(t), bytes(p)) for s, t, p in found]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
