"""Night streams: long recordings built in code, with cries at known times, and their score.

:func:`build_night` loops a room background (an ambience clip) for the whole
stream at a random level, inserts crying episodes (several cry clips in a row)
at known times, near the microphone or across the room (a simulated room's
impulse response, at 0-10 dB over the background), and non-cry sounds in between
at varied levels (-5 to 25 dB over the background), near or far, never within
``guard_s`` of a cry, so that every alert is either a cry's or a false one.

:func:`score_night` matches alert times against the episodes: an alert between
the start of a cry's audio and ``tolerance_s`` after its end belongs to that cry
(a cry's first sounds can come before its marked onset, the first moment within 10 dB of
its loud part); every other alert is false.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .augment import rms_db, set_level
from .rooms import RoomBank, in_room

Wave = npt.NDArray[np.float32]
RATE = 16_000


@dataclass(frozen=True)
class NightConfig:
    minutes: float = 20.0
    background_dbfs: tuple[float, float] = (-58.0, -40.0)
    episode_s: tuple[float, float] = (8.0, 30.0)  # length of a crying episode
    quiet_between_s: tuple[float, float] = (70.0, 120.0)  # from one episode's end to the next
    near_snr_db: tuple[float, float] = (12.0, 30.0)  # cry over the background
    far_snr_db: tuple[float, float] = (0.0, 10.0)
    far_share: float = 0.5
    negative_snr_db: tuple[float, float] = (-5.0, 25.0)
    negatives_per_minute: float = 4.0
    guard_s: float = 6.0  # no other sound this close to a cry


@dataclass(frozen=True)
class CryEvent:
    onset: float  # seconds: where the cry first comes within 10 dB of its loud part
    end: float
    far: bool
    snr_db: float
    start: float | None = None  # where the cry's audio begins (None: at the onset)

    @property
    def begins(self) -> float:
        return self.onset if self.start is None else min(self.start, self.onset)


@dataclass
class NightStream:
    wave: Wave
    cries: list[CryEvent]
    negatives: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, class
    background: str = ""

    @property
    def hours(self) -> float:
        return self.wave.size / RATE / 3600


def _loop(clip: Wave, n: int, fade: int = 4_000) -> Wave:
    """``clip`` repeated with cross-fades to ``n`` samples."""
    clip = clip[: max(clip.size, 2 * fade + 1)]
    if clip.size <= 2 * fade:
        return np.resize(clip, n).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    body = clip[:-fade].copy()
    body[:fade] = body[:fade] * ramp + clip[-fade:] * (1 - ramp)
    return np.resize(body, n).astype(np.float32)


def onset_of(wave: Wave, below_db: float = 10.0) -> float:
    """Seconds to the first 20 ms frame within ``below_db`` of the loud part (95th pct)."""
    hop = RATE // 50
    frames = wave[: wave.size - wave.size % hop].reshape(-1, hop)
    if frames.size == 0:
        return 0.0
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.percentile(db, 95)
    return float(np.argmax(db >= loud - below_db) * hop / RATE)


def _place(
    out: Wave, x: Wave, start: int, rng: np.random.Generator, rooms: RoomBank, *, far: bool
) -> None:
    y = in_room(x, rooms.pick(rng, far))
    stop = min(out.size, start + y.size)
    out[start:stop] += y[: stop - start]


def build_night(
    rng: np.random.Generator,
    cries: Sequence[Wave],
    negatives: Sequence[tuple[Wave, str]],
    background: tuple[Wave, str],
    rooms: RoomBank,
    *,
    cfg: NightConfig | None = None,
) -> NightStream:
    """One stream; ``cries`` and ``negatives`` are held-out clips (16 kHz)."""
    cfg = cfg or NightConfig()
    n = int(cfg.minutes * 60 * RATE)
    bg_level = rng.uniform(*cfg.background_dbfs)
    out = set_level(_loop(background[0], n), bg_level) if rms_db(background[0]) > -150 else None
    out = out if out is not None else np.zeros(n, np.float32)
    events: list[CryEvent] = []
    t = rng.uniform(20.0, 60.0)
    while True:
        length = rng.uniform(*cfg.episode_s)
        if t + length + 10 > cfg.minutes * 60:
            break
        parts: list[Wave] = []
        while sum(p.size for p in parts) < length * RATE:
            parts.append(cries[int(rng.integers(len(cries)))])
        bout = np.concatenate(parts)[: int(length * RATE)]
        far = bool(rng.random() < cfg.far_share)
        snr = rng.uniform(*(cfg.far_snr_db if far else cfg.near_snr_db))
        _place(out, set_level(bout, bg_level + snr), int(t * RATE), rng, rooms, far=far)
        onset = t + onset_of(bout)
        ends = round(t + length, 3)
        events.append(CryEvent(round(onset, 3), ends, far, round(snr, 1), round(t, 3)))
        t += length + rng.uniform(*cfg.quiet_between_s)
    stream = NightStream(out, events, background=background[1])
    _add_negatives(stream, rng, negatives, rooms, bg_level=bg_level, cfg=cfg)
    stream.wave = np.clip(stream.wave, -1.0, 1.0).astype(np.float32)
    return stream


def _add_negatives(
    stream: NightStream,
    rng: np.random.Generator,
    negatives: Sequence[tuple[Wave, str]],
    rooms: RoomBank,
    *,
    bg_level: float,
    cfg: NightConfig,
) -> None:
    n = stream.wave.size
    busy = [(c.begins - cfg.guard_s, c.end + cfg.guard_s) for c in stream.cries]
    wanted = int(cfg.negatives_per_minute * cfg.minutes)
    for _ in range(wanted * 20):
        if len(stream.negatives) >= wanted or not negatives:
            break
        wave, cls = negatives[int(rng.integers(len(negatives)))]
        if rms_db(wave) < -150:
            continue
        dur = wave.size / RATE
        t = rng.uniform(2.0, n / RATE - dur - 2.0)
        if any(t < b and t + dur > a for a, b in busy):
            continue
        far = bool(rng.random() < cfg.far_share)
        level = bg_level + rng.uniform(*cfg.negative_snr_db)
        _place(stream.wave, set_level(wave, level), int(t * RATE), rng, rooms, far=far)
        busy.append((t, t + dur))
        stream.negatives.append((round(t, 3), round(t + dur, 3), cls))


def score_night(
    streams: Sequence[NightStream], alerts: Sequence[Sequence[float]], tolerance_s: float = 3.0
) -> dict[str, Any]:
    """Episodes alerted, alert delay (median, p95) and false alerts per hour.

    ``alerts[i]`` are the times (stream seconds) at which the detector alerted in
    ``streams[i]``. Delays count from the cry's onset (negative for an alert on its
    first, quieter sounds); the false alerts per hour divide by the stream time outside
    the cries.
    """
    delays: list[float] = []
    missed: list[dict[str, Any]] = []
    false: list[dict[str, Any]] = []
    episodes = far_total = far_hit = 0
    quiet_s = 0.0
    for i, (stream, times) in enumerate(zip(streams, alerts, strict=True)):
        used: set[int] = set()
        for cry in stream.cries:
            episodes += 1
            far_total += cry.far
            mine = [k for k, a in enumerate(times) if cry.begins <= a <= cry.end + tolerance_s]
            if mine:
                used.update(mine)
                delays.append(times[mine[0]] - cry.onset)
                far_hit += cry.far
            else:
                missed.append({"stream": i, **cry.__dict__})
        for k, a in enumerate(times):
            if k not in used:
                near = [c for s, e, c in stream.negatives if s - 1.0 <= a <= e + 3.0]
                false.append({"stream": i, "t": round(a, 2), "during": near[:1] or ["background"]})
        quiet_s += stream.wave.size / RATE - sum(c.end - c.begins for c in stream.cries)
    hours = quiet_s / 3600
    return {
        "streams": len(streams),
        "hours": round(sum(s.hours for s in streams), 3),
        "episodes": episodes,
        "alerted": len(delays),
        "alerted_share": round(len(delays) / episodes, 4) if episodes else None,
        "far_episodes": far_total,
        "far_alerted": far_hit,
        "delay_median_s": round(float(np.median(delays)), 3) if delays else None,
        "delay_p95_s": round(float(np.percentile(delays, 95)), 3) if delays else None,
        "false_alerts": len(false),
        "false_alerts_per_hour": round(len(false) / hours, 3) if hours else None,
        "missed": missed,
        "false": false,
    }
