"""A durable FIFO of encoded messages on disk (SQLite, WAL, synchronous=FULL).

Every feature message goes through here before MQTT: the processing thread
appends, the publisher reads in order and deletes a message only after the
broker's PUBACK. A committed append survives SIGKILL and power loss
(``synchronous=FULL`` fsyncs the WAL on every commit).

The spool also holds the stream's identity: the random ``stream`` id, the next
``seq``, the next ``frame_index`` and the capture time where the last message
ended, updated in the same transaction as the messages, so numbering goes on
after a restart without reusing a number.

Bounded by payload bytes: when an append would exceed the bound, the oldest
messages are deleted and counted in ``dropped`` (persisted too).

Threads: one connection shared by the processing and publisher threads under
a lock; each call is one short transaction.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class StreamState:
    stream: str
    next_seq: int
    next_frame: int
    end_time: float | None  # capture time just after the last spooled frame


@dataclass(frozen=True)
class Spooled:
    seq: int
    topic: str
    payload: bytes


class Spool:
    """``append`` / ``peek`` / ``ack``; ``depth`` and ``dropped`` for the heartbeat."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("spool bound must be positive")
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages")
        self._depth, self._bytes = (int(v) for v in row.fetchone())
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if "stream" not in meta:
            meta = {"stream": secrets.token_hex(8), "next_seq": "0", "next_frame": "0"}
            with self._tx():
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        self._state = StreamState(
            meta["stream"],
            int(meta["next_seq"]),
            int(meta["next_frame"]),
            float(meta["end_time"]) if "end_time" in meta else None,
        )
        self._dropped = int(meta.get("dropped", "0"))
        if self._depth:
            log.info("spool %s holds %d message(s) from before", path, self._depth)

    def _tx(self) -> sqlite3.Connection:
        """``with self._tx():`` one IMMEDIATE transaction, committed or rolled back."""
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    # -- state -----------------------------------------------------------
    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        return self._dropped

    # -- processing thread ----------------------------------------------
    def append(self, items: Sequence[tuple[int, str, bytes]], state: StreamState) -> int:
        """Store ``(seq, topic, payload)`` items and the new stream state; returns drops."""
        size = sum(len(p) for _, _, p in items)
        with self._lock, self._tx() as db:
            dropped = 0
            while self._depth and self._bytes + size > self.max_bytes:
                seq, length = db.execute(
                    "SELECT seq, LENGTH(payload) FROM messages ORDER BY seq LIMIT 1"
                ).fetchone()
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                self._depth -= 1
                self._bytes -= int(length)
                dropped += 1
            db.executemany("INSERT INTO messages VALUES (?, ?, ?)", items)
            meta = {
                "next_seq": str(state.next_seq),
                "next_frame": str(state.next_frame),
                "dropped": str(self._dropped + dropped),
            }
            if state.end_time is not None:
                meta["end_time"] = repr(state.end_time)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        self._depth += len(items)
        self._bytes += size
        self._dropped += dropped
        self._state = state
        if dropped:
            log.warning(
                "spool full (%d bytes): dropped the %d oldest message(s), %d so far",
                self.max_bytes,
                dropped,
                self._dropped,
            )
        return dropped

    # -- publisher thread -----------------------------------------------
    def peek(self, after: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Spooled(int(s), str(t), bytes(p)) for s, t, p in rows]

    def first_seq(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(seq) FROM messages").fetchone()
        return None if row[0] is None else int(row[0])

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages (already dropped ones are ignored)."""
        keys = [(s,) for s in seqs]
        if not keys:
            return 0
        with self._lock, self._tx() as db:
            gone = 0
            for key in keys:
                row = db.execute(
                    "DELETE FROM messages WHERE seq = ? RETURNING LENGTH(payload)", key
                ).fetchone()
                if row is not None:
                    gone += 1
                    self._bytes -= int(row[0])
            self._depth -= gone
        return gone

    def close(self) -> None:
        with self._lock:
            self._db.close()
