"""Validate, deduplicate and order feature messages (pure: no I/O, no threads).

Per nursery the hub keeps a few *runs*: a run is one stream id (the edge
agent's random id, kept in its spool) with one contiguous numbering of ``seq``.
One run is *in use*: its messages go to the detector, in order:

* ``seq`` as expected: delivered, followed by any held messages it unblocks.
* ``seq`` a little ahead (at most ``MAX_JUMP``): held (at most ``reorder_messages``
  messages or ``reorder_wait_s``) waiting for the missing ones; then the missing
  ones are declared a **gap** (counted, frames lost estimated from
  ``frame_index``) and delivery goes on.
* ``seq`` behind, inside what the run delivered, and no newer in capture time
  than what it delivered: a **duplicate** (QoS 1 redelivery; dropped, counted),
  or **out of order** if it belongs to a range already declared lost.

Anything else starts or continues *another* run: a far jump of ``seq`` (one
forged message with ``seq`` 2^31 must not blind the nursery), a number reused
for newer audio (an SD-card image restored on the Pi: its spool numbers again
from an old ``seq``), another stream id (the agent restarted after a crash or got
a new spool, or a second agent runs for the same nursery). Another run is put in use only

* when the run in use has been silent for ``stream_idle_s`` (an edge restarted
  or came back: its first message is used at once), or
* when it is newer than the run in use and has sent ``promote_after``
  messages (it is live, not a single stray message): the newest live stream
  wins, and the old one is used again as soon as the newer one falls silent.

When a run is put in use, what it sent since the run in use last spoke (at
least its last ``promote_after`` messages, at most ``MAX_WAITING``) is delivered
first; the rest, sent while the other was live, is counted as ``other_stream``.
An older run speaking while a newer one is in use and live (two agents for one
nursery) is logged as a WARNING; a newer one taking over is not (an edge restarted
after a crash sends its old stream's spooled backlog, then numbers in a new one).

Capture times: a message more than ``max_ahead_s`` ahead of the hub's clock
is shifted back to the hub's clock (its run keeps the shift, so the stream stays
continuous), counted ``clock_clamped``: a Pi with a clock in the future keeps
being heard, and no row is dated years ahead. ``clock_skew()`` reports, per
nursery, how far its capture times are from the hub's clock on arrival.

With ``hold_first`` (partitioned hubs: a NATS session sends what the previous
owner left unacknowledged again only after ``ack_wait``, behind newer messages),
the first messages of a nursery this hub has not followed yet are held for
``reorder_wait_s`` (or ``reorder_messages``), then taken lowest ``seq`` first.

Optionally only ``allowed`` nurseries are accepted, and at most ``max_nurseries``
(on an open broker a flood of invented names could otherwise grow without
bound): others are ``rejected_nursery``. Every rejection is counted and logged
once per device and reason per minute.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from nurserycry.shared.errors import MessageError, UnsupportedVersionError
from nurserycry.shared.schemas import AudioFeatures
from nurserycry.shared.topics import Topics

from .counters import Counters, Rejections

log = logging.getLogger(__name__)

MAX_JUMP: Final = 4096  # seq further ahead: another run, not a gap
MAX_RUNS: Final = 8  # runs remembered per nursery (least recently heard forgotten)
MAX_WAITING: Final = 32  # messages a run not in use keeps (16 s of a live edge)
_FRAME_S: Final = 0.02  # 50 frames a second (the frontend's hop)
_SKEW_SAMPLES: Final = 20
CLOCK_AHEAD_WARN_S: Final = 10.0  # a message dated this far ahead: the edge's clock is off


@dataclass(frozen=True)
class Accepted:
    """A valid, in-order feature message. ``t0`` is its capture time on the hub's
    clock (``msg.t0`` unless it had to be clamped); ``restart``: it does not follow
    the previous message delivered for the nursery (another run, or a clamp)."""

    nursery: str
    msg: AudioFeatures
    mel: npt.NDArray[np.int8]
    level: npt.NDArray[np.int8]
    hub_t0: float | None = None
    restart: bool = False
    token: object = None  # the caller's handle on the message (e.g. its MQTT ack)

    @property
    def t0(self) -> float:
        return self.msg.t0 if self.hub_t0 is None else self.hub_t0


@dataclass
class _Run:
    stream: str
    first_seq: int
    next_seq: int
    born: int  # order of creation: a higher one is newer
    last_seen: float
    next_frame: int | None = None
    end_t: float | None = None  # capture time just after the last message taken
    offset: float = 0.0  # added to every t0 of this run (clock clamp, <= 0)
    count: int = 0
    pending: dict[int, tuple[Accepted, float]] = field(default_factory=dict)
    lost: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=32))
    # (arrival, message) while another run is in use
    waiting: deque[tuple[float, Accepted]] = field(default_factory=deque)


@dataclass
class _Nursery:
    runs: list[_Run] = field(default_factory=list)
    active: _Run | None = None
    skew: deque[float] = field(default_factory=lambda: deque(maxlen=_SKEW_SAMPLES))


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
        stream_idle_s: float = 5.0,
        promote_after: int = 3,
        max_ahead_s: float = 300.0,
        allowed: Collection[str] | None = None,
        max_nurseries: int = 1000,
        hold_first: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rejections: Rejections | None = None,
    ) -> None:
        self.topics = topics
        self.counters = counters
        self.frontend_hash = frontend_hash
        self.n_mels = n_mels
        self.reorder_messages = reorder_messages
        self.reorder_wait_s = reorder_wait_s
        self.stream_idle_s = stream_idle_s
        self.promote_after = max(1, promote_after)
        self.max_ahead_s = max_ahead_s
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.max_nurseries = max_nurseries
        self._clock = clock
        self._wall = wall
        self.reject = rejections or Rejections(counters, log)
        self._warn = self.reject.warnings
        self._nurseries: dict[str, _Nursery] = {}
        self.hold_first = hold_first
        # hold_first: (arrival, message, topic) of nurseries not followed yet
        self._starting: dict[str, list[tuple[float, Accepted, str]]] = {}
        self._runs_made = 0
        self._frontend_refused: set[tuple[str, str]] = set()

    @property
    def nurseries(self) -> list[str]:
        return sorted(self._nurseries)

    def holds(self, nursery: str, token: object) -> bool:
        """Whether the message of ``nursery`` fed with ``token`` is held (it comes later)."""
        if any(item.token is token for _t, item, _tp in self._starting.get(nursery, ())):
            return True
        nur = self._nurseries.get(nursery)
        return nur is not None and any(
            item.token is token
            for run in nur.runs
            for item in [*(i for i, _ in run.pending.values()), *(i for _, i in run.waiting)]
        )

    def admits(self, nursery: str) -> bool:
        """Whether messages of ``nursery`` are taken at all (allow-list, cap)."""
        if self.allowed is not None:
            return nursery in self.allowed
        return nursery in self._nurseries or len(self._nurseries) < self.max_nurseries

    def stream_in_use(self, nursery: str) -> str | None:
        nur = self._nurseries.get(nursery)
        return nur.active.stream if nur is not None and nur.active is not None else None

    def clock_skew(self) -> dict[str, float]:
        """Per nursery: capture time minus the hub's clock at arrival, the largest of
        the last messages (the least delayed one): about 0 for a live edge with a good
        clock; > 0: its clock is ahead; < 0: behind, or a backlog still draining."""
        return {n: round(max(s.skew), 3) for n, s in self._nurseries.items() if s.skew}

    def expect(self, frontend_hash: str, n_mels: int) -> None:
        """Accept features of this frontend and shape from now on (a new model)."""
        self.frontend_hash, self.n_mels = frontend_hash, n_mels

    # -- validation ------------------------------------------------------
    def feed(self, topic: str, payload: bytes, token: object = None) -> list[Accepted]:
        self.counters.add("messages")
        parsed = self.topics.parse(topic)
        if parsed is None or parsed[1] != "features":
            self.reject("rejected_topic", "?", topic, "not a nursery features topic")
            return []
        nursery = parsed[0]
        if not self.admits(nursery):
            why = "not in the allowed nurseries" if self.allowed is not None else "too many"
            self.reject("rejected_nursery", nursery, topic, f"unknown nursery ({why})")
            return []
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
        item = Accepted(nursery, msg, msg.mel.to_numpy(), msg.level.to_numpy(), token=token)
        if self.hold_first and nursery not in self._nurseries:
            held = self._starting.setdefault(nursery, [])
            held.append((self._clock(), item, topic))
            return self._start(nursery) if len(held) > self.reorder_messages else []
        return self._order(item, topic)

    def _start(self, nursery: str) -> list[Accepted]:
        """hold_first: follow ``nursery`` from the lowest ``seq`` held."""
        held = self._starting.pop(nursery, [])
        self._nurseries.setdefault(nursery, _Nursery())
        out: list[Accepted] = []
        for _t, item, topic in sorted(held, key=lambda h: h[1].msg.seq):
            out += self._order(item, topic)
        return out

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

    # -- runs ------------------------------------------------------------
    def _order(self, item: Accepted, topic: str) -> list[Accepted]:
        nur = self._nurseries.setdefault(item.nursery, _Nursery())
        now = self._clock()
        msg = item.msg
        arrival_skew = msg.t0 + msg.n_frames * _FRAME_S - self._wall()
        run, behind = self._match(nur, msg)
        if run is not None and behind:
            if any(lo <= msg.seq < hi for lo, hi in run.lost):
                self.reject(
                    "out_of_order",
                    item.nursery,
                    topic,
                    f"seq {msg.seq} arrived after it was given up",
                )
            else:
                self.counters.add("duplicates")
                log.debug("duplicate seq %d from %s", msg.seq, item.nursery)
            return []
        if run is None:
            self._runs_made += 1
            run = _Run(msg.stream, msg.seq, msg.seq, self._runs_made, now)
            nur.runs.append(run)
            self._forget_old_runs(nur)
        run.last_seen = now
        run.count += 1
        item = self._clamp(run, item, arrival_skew)
        out: list[Accepted] = []
        if run is not nur.active:
            had = nur.active is not None
            switched = self._switch(item.nursery, nur, run, now)
            if switched is not None:
                first, delivered = switched
                out += delivered
                item = _restarted(item) if had and not first else item
        if run is nur.active:
            nur.skew.append(arrival_skew)
            out += self._place(run, item)
        else:
            self._wait(run, item)
            self._two_agents(item.nursery, nur, run, now)
        return out

    def _two_agents(self, name: str, nur: _Nursery, run: _Run, now: float) -> None:
        """An older run speaks while a newer one is in use and live: two agents. (A newer
        run taking over from a live one is not enough: an edge restarted after a crash
        sends its old stream's spooled backlog, then its new stream.)"""
        active = nur.active
        if (
            active is not None
            and active.born > run.born
            and now - active.last_seen < self.stream_idle_s
        ):
            self._warn.warn(
                (name, "streams"),
                "two edge agents stream for nursery %s (stream %s and %s): using the "
                "newer; give each agent its own nursery name",
                name,
                run.stream,
                active.stream,
            )

    def _match(self, nur: _Nursery, msg: AudioFeatures) -> tuple[_Run | None, bool]:
        """The run this message belongs to, and whether it is behind (a repeat)."""
        seq = msg.seq
        for run in sorted(nur.runs, key=lambda r: r is not nur.active):
            if run.stream != msg.stream:
                continue
            if seq in run.pending:  # a repeat of one held for reordering
                return run, True
            t0 = msg.t0 + run.offset
            newer = run.end_t is not None and t0 >= run.end_t - 1e-3
            if run.first_seq <= seq < run.next_seq:
                if not newer:
                    return run, True
                continue  # an old number for newer audio: the spool was restored
            if run.next_seq <= seq <= run.next_seq + MAX_JUMP and (
                run.end_t is None or t0 >= run.end_t - 2.0
            ):
                return run, False
        return None, False

    def _clamp(self, run: _Run, item: Accepted, skew: float) -> Accepted:
        ahead = skew + run.offset
        restart = False
        if ahead > self.max_ahead_s:
            run.offset -= ahead
            restart = True
            self.counters.add("clock_clamped")
            self._warn.warn(
                (item.nursery, "clock"),
                "%s: capture time %.0f s ahead of the hub's clock; shifted to the hub's "
                "time (set up NTP on that Pi)",
                item.nursery,
                ahead,
            )
        elif ahead > CLOCK_AHEAD_WARN_S:  # nothing arrives before it was captured
            self._warn.warn(
                (item.nursery, "clock-ahead"),
                "%s: its clock is %.1f s ahead of the hub's (set up NTP on that Pi)",
                item.nursery,
                ahead,
            )
        return Accepted(
            item.nursery,
            item.msg,
            item.mel,
            item.level,
            item.msg.t0 + run.offset,
            restart,
            item.token,
        )

    def _switch(
        self, name: str, nur: _Nursery, run: _Run, now: float
    ) -> tuple[bool, list[Accepted]] | None:
        """Put ``run`` in use if the one in use is silent, or ``run`` is newer and live.
        None if it stays waiting; else (whether its waiting messages went first, and
        what to deliver before the message at hand)."""
        active = nur.active
        idle = active is None or now - active.last_seen >= self.stream_idle_s
        newer_live = (
            active is not None and run.born > active.born and run.count >= self.promote_after
        )
        if not (idle or newer_live):
            return None
        out: list[Accepted] = []
        if active is not None:
            out += self._release(active, force=True)
            if active.stream != run.stream:
                self.counters.add("new_streams")
        nur.active = run
        # what it sent since the run in use fell silent (at least its last few) goes on
        cutoff = active.last_seen if active is not None else float("-inf")
        held = list(run.waiting)
        keep = [a for t, a in held if t > cutoff]
        if len(keep) < self.promote_after:
            keep = [a for _t, a in held[-self.promote_after :]]
        self.counters.add("other_stream", len(held) - len(keep))
        waiting = sorted(keep, key=lambda a: a.msg.seq)
        run.waiting.clear()
        if waiting:
            first = waiting[0]
            run.next_seq, run.next_frame, run.end_t = first.msg.seq, None, None
            for i, item in enumerate(waiting):
                out += self._place(run, item if i else _restarted(item))
        return bool(waiting), out

    def _wait(self, run: _Run, item: Accepted) -> None:
        """A message of a run not in use: keep the numbering, hold the latest few."""
        msg = item.msg
        run.next_seq = max(run.next_seq, msg.seq + 1)
        run.next_frame = msg.frame_index + msg.n_frames
        run.end_t = item.t0 + msg.n_frames * _FRAME_S
        run.waiting.append((self._clock(), item))
        while len(run.waiting) > MAX_WAITING:
            run.waiting.popleft()
            self.counters.add("other_stream")

    def _forget_old_runs(self, nur: _Nursery) -> None:
        while len(nur.runs) > MAX_RUNS:
            idle = [r for r in nur.runs if r is not nur.active]
            oldest = min(idle, key=lambda r: r.last_seen)
            self.counters.add("other_stream", len(oldest.waiting))
            nur.runs.remove(oldest)

    # -- ordering within the run in use -----------------------------------
    def _place(self, run: _Run, item: Accepted) -> list[Accepted]:
        seq = item.msg.seq
        if seq == run.next_seq:
            return self._deliver(run, item) + self._release(run)
        if seq < run.next_seq:  # a waiting message older than one already placed
            self.counters.add("duplicates")
            return []
        run.pending[seq] = (item, self._clock())
        if len(run.pending) > self.reorder_messages:
            return self._release(run, force=True)
        return []

    def _deliver(self, run: _Run, item: Accepted) -> list[Accepted]:
        msg = item.msg
        run.next_seq = msg.seq + 1
        run.next_frame = msg.frame_index + msg.n_frames
        run.end_t = item.t0 + msg.n_frames * _FRAME_S
        return [item]

    def _release(self, run: _Run, force: bool = False) -> list[Accepted]:
        """Deliver held messages that follow on; with ``force``, skip over gaps."""
        out: list[Accepted] = []
        while run.pending:
            if run.next_seq in run.pending:
                item, _ = run.pending.pop(run.next_seq)
                self.counters.add("reordered")
                out += self._deliver(run, item)
                continue
            if not force:
                break
            self._gap(run, min(run.pending))
        return out

    def _gap(self, run: _Run, first: int) -> None:
        item = run.pending[first][0]
        missing = first - run.next_seq
        lost_frames = (
            max(0, item.msg.frame_index - run.next_frame) if run.next_frame is not None else 0
        )
        self.counters.add("gaps")
        self.counters.add("frames_lost", lost_frames)
        run.lost.append((run.next_seq, first))
        self._warn.warn(
            (item.nursery, "gap"),
            "gap from %s: %d message(s) missing before seq %d (%d frames lost)",
            item.nursery,
            missing,
            first,
            lost_frames,
        )
        run.next_seq = first

    def expire(self) -> list[Accepted]:
        """Give up waiting for missing messages held longer than ``reorder_wait_s``."""
        now = self._clock()
        out: list[Accepted] = []
        for nursery in [
            n for n, h in self._starting.items() if now - h[0][0] >= self.reorder_wait_s
        ]:
            out += self._start(nursery)
        for nur in self._nurseries.values():
            run = nur.active
            if (
                run is not None
                and run.pending
                and now - min(t for _, t in run.pending.values()) >= self.reorder_wait_s
            ):
                out += self._release(run, force=True)
        return out


def _restarted(item: Accepted) -> Accepted:
    return Accepted(item.nursery, item.msg, item.mel, item.level, item.t0, True, item.token)
