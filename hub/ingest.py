"""Validate, deduplicate and order feature messages (pure: no I/O, no threads).

Per nursery the hub follows one *stream* (the edge agent's random id, new on
every agent start) and its ``seq`` numbers:

* ``seq`` as expected: delivered, followed by any held messages it unblocks.
* ``seq`` ahead of the expected one: held (at most ``reorder_messages``
  messages or ``reorder_wait_s``) waiting for the missing ones; then the
  missing ones are declared a **gap** (counted, frames lost estimated from
  ``frame_index``) and delivery goes on.
* ``seq`` behind: a **duplicate** (QoS 1 redelivery; dropped silently, counted)
  unless it belongs to a range already declared lost, then **out of order**
  (counted, logged: its frames can no longer be used).
* A new stream id: the old stream's held messages are delivered, then the
  new stream starts wherever it starts; a message from a retired stream is
  out of order.

Every rejection is counted and logged once per device and reason per minute.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nurserycry.shared.errors import MessageError, UnsupportedVersionError
from nurserycry.shared.schemas import AudioFeatures
from nurserycry.shared.topics import Topics

from .counters import Counters, Rejections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """A valid, in-order feature message."""

    nursery: str
    msg: AudioFeatures
    mel: npt.NDArray[np.int8]
    level: npt.NDArray[np.int8]


@dataclass
class _Stream:
    stream: str
    next_seq: int
    next_frame: int | None = None
    pending: dict[int, tuple[Accepted, float]] = field(default_factory=dict)
    lost: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=32))
    retired: deque[str] = field(default_factory=lambda: deque(maxlen=8))


class Ingest:
    """``feed(topic, payload)`` -> the messages that may be used now, in order."""

    def __init__(
        self,
        topics: Topics,
        counters: Counters,
        frontend_hash: str,
        n_mels: int,
        *,
        reorder_messages: int = 8,
        reorder_wait_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        rejections: Rejections | None = None,
    ) -> None:
        self.topics = topics
        self.counters = counters
        self.frontend_hash = frontend_hash
        self.n_mels = n_mels
        self.reorder_messages = reorder_messages
        self.reorder_wait_s = reorder_wait_s
        self._clock = clock
        self.reject = rejections or Rejections(counters, log)
        self._warn = self.reject.warnings
        self._streams: dict[str, _Stream] = {}
        self._frontend_refused: set[tuple[str, str]] = set()

    @property
    def nurseries(self) -> list[str]:
        return sorted(self._streams)

    def expect(self, frontend_hash: str, n_mels: int) -> None:
        """Accept features of this frontend and shape from now on (a new model)."""
        self.frontend_hash, self.n_mels = frontend_hash, n_mels

    # -- validation ------------------------------------------------------
    def feed(self, topic: str, payload: bytes) -> list[Accepted]:
        self.counters.add("messages")
        parsed = self.topics.parse(topic)
        if parsed is None or parsed[1] != "features":
            self.reject("rejected_topic", "?", topic, "not a nursery features topic")
            return []
        nursery = parsed[0]
        if len(payload) > AudioFeatures.MAX_BYTES:
            self.reject(
                "rejected_oversize",
                nursery,
                topic,
                f"payload of {len(payload)} bytes exceeds {AudioFeatures.MAX_BYTES}",
            )
            return []
        try:
            msg = AudioFeatures.decode(payload)
        except UnsupportedVersionError as exc:
            self.reject("rejected_version", nursery, topic, exc.reason)
            return []
        except MessageError as exc:
            self.reject("rejected_malformed", nursery, topic, exc.reason)
            return []
        if msg.device != nursery:
            self.reject(
                "rejected_topic", nursery, topic, f"device {msg.device!r} cannot speak for it"
            )
            return []
        if msg.frontend != self.frontend_hash:
            self._refuse_frontend(nursery, topic, msg.frontend)
            return []
        if msg.mel.shape[1] != self.n_mels:
            self.reject(
                "rejected_shape",
                nursery,
                topic,
                f"{msg.mel.shape[1]} mel bands, the model takes {self.n_mels}",
            )
            return []
        item = Accepted(nursery, msg, msg.mel.to_numpy(), msg.level.to_numpy())
        return self._order(item, topic)

    def _refuse_frontend(self, nursery: str, topic: str, frontend: str) -> None:
        self.counters.add("rejected_frontend")
        key = (nursery, frontend)
        if key not in self._frontend_refused:
            self._frontend_refused.add(key)
            log.error(
                "REFUSING features from %s on %s: computed with frontend %s, but the model "
                "expects frontend %s; update the edge agent or the model (logged once)",
                nursery,
                topic,
                frontend,
                self.frontend_hash,
            )

    # -- ordering --------------------------------------------------------
    def _order(self, item: Accepted, topic: str) -> list[Accepted]:
        msg, nursery = item.msg, item.nursery
        out: list[Accepted] = []
        st = self._streams.get(nursery)
        if st is None or msg.stream != st.stream:
            if st is not None and msg.stream in st.retired:
                self.reject("out_of_order", nursery, topic, f"stream {msg.stream} was replaced")
                return []
            retired: deque[str] = deque(maxlen=8)
            if st is not None:
                out += self._release(st, force=True)
                retired = st.retired
                retired.append(st.stream)
                self.counters.add("new_streams")
                log.info("%s started a new stream %s (was %s)", nursery, msg.stream, st.stream)
            st = self._streams[nursery] = _Stream(msg.stream, msg.seq, retired=retired)
        seq = msg.seq
        if seq < st.next_seq or seq in st.pending:
            if any(lo <= seq < hi for lo, hi in st.lost):
                self.reject(
                    "out_of_order", nursery, topic, f"seq {seq} arrived after it was given up"
                )
            else:
                self.counters.add("duplicates")
                log.debug("duplicate seq %d from %s", seq, nursery)
            return out
        if seq == st.next_seq:
            out += self._deliver(st, item)
            out += self._release(st)
            return out
        st.pending[seq] = (item, self._clock())
        if len(st.pending) > self.reorder_messages:
            out += self._release(st, force=True)
        return out

    def _deliver(self, st: _Stream, item: Accepted) -> list[Accepted]:
        st.next_seq = item.msg.seq + 1
        st.next_frame = item.msg.frame_index + item.msg.n_frames
        return [item]

    def _release(self, st: _Stream, force: bool = False) -> list[Accepted]:
        """Deliver held messages that follow on; with ``force``, skip over gaps."""
        out: list[Accepted] = []
        while st.pending:
            if st.next_seq in st.pending:
                item, _ = st.pending.pop(st.next_seq)
                self.counters.add("reordered")
                out += self._deliver(st, item)
                continue
            if not force:
                break
            first = min(st.pending)
            self._gap(st, first)
        return out

    def _gap(self, st: _Stream, first: int) -> None:
        item = st.pending[first][0]
        missing = first - st.next_seq
        lost_frames = (
            max(0, item.msg.frame_index - st.next_frame) if st.next_frame is not None else 0
        )
        self.counters.add("gaps")
        self.counters.add("frames_lost", lost_frames)
        st.lost.append((st.next_seq, first))
        self._warn.warn(
            (item.nursery, "gap"),
            "gap from %s: %d message(s) missing before seq %d (%d frames lost)",
            item.nursery,
            missing,
            first,
            lost_frames,
        )
        st.next_seq = first

    def expire(self) -> list[Accepted]:
        """Give up waiting for missing messages held longer than ``reorder_wait_s``."""
        now = self._clock()
        out: list[Accepted] = []
        for st in self._streams.values():
            if st.pending and now - min(t for _, t in st.pending.values()) >= self.reorder_wait_s:
                out += self._release(st, force=True)
        return out

    def forget(self, nursery: str) -> None:
        self._streams.pop(nursery, None)
