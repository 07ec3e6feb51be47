"""Audio blocks -> numbered ``AudioFeatures`` messages (pure: no I/O, no threads).

Runs the shared :class:`StreamingFrontend` (resampling included) and cuts its
frames into messages of ``frames_per_message`` frames. Numbering continues
the spooled :class:`StreamState`: ``seq`` +1 per message, ``frame_index``
counts frames. Capture times are exact: ``t0`` of a frame is the source's
``start_time`` plus its sample position over the rate. For a live source whose
blocks carry wall-clock capture times, a sound card clock that drifts from the
system clock (tens of ppm: seconds per day) is followed by slewing an offset
at most 0.1 % of elapsed audio time once the error exceeds 20 ms, so ``t0``
stays monotonic and within a few tens of ms of the wall clock on a long run.
An error beyond ``CLOCK_STEP_S`` that holds steady for ``CLOCK_CONFIRM_S`` (or
comes right after NTP synchronised) is not drift but the system clock being set
(a Pi without a real-time clock boots with a stale time until NTP steps it): the
mapping steps, with a break in ``frame_index`` so the hub sees it, instead of
slewing for weeks.

A jump in sample position (an overrun dropped blocks) or a restart of the
agent is a *discontinuity*: the pending frames go out, the frontend starts
afresh and ``frame_index`` skips at least one frame (as many as the lost time
spans) so the hub sees the gap instead of gluing unrelated audio together.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nurserycry.shared.frontend import (
    DEFAULT_PARAMS,
    FrontendParams,
    StreamingFrontend,
    decode_db,
)
from nurserycry.shared.schemas import AudioFeatures

from .ring import Block
from .sources import pcm_to_float
from .spool import StreamState

Item = tuple[int, str, bytes]  # (seq, topic, payload)
CLOCK_DEADBAND_S = 0.02  # callback jitter is ignored below this
MAX_SLEW = 0.001  # seconds of correction per second of audio
CLOCK_STEP_S = 1.0  # an error this large is the system clock being set, not drift: step
CLOCK_CONFIRM_S = 5.0  # ... once it has held this long (of audio), or NTP says it synced
CLOCK_STEADY_S = 0.5  # "held": it moved less than this meanwhile

log = logging.getLogger(__name__)


@dataclass
class _Segment:
    """A stretch of contiguous audio: one frontend, one time anchor."""

    pos: int  # first source sample
    frame0: int  # frame_index of its first frame
    t0: float  # capture time of its first sample
    frontend: StreamingFrontend
    emitted: int = 0  # frames produced so far
    mel: list[npt.NDArray[np.int8]] = field(default_factory=list)
    level: list[npt.NDArray[np.int8]] = field(default_factory=list)
    held: int = 0  # frames waiting for a full message
    sent: int = 0  # frames already put into messages


class FeatureBuilder:
    """``push(block)`` / ``finish()`` -> spool items; ``state`` is what to persist."""

    def __init__(
        self,
        nursery: str,
        topic: str,
        state: StreamState,
        *,
        rate: int,
        start_time: float,
        channels: int = 1,
        gain_db: float = 0.0,
        frames_per_message: int = 25,
        params: FrontendParams = DEFAULT_PARAMS,
    ) -> None:
        self.nursery = nursery
        self.topic = topic
        self.rate = rate
        self.start_time = start_time
        self.channels = channels
        self.gain = 10.0 ** (gain_db / 20.0)
        self.frames_per_message = frames_per_message
        self.params = params
        self.stream = state.stream
        self.next_seq = state.next_seq
        self.next_frame = state.next_frame
        self.end_time = state.end_time
        self.frames = 0  # produced in this run
        self.level_dbfs: float | None = None
        self.gaps = 0
        self.clock_offset = 0.0  # slewed correction of a drifting card clock, s (+ steps)
        self.clock_steps = 0  # times the system clock was set under us (NTP)
        self._step_pending = False
        self._errors: deque[tuple[float, float]] = deque()  # (audio s, error) beyond a step
        # sees every block's samples (after gain) and the capture time of its end
        self.tap: Callable[[npt.NDArray[np.float32], float], None] | None = None
        self._expected_pos: int | None = None
        self._seg: _Segment | None = None
        if state.next_seq > 0:
            lost_s = start_time - state.end_time if state.end_time is not None else 0.0
            self.next_frame += self._frames_in(lost_s)

    @property
    def state(self) -> StreamState:
        return StreamState(self.stream, self.next_seq, self.next_frame, self.end_time)

    def _frames_in(self, seconds: float) -> int:
        """Frames to skip for a discontinuity of ``seconds`` (at least one)."""
        return max(1, math.ceil(seconds * self.params.frames_per_second - 1e-6))

    def _new_segment(self, pos: int) -> _Segment:
        return _Segment(
            pos=pos,
            frame0=self.next_frame,
            t0=self.start_time + pos / self.rate,
            frontend=StreamingFrontend(self.rate, self.params),
        )

    def push(self, block: Block) -> list[Item]:
        out: list[Item] = []
        if self._seg is None:
            self._seg = self._new_segment(block.pos)
        elif block.pos != self._expected_pos:
            out += self._close_segment()
            lost = block.pos - (self._expected_pos or 0)
            self.next_frame += self._frames_in(lost / self.rate)
            self.gaps += 1
            self._seg = self._new_segment(block.pos)
        self._expected_pos = block.pos + block.n
        if block.t is not None:
            error = self._clock_error(block)
            if self._clock_was_set(block, error):  # NTP came in, or someone set the clock
                out += self._close_segment()
                self.clock_offset += error
                self.clock_steps += 1
                self.next_frame += 1  # a break: the hub must not glue the two times
                self._seg = self._new_segment(block.pos)
                log.warning(
                    "the system clock was set %+.3f s (NTP synchronised?): capture times "
                    "follow it from now on",
                    error,
                )
            elif abs(error) > CLOCK_DEADBAND_S:  # the card's clock drifts: slew
                step = min(abs(error), MAX_SLEW * block.n / self.rate)
                self.clock_offset += step if error > 0 else -step
        if isinstance(block.samples, bytes):
            samples = pcm_to_float(block.samples, self.channels)
        else:
            samples = block.samples
        if self.gain != 1.0:
            samples = np.clip(samples * np.float32(self.gain), -1.0, 1.0).astype(np.float32)
        if self.tap is not None:
            end = self.start_time + (block.pos + block.n) / self.rate + self.clock_offset
            self.tap(samples, end)
        out += self._frames(self._seg, samples, last=False)
        return out

    def ntp_synchronised(self) -> None:
        """The system clock just became synchronised: step to it at the next block."""
        self._step_pending = True

    def _clock_was_set(self, block: Block, error: float) -> bool:
        """Step (rather than slew) when the error is beyond ``CLOCK_STEP_S`` and either NTP
        has just synchronised, or the error has held steady for ``CLOCK_CONFIRM_S`` of
        audio (a clock set by hand; NTP where the kernel cannot tell). A stalled callback
        or a card without a clock makes the error swing, not hold: those are slewed."""
        pending, self._step_pending = self._step_pending, False
        if abs(error) <= CLOCK_STEP_S:
            self._errors.clear()
            return False
        if pending:
            return True
        at = block.pos / self.rate
        self._errors.append((at, error))
        while self._errors and at - self._errors[0][0] > CLOCK_CONFIRM_S:
            self._errors.popleft()
        errors = [e for _t, e in self._errors]
        steady = (
            at - self._errors[0][0] >= CLOCK_CONFIRM_S - 0.5
            and max(errors) - min(errors) < CLOCK_STEADY_S
        )
        if steady:
            self._errors.clear()
        return steady

    def _clock_error(self, block: Block) -> float:
        assert block.t is not None
        return block.t - (self.start_time + block.pos / self.rate + self.clock_offset)

    def finish(self) -> list[Item]:
        """The end of the audio: flush the resampler and send the last partial message."""
        if self._seg is None:
            return []
        out = self._close_segment()
        self._seg = None
        return out

    def _close_segment(self) -> list[Item]:
        seg = self._seg
        assert seg is not None
        out = self._frames(seg, np.zeros(0, np.float32), last=True)
        return out + self._emit(seg, final=True)

    def _frames(self, seg: _Segment, samples: npt.NDArray[np.float32], last: bool) -> list[Item]:
        feats = seg.frontend.process(samples, last=last)
        if feats.n_frames:
            seg.mel.append(feats.mel)
            seg.level.append(feats.level)
            seg.held += feats.n_frames
            seg.emitted += feats.n_frames
            self.frames += feats.n_frames
            self.level_dbfs = float(decode_db(feats.level[-1:], self.params)[0])
        return self._emit(seg, final=False)

    def _emit(self, seg: _Segment, final: bool) -> list[Item]:
        out: list[Item] = []
        if seg.held < self.frames_per_message and not (final and seg.held):
            return out
        mel = np.concatenate(seg.mel) if len(seg.mel) > 1 else seg.mel[0]
        level = np.concatenate(seg.level) if len(seg.level) > 1 else seg.level[0]
        start = 0
        n = self.frames_per_message
        while seg.held - start >= n or (final and seg.held - start > 0):
            take = min(n, seg.held - start)
            out.append(self._message(seg, mel[start : start + take], level[start : start + take]))
            start += take
        seg.mel = [mel[start:]] if start < seg.held else []
        seg.level = [level[start:]] if start < seg.held else []
        seg.held -= start
        return out

    def _message(
        self, seg: _Segment, mel: npt.NDArray[np.int8], level: npt.NDArray[np.int8]
    ) -> Item:
        hop_s = self.params.hop_length / self.params.sample_rate
        msg = AudioFeatures.from_arrays(
            mel,
            level,
            device=self.nursery,
            stream=self.stream,
            seq=self.next_seq,
            frame_index=seg.frame0 + seg.sent,
            t0=seg.t0 + seg.sent * hop_s + self.clock_offset,
            frontend=self.params.hash,
            sample_rate_in=self.rate,
        )
        item = (self.next_seq, self.topic, msg.encode())
        seg.sent += mel.shape[0]
        self.next_seq += 1
        self.next_frame = seg.frame0 + seg.sent
        self.end_time = seg.t0 + seg.sent * hop_s + self.clock_offset
        return item
