"""From ordered feature messages to scored windows, states and episode events (pure).

One :class:`NurseryDetector` per nursery cuts windows; every window that the
batch produced, from every nursery, goes to the model in one ``predict`` call
on a stacked array (reused between batches); the scores go back to each
nursery's episode tracker. The engine knows nothing about MQTT or InfluxDB:
it returns :class:`Outputs` and the service hands them on.

Retained state policy (what Home Assistant records): a nursery's
``NurseryState`` is emitted at once when its ``state``/``crying`` changes; at
most once a second (``STATE_MIN_INTERVAL_S`` of capture time) while an episode
is open or when the cry probability moved by ``PROBABILITY_DEADBAND`` or the
sound level by ``LEVEL_DEADBAND_DB`` since the last one sent; otherwise every
``state_interval_s``. Graphs follow a change within a second, and a quiet room
costs a row a minute, not one per window. Detections go out for every window.

``state`` is ``crying`` exactly while an episode is open (a hot window before the
onset rule fired is ``other``), and "crying minutes today" count an open episode
up to its last crying window, which is where it will end: the number never goes
down within a day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from nurserycry.shared.detector import DetectorConfig, NurseryDetector, Window
from nurserycry.shared.episodes import EpisodeChange, TrackerMemory
from nurserycry.shared.model import ModelMetadata
from nurserycry.shared.schemas import EpisodeEvent, Label, NurseryState
from nurserycry.shared.silence import MicrophoneWatch

from .counters import Counters
from .ingest import Accepted

log = logging.getLogger(__name__)

STATE_MIN_INTERVAL_S: Final = 1.0
PROBABILITY_DEADBAND: Final = 0.05
LEVEL_DEADBAND_DB: Final = 3.0


class HubModel(Protocol):
    """What the hub needs from a model (``CryModel`` or a test double)."""

    @property
    def metadata(self) -> ModelMetadata: ...

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class WindowRecord:
    nursery: str
    t: float  # capture time of the window's end
    probability: float
    label: Label
    level_dbfs: float
    crying: bool
    model: str


@dataclass(frozen=True)
class EpisodeRecord:
    event: EpisodeEvent
    model: str


@dataclass
class Outputs:
    windows: list[WindowRecord] = field(default_factory=list)
    events: list[EpisodeRecord] = field(default_factory=list)
    states: dict[str, NurseryState] = field(default_factory=dict)  # to publish (policy above)
    # states this batch went through before ``states`` (e.g. crying, then not): publish first
    transitions: list[NurseryState] = field(default_factory=list)
    latest: dict[str, NurseryState] = field(default_factory=dict)  # newest, published or not


@dataclass
class _Nursery:
    name: str
    detector: NurseryDetector
    day: dt.date | None = None
    minutes_closed: float = 0.0  # crying minutes of today's finished episodes
    last_episode_s: float | None = None
    emitted: NurseryState | None = None  # the last state handed out
    state: NurseryState | None = None
    microphone: MicrophoneWatch = field(default_factory=lambda: MicrophoneWatch(120.0))


def _shown(state: NurseryState) -> tuple[str, bool, str]:
    """What Home Assistant shows as a change: every change of it goes out at once."""
    return state.state, state.crying, state.microphone


def episode_id(nursery: str, start: float) -> str:
    return f"{nursery}-{round(start * 1000)}"


def _level(db: float) -> float:
    return min(50.0, max(-200.0, db))


class Engine:
    """Per-nursery detectors plus batched scoring."""

    def __init__(
        self,
        model: HubModel,
        config_for: Callable[[str], DetectorConfig],
        counters: Counters,
        state_interval_s: float = 60.0,
        crying_seconds: Callable[[str, float, float], float] | None = None,
        *,
        microphone_silent_s: float = 120.0,
    ) -> None:
        """``crying_seconds(nursery, since, until)``: seconds of crying already recorded
        (the history), so "crying minutes today" survives a restart;
        ``microphone_silent_s``: digital zeros this long make a silent microphone."""
        self.microphone_silent_s = microphone_silent_s
        self.counters = counters
        self.state_interval_s = state_interval_s
        self._config_for = config_for
        self._nurseries: dict[str, _Nursery] = {}
        self._batch: npt.NDArray[np.int8] = np.empty((0, 0, 0), np.int8)
        self._crying_seconds = crying_seconds
        self._recalled: dict[str, TrackerMemory] = {}
        self.model = model

    # -- model -----------------------------------------------------------
    @property
    def model(self) -> HubModel:
        return self._model

    @model.setter
    def model(self, model: HubModel) -> None:
        meta = model.metadata
        old = getattr(self, "_model", None)
        self._model = model
        self.version = meta.model_version
        if old is not None and (
            old.metadata.window_frames,
            old.metadata.hop_frames,
            old.metadata.frontend_hash,
        ) == (meta.window_frames, meta.hop_frames, meta.frontend_hash):
            return
        for name, nursery in self._nurseries.items():  # windows changed shape: cut anew
            nursery.detector.rewindow(self._detector_config(name), meta.frontend_params)

    def _detector_config(self, nursery: str) -> DetectorConfig:
        return self._model.metadata.detector_config(self._config_for(nursery))

    def _detector(self, nursery: str) -> NurseryDetector:
        return NurseryDetector(self._detector_config(nursery), self._model.metadata.frontend_params)

    # -- state -----------------------------------------------------------
    @property
    def nurseries(self) -> list[str]:
        return sorted(self._nurseries)

    def state(self, nursery: str) -> NurseryState | None:
        entry = self._nurseries.get(nursery)
        return entry.state if entry else None

    def retained_from(self, nursery: str) -> int | None:
        """First ``frame_index`` of the nursery's frames not yet used by every window."""
        entry = self._nurseries.get(nursery)
        return entry.detector.assembler.retained_from if entry else None

    def crying(self, nursery: str) -> bool:
        entry = self._nurseries.get(nursery)
        return entry is not None and entry.detector.tracker.current is not None

    # -- memory across restarts ------------------------------------------
    def memories(self) -> dict[str, TrackerMemory]:
        """Each nursery's episode memory (to save), including ones not heard yet."""
        out = dict(self._recalled)
        out.update((n, e.detector.tracker.memory()) for n, e in self._nurseries.items())
        return out

    def recall(self, memories: dict[str, TrackerMemory]) -> None:
        """Memories saved by a previous run; each is used when its nursery is next heard."""
        self._recalled.update(memories)

    def open_recalled(self) -> list[str]:
        return sorted(n for n, m in self._recalled.items() if m.open is not None)

    def _entry(self, name: str) -> _Nursery:
        entry = self._nurseries.get(name)
        if entry is None:
            entry = self._nurseries[name] = _Nursery(
                name, self._detector(name), microphone=MicrophoneWatch(self.microphone_silent_s)
            )
            memory = self._recalled.pop(name, None)
            if memory is not None:
                entry.detector.tracker.recall(memory)
        return entry

    # -- processing ------------------------------------------------------
    def process(self, items: list[Accepted]) -> Outputs:
        out = Outputs()
        pending: list[tuple[str, Window]] = []
        for item in items:
            entry = self._entry(item.nursery)
            windows = entry.detector.push(
                item.mel, item.level, item.t0, item.msg.frame_index, item.restart
            )
            pending += [(item.nursery, w) for w in windows]
        self._score(pending, out)
        for name in {item.nursery for item in items}:  # a gap after the last window
            entry = self._nurseries[name]
            self._changes(name, entry, entry.detector.settle(), out)
        return out

    def close(self, nursery: str) -> Outputs:
        """The nursery's edge is gone: end an open episode now, at its last crying window
        (frames that still come later start a new one)."""
        out = Outputs()
        if nursery in self._recalled:  # never heard since the restart: end it now
            self._entry(nursery)
        entry = self._nurseries.get(nursery)
        if entry is None:
            return out
        changes = entry.detector.tracker.reset()
        if changes:
            self._changes(nursery, entry, changes, out)
            last = entry.state
            if last is not None:
                minutes = entry.minutes_closed
                ended = last.model_copy(
                    update={
                        "state": "other" if last.state == "crying" else last.state,
                        "crying": False,
                        "episode_started_at": None,
                        "last_episode_s": entry.last_episode_s,
                        "crying_minutes_today": round(minutes, 3),
                    }
                )
                entry.state = entry.emitted = out.states[nursery] = out.latest[nursery] = ended
        return out

    def finish(self) -> Outputs:
        """Close every open episode (the hub is stopping)."""
        out = Outputs()
        for name in list(self._recalled):
            self._entry(name)
        for name, entry in self._nurseries.items():
            self._changes(name, entry, entry.detector.finish(), out)
        return out

    def _score(self, pending: list[tuple[str, Window]], out: Outputs) -> None:
        if not pending:
            return
        n = len(pending)
        first = pending[0][1].mel
        shape = (n, *first.shape)
        if self._batch.shape[0] < n or self._batch.shape[1:] != first.shape:
            self._batch = np.empty((max(n, 64), *first.shape), np.int8)
        batch = self._batch[:n]
        for i, (_, window) in enumerate(pending):
            batch[i] = window.mel
        assert batch.shape == shape
        scores = np.nan_to_num(np.asarray(self._model.predict(batch), np.float64), nan=0.0)
        scores = np.clip(scores, 0.0, 1.0)
        self.counters.add("windows", n)
        for (name, window), score in zip(pending, scores.tolist(), strict=True):
            entry = self._nurseries[name]
            result = entry.detector.score(window, score)
            p = result.cry_probability  # the detector may overrule the model (silence)
            if result.changes:
                self._changes(name, entry, result.changes, out)
            crying = entry.detector.tracker.current is not None
            level = _level(window.level_dbfs)
            self._listen(name, entry.microphone, window)
            out.windows.append(
                WindowRecord(name, window.t_end, p, result.label, level, crying, self.version)
            )
            self._state(
                name, entry=entry, t=window.t_end, label=result.label, p=p, level=level, out=out
            )

    def _listen(self, name: str, watch: MicrophoneWatch, window: Window) -> None:
        changed = watch.update(window.t_start, window.t_end, window.level_dbfs)
        if changed:
            self.counters.add("microphone_silent")
            log.warning(
                "%s: nothing but digital silence for %.0f s: is the microphone muted, "
                "unplugged or the wrong input? This nursery hears nothing until it is fixed",
                name,
                watch.silent_s,
            )
        elif changed is False:
            log.info("%s: the microphone hears sound again", name)

    def _today(self, entry: _Nursery, t: float) -> None:
        day = dt.datetime.fromtimestamp(t).date()
        if entry.day is None or day > entry.day:  # a clock set back does not reset the day
            first = entry.day is None
            entry.day, entry.minutes_closed = day, 0.0
            if first and self._crying_seconds is not None:  # the hub restarted today
                start = dt.datetime.combine(day, dt.time()).timestamp()
                entry.minutes_closed = self._crying_seconds(entry.name, start, t) / 60.0

    def _state(
        self,
        name: str,
        *,
        entry: _Nursery,
        t: float,
        label: Label,
        p: float,
        level: float,
        out: Outputs,
    ) -> None:
        self._today(entry, t)
        current = entry.detector.tracker.current
        crying = current is not None
        # a hot window before the onset rule fired is not crying yet
        quiet_or_other = label if label != "crying" else entry.detector.label(0.0, level)
        minutes = entry.minutes_closed
        alive = entry.detector.tracker.alive_until
        if current is not None and alive is not None:
            minutes += max(0.0, alive - current.start) / 60.0
        state = NurseryState(
            device=name,
            t=t,
            state="crying" if crying else quiet_or_other,
            crying=crying,
            cry_probability=p,
            level_dbfs=level,
            episode_started_at=current.start if current is not None else None,
            last_episode_s=entry.last_episode_s,
            crying_minutes_today=round(minutes, 3),
            microphone="silent" if entry.microphone.silent else "ok",
        )
        entry.state = out.latest[name] = state
        if self._due(entry.emitted, state):
            before = out.states.get(name)
            if before is not None and _shown(before) != _shown(state):
                out.transitions.append(before)  # a change inside one batch still goes out
            entry.emitted = out.states[name] = state

    def _due(self, last: NurseryState | None, state: NurseryState) -> bool:
        if last is None or _shown(last) != _shown(state):
            return True
        since = state.t - last.t
        if since >= self.state_interval_s or since < 0:  # or the edge's clock went back
            return True
        return since >= STATE_MIN_INTERVAL_S and (
            state.crying
            or abs(state.cry_probability - last.cry_probability) >= PROBABILITY_DEADBAND
            or abs(state.level_dbfs - last.level_dbfs) >= LEVEL_DEADBAND_DB
        )

    def _changes(
        self, name: str, entry: _Nursery, changes: list[EpisodeChange], out: Outputs
    ) -> None:
        for change in changes:
            ep = change.episode
            ended = change.kind == "ended"
            end = ep.end if ended and ep.end is not None else None
            duration = ep.duration if ended else max(0.0, ep.alert_at - ep.start)
            event = EpisodeEvent(
                device=name,
                event=change.kind,
                episode_id=episode_id(name, ep.start),
                started_at=ep.start,
                alert_at=max(ep.alert_at, ep.start),
                ended_at=end,
                duration_s=max(0.0, duration),
                peak_probability=min(1.0, max(0.0, ep.peak)),
                alert=ep.alert,
            )
            out.events.append(EpisodeRecord(event, self.version))
            if ended and end is not None:
                self.counters.add("episodes")
                self._today(entry, end)
                entry.minutes_closed += event.duration_s / 60.0
                entry.last_episode_s = event.duration_s
                if entry.state is not None:  # publish the closed episode's numbers now
                    entry.emitted = None
            log.info(
                "%s: crying episode %s %s (%.1f s, peak %.2f%s)",
                name,
                event.episode_id,
                change.kind,
                event.duration_s,
                event.peak_probability,
                "" if event.alert else ", within cooldown: no alert",
            )
