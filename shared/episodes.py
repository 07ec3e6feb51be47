"""Turn window scores into crying episodes: the one rule the hub and ``classify`` share.

A window is *hot* when its cry probability is at least ``on_threshold`` (0.9 by
default: on the harness's night streams it alerted more cry episodes than 0.8
with a fraction of the false alerts, at the same delay; see the model card).

* **Onset** (N of M): an episode opens when ``onset_n`` of the last
  ``onset_m`` windows are hot and the hot run has lasted ``min_episode_s``.
  The alert time is the end of the window that completed the rule, so it is
  causal: it uses only audio up to that moment.
* **Hold / release** (hysteresis): while open, a window with probability at
  least ``off_threshold`` (lower than ``on_threshold``) keeps the episode
  alive; it closes once none has been seen for ``release_s``. The end time is
  the end of the last window that kept it alive.
* **Cooldown**: an episode whose hot run begins within ``cooldown_s`` of the
  last *crying* moment (a window at which the onset rule held) of the last
  episode that *alerted* is tracked as usual but carries ``alert=False``, so a
  parent is not woken twice for one crying bout with a pause in it. Such an
  episode does not extend the cooldown: however often a TV or a cat opens one,
  an alert is held back at most ``cooldown_s`` after the crying of an alerted
  episode (a chained cooldown, restarted by every episode, could keep the
  monitor quiet all night). The cooldown runs from the crying, not from the
  episode's end: a room tone that holds an episode open past its cry (windows
  at ``off_threshold`` or above) does not lengthen it.
* **Late alert**: nor may such a sound hide a later cry. A new hot run inside
  an open episode that completes the onset rule and begins ``cooldown_s`` or
  more after the last crying moment before it (for an episode that alerted),
  or after the last alerted episode's crying (for one that did not), splits it:
  the open episode ends where the run began and the run opens an episode of
  its own, which alerts. Crying less than ``cooldown_s`` apart stays one
  episode.

Times are seconds on any monotonic clock the caller chooses (stream time in
``classify``, capture time in the hub). A *hole* in that time (windows more
than ``release_s`` apart, or time going backwards) is a break in the stream:
an open episode ends at its last crying window and the onset rule starts
afresh, wherever the windows come from (one burst of a backlog included).
When time goes back, the cooldown keeps only what was left of it, so a clock
stepped back by hours cannot hold alerts back for hours.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .settings_errors import conflict

_BACKWARDS_S = 0.1  # a window ending this much before the previous one: time went back


class EpisodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_threshold: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="cry probability that counts as hot (0.9: half the false alerts of 0.8, "
        "same delay)",
    )
    off_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="probability that keeps an episode open (0.35 let a room tone hold one "
        "open for minutes)",
    )
    onset_n: int = Field(2, ge=1, le=20, description="hot windows needed ...")
    onset_m: int = Field(3, ge=1, le=20, description="... among the last M windows")
    min_episode_s: float = Field(1.0, ge=0, le=60, description="hot run length before the alert")
    release_s: float = Field(5.0, ge=0, le=600, description="quiet time that ends an episode")
    cooldown_s: float = Field(
        60.0, ge=0, le=3600, description="no new alert this soon after an alerted episode's crying"
    )

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.onset_n > self.onset_m:
            raise conflict(
                f"onset_n ({self.onset_n}) cannot exceed onset_m ({self.onset_m})",
                "onset_n",
                "onset_m",
            )
        if self.off_threshold > self.on_threshold:
            raise conflict(
                "off_threshold must not be above on_threshold", "off_threshold", "on_threshold"
            )
        return self


@dataclass(frozen=True)
class Episode:
    index: int
    start: float  # start of the first hot window of the run that opened it
    alert_at: float
    end: float | None
    peak: float
    alert: bool

    @property
    def duration(self) -> float:
        return 0.0 if self.end is None else self.end - self.start


@dataclass(frozen=True)
class EpisodeChange:
    kind: Literal["started", "ended"]
    episode: Episode


@dataclass(frozen=True)
class TrackerMemory:
    open: Episode | None
    last_alive: float
    last_alert_end: float | None  # last crying window of the last alerted episode (cooldown)
    prev_end: float | None


class EpisodeTracker:
    """Feed it ``update(t_start, t_end, p)`` per window, in time order."""

    def __init__(self, config: EpisodeConfig | None = None) -> None:
        self.config = config or EpisodeConfig()
        self._recent: deque[tuple[float, bool]] = deque(maxlen=self.config.onset_m)
        self._run_start: float | None = None
        self._open: Episode | None = None
        self._last_alive = 0.0
        self._last_alert_end: float | None = None
        self._prev_end: float | None = None  # end of the last window seen
        self._last_cry: float | None = None  # end of the last window the onset rule held at
        self._cry_before_run: float | None = None  # _last_cry when the current hot run began
        self._count = 0

    @property
    def current(self) -> Episode | None:
        return self._open

    @property
    def alive_until(self) -> float | None:
        """End of the last window that kept the open episode alive: where it would end if
        it closed now (the release tail after it is never part of the episode)."""
        return self._last_alive if self._open is not None else None

    def memory(self) -> TrackerMemory:
        """What must survive a restart (even ``kill -9``): the open episode, when it was
        last alive, the last alerted one's crying (cooldown), the last window's end."""
        return TrackerMemory(self._open, self._last_alive, self._last_alert_end, self._prev_end)

    def recall(self, memory: TrackerMemory) -> None:
        """Carry on from :meth:`memory` saved before a restart. The next window decides:
        close to the saved ones, it continues the open episode (no second alert); after a
        hole longer than ``release_s`` the episode ends at its last crying window, and a
        new one within ``cooldown_s`` of the last alerted end raises no alert."""
        self._open = memory.open
        self._last_alive = memory.last_alive
        self._last_alert_end = memory.last_alert_end
        self._prev_end = memory.prev_end
        self._last_cry = memory.last_alive if memory.open is not None else None
        if memory.open is not None:
            self._count = max(self._count, memory.open.index + 1)

    def reset(self) -> list[EpisodeChange]:
        """Forget the recent windows (a gap in the stream); closes an open episode."""
        changes = self._close() if self._open is not None else []
        self._recent.clear()
        self._run_start = None
        return changes

    def update(self, t_start: float, t_end: float, p: float) -> list[EpisodeChange]:
        cfg = self.config
        changes: list[EpisodeChange] = []
        prev, self._prev_end = self._prev_end, t_end
        back = prev is not None and t_end < prev - _BACKWARDS_S
        if prev is not None and (t_start - prev > cfg.release_s or back):
            changes = self.reset()  # a hole in time: what follows is another stretch
        if back and prev is not None and self._last_alert_end is not None:
            self._last_alert_end -= prev - t_end  # keep what was left of the cooldown, no more
        return changes + self._update(t_start, t_end, p)

    def _update(self, t_start: float, t_end: float, p: float) -> list[EpisodeChange]:
        cfg = self.config
        hot = p >= cfg.on_threshold
        self._recent.append((t_start, hot))
        if hot and self._run_start is None:
            self._run_start = t_start
            self._cry_before_run = self._last_cry
        elif not hot and not any(h for _, h in self._recent):
            self._run_start = None
        fired = self._onset_fired(t_end)
        changes = self._step(t_end, p, fired)
        if fired and hot:  # a crying moment
            self._last_cry = t_end
        return changes

    def _step(self, t_end: float, p: float, fired: bool) -> list[EpisodeChange]:
        cfg = self.config
        if self._open is not None:
            if fired and self._late_alert_due():
                return self._split(t_end, p)
            if p >= cfg.off_threshold:
                self._last_alive = t_end
                if p > self._open.peak:
                    self._open = Episode(**{**self._open.__dict__, "peak": p})
                return []
            if t_end - self._last_alive >= cfg.release_s:
                return self._close()
            return []

        if fired:
            return [self._start(t_end, p, alert=self._may_alert())]
        return []

    def _onset_fired(self, t_end: float) -> bool:
        """``onset_n`` of the last ``onset_m`` windows hot, the run ``min_episode_s`` long."""
        cfg = self.config
        run_start = self._run_start
        return (
            sum(h for _, h in self._recent) >= cfg.onset_n
            and run_start is not None
            and t_end - run_start >= cfg.min_episode_s
        )

    def _may_alert(self) -> bool:
        """The current hot run began ``cooldown_s`` or more after the last alerted
        episode's crying."""
        last, run_start = self._last_alert_end, self._run_start
        return last is None or (
            run_start is not None and run_start - last >= self.config.cooldown_s
        )

    def _late_alert_due(self) -> bool:
        """A new run in the open episode would alert had the episode ended before it."""
        assert self._open is not None
        if not self._open.alert:
            return self._may_alert()
        before, run_start = self._cry_before_run, self._run_start
        return (
            before is not None
            and run_start is not None
            and run_start - before >= self.config.cooldown_s
        )

    def _start(self, t_end: float, p: float, *, alert: bool) -> EpisodeChange:
        assert self._run_start is not None
        self._open = Episode(self._count, self._run_start, t_end, None, p, alert)
        self._count += 1
        self._last_alive = t_end
        self._cry_before_run = None  # this run is the episode's own: it cannot split it
        return EpisodeChange("started", self._open)

    def _split(self, t_end: float, p: float) -> list[EpisodeChange]:
        """Late alert: the open episode ends where the new run began (or where it was last
        alive, if earlier: an episode never shrinks), and the run opens one that alerts.
        An alerted episode's crying before the run is where the cooldown runs from."""
        old, run_start = self._open, self._run_start
        assert old is not None
        assert run_start is not None
        if old.alert:
            self._last_alert_end = self._cry_before_run
        end = max(old.start, min(self._last_alive, run_start))
        ended = Episode(**{**old.__dict__, "end": end})
        return [EpisodeChange("ended", ended), self._start(t_end, p, alert=True)]

    def finish(self) -> list[EpisodeChange]:
        """End of the stream: close an open episode at its last crying window."""
        return self._close() if self._open is not None else []

    def _close(self) -> list[EpisodeChange]:
        assert self._open is not None
        ended = Episode(**{**self._open.__dict__, "end": self._last_alive})
        self._open = None
        if ended.alert:  # one that raised no alert leaves the cooldown where it was
            cry = self._last_cry  # the cooldown runs from its crying, not from a tone's hold
            self._last_alert_end = cry if cry is not None and cry >= ended.start else ended.end
        self._run_start = None
        self._recent.clear()
        return [EpisodeChange("ended", ended)]
