"""From a stream of frames to windows, labels and episodes (pure, no model inside).

The hub and ``nurserycry classify`` both use :class:`NurseryDetector`: frames
go in with :meth:`~NurseryDetector.push`, which returns complete windows; the
caller scores them with the model however it likes (the hub batches across
nurseries) and hands each score back to :meth:`~NurseryDetector.score`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from .episodes import Episode, EpisodeChange, EpisodeConfig, EpisodeTracker
from .frontend import DEFAULT_PARAMS, Features, FrontendParams, StreamingFrontend, decode_db
from .schemas.detection import Label


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_frames: int = Field(50, ge=8, le=500, description="frames per model window (50 = 1 s)")
    hop_frames: int = Field(25, ge=1, le=500, description="frames between window starts")
    quiet_dbfs: float = Field(-60.0, ge=-120, le=0, description="below this a non-cry is 'quiet'")
    silence_dbfs: float = Field(
        -75.0,
        ge=-120,
        le=-20,
        description="windows quieter than this are not scored: a cry is never this faint, and "
        "the model (which removes each window's mean) must not judge digital silence",
    )
    episodes: EpisodeConfig = EpisodeConfig()


@dataclass(frozen=True)
class Window:
    mel: npt.NDArray[np.int8]  # (window_frames, n_mels) wire codes
    level_dbfs: float  # mean power over the window
    t_start: float
    t_end: float
    after_gap: bool = False  # the first window after a break in the frames


@dataclass(frozen=True)
class WindowResult:
    window: Window
    cry_probability: float
    label: Label
    changes: list[EpisodeChange] = field(default_factory=list)


TIME_JUMP_S = 1.0  # frames numbered on whose capture time jumps this much: a break


class WindowAssembler:
    """Collects frames and cuts windows every ``hop`` frames. A break in
    ``frame_index`` (lost or skipped frames), a jump of the capture time by more
    than ``TIME_JUMP_S`` (a clock step), or one the caller declares, drops the
    partial window and marks the next window ``after_gap``."""

    def __init__(self, window: int, hop: int, params: FrontendParams = DEFAULT_PARAMS) -> None:
        self.window, self.hop, self.params = window, hop, params
        self._mel: npt.NDArray[np.int8] | None = None
        self._level: npt.NDArray[np.int8] | None = None
        self._next_index: int | None = None
        self.gap_pending = False  # a break seen, not yet marked on a window
        self._t_first = 0.0  # capture time of the buffer's first frame
        self._frame_s = params.hop_length / params.sample_rate

    def reset(self) -> None:
        self._mel = self._level = None
        self._next_index = None

    @property
    def retained_from(self) -> int | None:
        """``frame_index`` of the first frame still waiting for a window (every earlier
        frame is used); None before any frame."""
        if self._next_index is None:
            return None
        return self._next_index - (0 if self._mel is None else self._mel.shape[0])

    def push(
        self,
        mel: npt.NDArray[np.int8],
        level: npt.NDArray[np.int8],
        t0: float,
        frame_index: int,
        restart: bool = False,
    ) -> tuple[list[Window], bool]:
        """Add frames; returns the new windows and whether a gap was seen.
        ``restart``: these frames do not follow the previous ones, whatever their index."""
        gap = self._next_index is not None and (restart or frame_index != self._next_index)
        if not gap and self._mel is not None:  # numbered on, but at another time: a clock step
            expected = self._t_first + self._mel.shape[0] * self._frame_s
            gap = abs(t0 - expected) > TIME_JUMP_S
        self.gap_pending = self.gap_pending or gap
        if gap or self._mel is None or self._level is None:
            self._mel, self._level, self._t_first = mel, level, t0
        else:
            self._mel = np.concatenate([self._mel, mel])
            self._level = np.concatenate([self._level, level])
        self._next_index = frame_index + mel.shape[0]
        windows: list[Window] = []
        start = 0
        while start + self.window <= self._mel.shape[0]:
            stop = start + self.window
            level_db = decode_db(self._level[start:stop], self.params)
            mean_db = float(10 * np.log10(np.mean(10 ** (level_db / 10))))
            t_start = self._t_first + start * self._frame_s
            t_end = t_start + self.window * self._frame_s
            windows.append(Window(self._mel[start:stop], mean_db, t_start, t_end, self.gap_pending))
            self.gap_pending = False
            start += self.hop
        if start:
            self._mel, self._level = self._mel[start:], self._level[start:]
            self._t_first += start * self._frame_s
        return windows, gap


class NurseryDetector:
    """One nursery's windows, labels and episode state."""

    def __init__(
        self, config: DetectorConfig | None = None, params: FrontendParams = DEFAULT_PARAMS
    ) -> None:
        self.config = config or DetectorConfig()
        self.assembler = WindowAssembler(self.config.window_frames, self.config.hop_frames, params)
        self.tracker = EpisodeTracker(self.config.episodes)

    def rewindow(self, config: DetectorConfig, params: FrontendParams) -> None:
        """Cut windows of another shape from now on (a model with other windows), keeping
        the episode state: an open episode goes on, and no second one opens for it. Frames
        buffered for the old shape are dropped, so the next window starts after them."""
        self.config = config
        self.assembler = WindowAssembler(config.window_frames, config.hop_frames, params)

    def push(
        self,
        mel: npt.NDArray[np.int8],
        level: npt.NDArray[np.int8],
        t0: float,
        frame_index: int,
        restart: bool = False,
    ) -> list[Window]:
        """Frames in; complete windows out. The first window after a gap carries
        ``after_gap``: scoring it resets the onset rule (and closes an open episode)
        first, so a gap takes effect where it is in the windows, even when many
        windows from both sides of it are scored in one batch."""
        windows, _gap = self.assembler.push(mel, level, t0, frame_index, restart)
        return windows

    def label(self, p: float, level_dbfs: float) -> Label:
        if p >= self.config.episodes.on_threshold:
            return "crying"
        return "quiet" if level_dbfs < self.config.quiet_dbfs else "other"

    def score(self, window: Window, p: float) -> WindowResult:
        if window.level_dbfs < self.config.silence_dbfs:
            p = 0.0
        changes = self.tracker.reset() if window.after_gap else []
        changes += self.tracker.update(window.t_start, window.t_end, p)
        return WindowResult(window, p, self.label(p, window.level_dbfs), changes)

    def settle(self) -> list[EpisodeChange]:
        """Every window pushed so far is scored: a gap seen since, with no window
        after it yet, takes effect now (an open episode ends at once)."""
        if not self.assembler.gap_pending:
            return []
        self.assembler.gap_pending = False
        return self.tracker.reset()

    def finish(self) -> list[EpisodeChange]:
        return self.tracker.finish()


