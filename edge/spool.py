"""A durable FIFO of encoded messages on disk (SQLite, WAL, synchronous=FULL).

Every feature message goes through here: the processing thread appends, the
publisher reads in ``seq`` order and acknowledges a message only after the
broker's PUBACK. A committed write survives SIGKILL and power loss
(``synchronous=FULL`` fsyncs the WAL on every commit).

By default (``sync_s=0``, write-through) every append is committed before it
can be published, so numbering after any crash continues exactly. That costs
the disk ~25 KB written per message (~45 KiB/s, ~3.8 GB a day, measured), a
lot for an SD card. **Write-behind** (``sync_s`` > 0, e.g. 1 s) holds a new
message in memory and publishes it from there; only a message still
unacknowledged after ``sync_s`` is written (while the broker is away: all of
them, one transaction per ``sync_s``). A broker that acknowledges in time costs
no disk writes at all. The price: a crash or power cut loses at most the last
``sync_s`` of unacknowledged messages (on top of the audio still in the capture
ring, lost in any design), and numbering then resumes past a reservation.

The spool also holds the stream's identity: the random ``stream`` id, the next
``seq``, and a consistent ``(next_frame, end_time)`` pair, so numbering goes on
after a restart without reusing a number. Under write-behind the next ``seq``
is *reserved* ahead (``reserve`` numbers per commit) so a crash can never
reuse a number already sent; after a crash numbering resumes past the
reservation (the hub sees a gap), after a clean :meth:`close` exactly.

Bounded by payload bytes: when an append would exceed the bound, the oldest
messages are deleted and counted in ``dropped`` (persisted too).

Threads: one connection shared by the processing and publisher threads under
a lock; each call is one short transaction (or none).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
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
    """``append`` / ``peek`` / ``ack`` / ``sync``; ``depth`` and ``dropped`` for the heartbeat."""

    def __init__(
        self, path: Path, max_bytes: int, *, sync_s: float = 0.0, reserve: int = 1200
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("spool bound must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.sync_s = sync_s
        self.reserve = reserve
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages")
        self._disk_depth, self._bytes = (int(v) for v in row.fetchone())
        self._pending: OrderedDict[int, tuple[str, bytes, float]] = OrderedDict()
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if "stream" not in meta:
            meta = {"stream": secrets.token_hex(8), "next_seq": "0", "next_frame": "0"}
            with self._tx():
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        next_seq = max(int(meta["next_seq"]), int(meta.get("reserved", "0")))
        if int(meta.get("reserved", "0")) > int(meta["next_seq"]):
            log.info("spool %s was not closed cleanly: seq resumes at %d", path, next_seq)
        self._state = StreamState(
            meta["stream"],
            next_seq,
            int(meta["next_frame"]),
            float(meta["end_time"]) if "end_time" in meta else None,
        )
        self._reserved = next_seq  # seqs below this are covered by what is on disk
        self._dropped = int(meta.get("dropped", "0"))
        if self._disk_depth:
            log.info("spool %s holds %d message(s) from before", path, self._disk_depth)

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
        """Messages not yet acknowledged (on disk or held in memory)."""
        return self._disk_depth + len(self._pending)

    @property
    def disk_depth(self) -> int:
        return self._disk_depth

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        return self._dropped

    # -- processing thread ----------------------------------------------
    def append(self, items: Sequence[tuple[int, str, bytes]], state: StreamState) -> int:
        """Take ``(seq, topic, payload)`` items and the new stream state; returns drops."""
        if not items:
            return 0
        size = sum(len(p) for _, _, p in items)
        now = time.monotonic()
        with self._lock:
            dropped = self._make_room(size)
            self._pending.update((seq, (topic, payload, now)) for seq, topic, payload in items)
            self._bytes += size
            self._dropped += dropped
            self._state = state
            if self.sync_s <= 0:
                self._write(len(self._pending))
            elif state.next_seq > self._reserved:
                self._write(0)  # reserve numbers ahead: one small commit per `reserve`
        if dropped:
            log.warning(
                "spool full (%d bytes): dropped the %d oldest message(s), %d so far",
                self.max_bytes,
                dropped,
                self._dropped,
            )
        return dropped

    def sync(self, older_than: float | None = None) -> int:
        """Write held messages older than ``older_than`` s (default ``sync_s``; 0: all)."""
        age = self.sync_s if older_than is None else older_than
        cutoff = time.monotonic() - age
        with self._lock:
            n = 0
            for _topic, _payload, added in self._pending.values():
                if added > cutoff:
                    break
                n += 1
            if n:
                self._write(n)
            return n

    def _make_room(self, size: int) -> int:
        """Drop the oldest (disk first, then memory) until ``size`` more bytes fit."""
        dropped = 0
        while self._disk_depth and self._bytes + size > self.max_bytes:
            seq, length = self._db.execute(
                "SELECT seq, LENGTH(payload) FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
            with self._tx() as db:
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            self._disk_depth -= 1
            self._bytes -= int(length)
            dropped += 1
        while self._pending and self._bytes + size > self.max_bytes:
            _seq, (_t, payload, _a) = self._pending.popitem(last=False)
            self._bytes -= len(payload)
            dropped += 1
        return dropped

    def _write(self, n: int, exact: bool = False) -> None:
        """Commit the ``n`` oldest held messages and the stream state (lock held)."""
        rows = []
        for _ in range(n):
            seq, (topic, payload, _added) = self._pending.popitem(last=False)
            rows.append((seq, topic, payload))
        st = self._state
        reserved = st.next_seq if exact or self.sync_s <= 0 else st.next_seq + self.reserve
        meta = {
            "next_seq": str(st.next_seq),
            "next_frame": str(st.next_frame),
            "reserved": str(reserved),
            "dropped": str(self._dropped),
        }
        if st.end_time is not None:
            meta["end_time"] = repr(st.end_time)
        with self._tx() as db:
            db.executemany("INSERT INTO messages VALUES (?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
        self._disk_depth += len(rows)
        self._reserved = reserved

    # -- publisher thread -----------------------------------------------
    def peek(self, after: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages with ``seq > after``, oldest first (disk, then memory)."""
        with self._lock:
            out: list[Spooled] = []
            if self._disk_depth:
                rows = self._db.execute(
                    "SELECT seq, topic, payload FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, limit),
                ).fetchall()
                out = [Spooled(int(s), str(t), bytes(p)) for s, t, p in rows]
            for seq, (topic, payload, _added) in self._pending.items():
                if len(out) >= limit:
                    break
                if seq > after:
                    out.append(Spooled(seq, topic, payload))
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged messages (already dropped ones are ignored)."""
        gone = 0
        on_disk: list[tuple[int]] = []
        with self._lock:
            for seq in seqs:
                held = self._pending.pop(seq, None)
                if held is not None:
                    self._bytes -= len(held[1])
                    gone += 1
                else:
                    on_disk.append((seq,))
            if on_disk and self._disk_depth:
                with self._tx() as db:
                    for key in on_disk:
                        row = db.execute(
                            "DELETE FROM messages WHERE seq = ? RETURNING LENGTH(payload)", key
                        ).fetchone()
                        if row is not None:
                            gone += 1
                            self._disk_depth -= 1
                            self._bytes -= int(row[0])
        return gone

    def close(self) -> None:
        """Write what is held and the exact numbering (no reservation), then close."""
        with self._lock:
            self._write(len(self._pending), exact=True)
            self._db.close()
