"""A durable FIFO of encoded messages on disk (SQLite, WAL, synchronous=FULL).

Every feature message goes through here: the processing thread appends, the
publisher reads in ``seq`` order and acknowledges a message only after the
broker's PUBACK. A committed write survives SIGKILL and power loss
(``synchronous=FULL`` fsyncs the WAL on every commit).

By default (``sync_s=0``, write-through) every append is committed before it
can be published. That costs the disk ~25 KB written per message (~45 KiB/s,
~3.8 GB a day, measured), a lot for an SD card. **Write-behind** (``sync_s`` >
0, e.g. 1 s) holds a new message in memory and publishes it from there; only a
message still unacknowledged after ``sync_s`` is written (while the broker is
away: all of them, one transaction per ``sync_s``). A broker that acknowledges
in time costs no disk writes at all. The price: a crash or power cut loses at
most the last ``sync_s`` of unacknowledged messages (on top of the audio still
in the capture ring, lost in any design).

**Numbering.** The spool holds the stream's identity: the random ``stream`` id,
the next ``seq``, and a consistent ``(next_frame, end_time)`` pair. The hub
drops a message whose ``(stream, seq)`` it has seen, so a number must never be
used twice for different audio, whatever the disk did. A restart goes on with
the stream on disk only if the run before ended with a clean :meth:`close`
(the file says ``closed``; the first write of every run clears it). After any
other end (crash, power cut, SIGKILL, or a close the disk refused) the numbers
handed out after the last write are unknown: they may be far beyond anything
on disk (under write-behind nothing is written while the broker keeps up, and a
full disk holds the spool in memory for hours), so numbering goes on in a
**new stream** (a new random id; ``seq`` continues above every row on disk,
which keep their own stream and are still delivered). If even the first write
fails, the stream on disk still says ``closed`` and this run must leave it
alone: it numbers in a new stream too. Why not resume past a reservation of
numbers (what this did before)? The reservation itself must reach the disk,
and when the disk is full it cannot; a new id needs nothing from the disk, and
the hub takes a new stream from a nursery as an edge restart (hub README).

Bounded by payload bytes: when an append would exceed the bound, the oldest
messages are deleted and counted in ``dropped`` (persisted too).

A bad disk never stops capture (the file is a
:class:`~nurserycry.shared.durable_queue.DurableQueue`): a corrupt spool is moved
aside at start (numbering starts a new stream); while the disk is full or failing,
messages stay in memory (at most ``memory_max_bytes``, oldest dropped beyond it,
counted), a WARNING a minute says so, and they go to disk once it takes writes
again. Acknowledged messages the disk cannot delete yet are skipped until it can.

Threads: one queue shared by the processing and publisher threads under a lock;
each call is one short transaction (or none).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nurserycry.shared.durable_queue import DurableQueue, Row
from nurserycry.shared.throttle import RateLimitedWarnings

log = logging.getLogger(__name__)

Spooled = Row  # seq, topic, payload
MEMORY_MAX_BYTES = 32_000_000  # held in memory at most while the disk refuses (~3 h of features)


@dataclass(frozen=True)
class StreamState:
    stream: str
    next_seq: int
    next_frame: int
    end_time: float | None  # capture time just after the last spooled frame


class Spool:
    """``append`` / ``peek`` / ``ack`` / ``sync``; ``depth`` and ``dropped`` for the heartbeat."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        *,
        sync_s: float = 0.0,
        memory_max_bytes: int = MEMORY_MAX_BYTES,
        retry_s: float = 5.0,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("spool bound must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.memory_max_bytes = min(memory_max_bytes, max_bytes)
        self.sync_s = sync_s
        self._lock = threading.Lock()
        self._warn = RateLimitedWarnings(log)
        self._disk = DurableQueue(path, what="edge spool", synchronous="FULL", retry_s=retry_s)
        self._pending: OrderedDict[int, tuple[str, bytes, float]] = OrderedDict()
        self._pending_bytes = 0
        self._unerased: set[int] = set()  # acknowledged, but the disk could not delete them yet
        meta = dict(self._disk.meta)
        intact = "stream" in meta and meta.get("closed") == "1"
        if "stream" in meta and not intact:
            log.warning(
                "spool %s was not closed cleanly (crash, power cut, kill): the numbers handed "
                "out after its last write are unknown, so numbering goes on as a new stream "
                "(its %d unsent message(s) keep theirs)",
                path,
                len(self._disk),
            )
        self._state = StreamState(
            meta["stream"] if intact else secrets.token_hex(8),
            # above every row on disk (`reserved`: a spool written by an older version)
            max(int(meta.get("next_seq", "0")), int(meta.get("reserved", "0"))),
            int(meta.get("next_frame", "0")),
            float(meta["end_time"]) if "end_time" in meta else None,
        )
        self._dropped = int(meta.get("dropped", "0"))
        # Claim the stream: until the next clean close the file says it is in use. If the
        # disk refuses, the stream it holds stays "closed" for a later start to go on
        # with, so this run must not number in it: a fresh stream instead.
        if not self._write(0) and intact:
            self._state = replace(self._state, stream=secrets.token_hex(8))
        if len(self._disk):
            log.info("spool %s holds %d message(s) from before", path, len(self._disk))

    # -- state -----------------------------------------------------------
    @property
    def state(self) -> StreamState:
        return self._state

    @property
    def depth(self) -> int:
        """Messages not yet acknowledged (on disk or held in memory)."""
        return self.disk_depth + len(self._pending)

    @property
    def disk_depth(self) -> int:
        return max(0, len(self._disk) - len(self._unerased))

    @property
    def size_bytes(self) -> int:
        return self._disk.size_bytes + self._pending_bytes

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def degraded(self) -> bool:
        """The disk refuses writes: new messages are held in memory."""
        return self._disk.degraded

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
            self._pending_bytes += size
            self._state = state
            if self.sync_s <= 0:
                self._write(len(self._pending))
            dropped += self._cap_memory()
            self._dropped += dropped
        if dropped:
            self._warn.warn(
                ("dropped",),
                "spool full (%d bytes on disk, %d in memory at most): dropped the %d oldest "
                "message(s), %d so far",
                self.max_bytes,
                self.memory_max_bytes,
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
            if self._unerased:
                self._erase([])
            return n if n and self._write(n) else 0

    def _make_room(self, size: int) -> int:
        """Drop the oldest (disk first, then memory) until ``size`` more bytes fit."""
        dropped = 0
        while self.disk_depth and self.size_bytes + size > self.max_bytes:
            done = self._disk.drop_oldest(1)
            if not done or not done[0]:  # the disk refuses even deletes: drop from memory
                break
            dropped += done[0]
        while self._pending and self.size_bytes + size > self.max_bytes:
            dropped += self._drop_held()
        return dropped

    def _cap_memory(self) -> int:
        """While the disk refuses writes, hold at most ``memory_max_bytes`` in memory."""
        dropped = 0
        while len(self._pending) > 1 and self._pending_bytes > self.memory_max_bytes:
            dropped += self._drop_held()
        return dropped

    def _drop_held(self) -> int:
        _seq, (_t, payload, _a) = self._pending.popitem(last=False)
        self._pending_bytes -= len(payload)
        return 1

    def _write(self, n: int, closing: bool = False) -> bool:
        """Commit the ``n`` oldest held messages and the stream state (``closing``: marked
        closed cleanly) (lock held); False: the disk refused, they stay held."""
        rows: list[tuple[int | None, str, bytes]] = []
        for seq, (topic, payload, _added) in self._pending.items():
            if len(rows) >= n:
                break
            rows.append((seq, topic, payload))
        st = self._state
        meta = {
            "stream": st.stream,
            "next_seq": str(st.next_seq),
            "next_frame": str(st.next_frame),
            "closed": "1" if closing else "0",
            "dropped": str(self._dropped),
        }
        if st.end_time is not None:
            meta["end_time"] = repr(st.end_time)
        if not self._disk.put(rows, meta):
            return False
        for _ in rows:
            _seq, (_t, payload, _a) = self._pending.popitem(last=False)
            self._pending_bytes -= len(payload)
        return True

    # -- publisher thread -----------------------------------------------
    def peek(self, after: int, limit: int) -> list[Spooled]:
        """Up to ``limit`` messages with ``seq > after``, oldest first (disk, then memory)."""
        with self._lock:
            out: list[Spooled] = []
            if self.disk_depth:
                extra = len(self._unerased)
                rows = self._disk.rows(limit + extra, after=after)
                out = [r for r in rows if r.seq not in self._unerased][:limit]
            for seq, (topic, payload, _added) in self._pending.items():
                if len(out) >= limit:
                    break
                if seq > after:
                    out.append(Spooled(seq, topic, payload))
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged messages (already dropped ones are ignored)."""
        gone = 0
        on_disk: list[int] = []
        with self._lock:
            for seq in seqs:
                held = self._pending.pop(seq, None)
                if held is not None:
                    self._pending_bytes -= len(held[1])
                    gone += 1
                else:
                    on_disk.append(seq)
            if on_disk and len(self._disk):
                gone += self._erase(on_disk)
        return gone

    def _erase(self, seqs: list[int]) -> int:
        """Delete acknowledged messages from disk (lock held); kept to retry if it refuses."""
        keys = [*self._unerased, *seqs]
        done = self._disk.delete(keys)
        if done is None:
            new = set(seqs) - self._unerased
            self._unerased.update(seqs)
            return len(new)  # acknowledged: no longer counted, erased later
        erased_before = len(self._unerased)
        self._unerased.clear()
        return max(0, done[0] - erased_before)

    def close(self) -> None:
        """Write what is held and the exact numbering, marked closed cleanly, then close."""
        with self._lock:
            if self._unerased:
                self._erase([])
            if not self._write(len(self._pending), closing=True) and self._pending:
                log.error(
                    "could not save %d message(s) held in memory to %s: they are lost",
                    len(self._pending),
                    self.path,
                )
            self._disk.close()