class Scorer(Protocol):
    """Anything that turns windows of wire codes into cry probabilities."""

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]: ...


@dataclass
class StreamResult:
    """Window scores and episodes of one stream."""

    t_end: npt.NDArray[np.float64]
    probabilities: npt.NDArray[np.float32]
    episodes: list[Episode] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return any(e.alert for e in self.episodes)


def detect(
    chunks: Iterable[Features],
    model: Scorer,
    config: DetectorConfig | None = None,
    params: FrontendParams = DEFAULT_PARAMS,
) -> StreamResult:
    """Run frames (in any chunking) through the hub's detector and ``model``.

    ``params`` are the frontend parameters the frames were computed with; for a
    loaded model pass its own (``CryModel.params``), as ``classify`` does (the
    default is the standard frontend, which every model so far was trained on)."""
    detector = NurseryDetector(config, params)
    frame_s = params.hop_length / params.sample_rate
    ends: list[float] = []
    probs: list[float] = []
    episodes: dict[int, Episode] = {}

    def record(changes: list[EpisodeChange]) -> None:
        for change in changes:
            episodes[change.episode.index] = change.episode

    index = 0
    for feats in chunks:
        if feats.n_frames == 0:
            continue
        windows = detector.push(feats.mel, feats.level, index * frame_s, index)
        index += feats.n_frames
        if not windows:
            continue
        p = model.predict(np.stack([w.mel for w in windows]))
        for window, prob in zip(windows, p, strict=True):
            record(detector.score(window, float(prob)).changes)
            ends.append(window.t_end)
            probs.append(float(prob))
    record(detector.finish())
    return StreamResult(
        np.array(ends, np.float64),
        np.array(probs, np.float32),
        [episodes[k] for k in sorted(episodes)],
    )


STREAM_CHUNK_S: Final = 0.5  # files are streamed in half-second chunks, like the edge


def stream_file(
    path: Path, params: FrontendParams = DEFAULT_PARAMS, chunk_s: float = STREAM_CHUNK_S
) -> Iterator[Features]:
    """A file's frames, computed chunk by chunk by the edge's streaming frontend."""
    import soundfile as sf  # noqa: PLC0415 (an extra's library, only for files)

    with sf.SoundFile(str(path)) as fh:
        frontend = StreamingFrontend(int(fh.samplerate), params)
        block = max(1, int(fh.samplerate * chunk_s))
        while True:
            data = fh.read(block, dtype="float32", always_2d=True)
            last = data.shape[0] < block
            yield frontend.process(np.ascontiguousarray(data.mean(axis=1)), last=last)
            if last:
                return
