"""The demo's generated nursery scene: synthetic audio, clearly labelled as such.

When ``nurserycry demo`` has neither a microphone nor a file, it plays this:
room tone, a door, speech-like babble, music, a synthetic baby-cry-like sound
of several seconds, then quiet. Every sound is made here from numbers (no
recording is shipped), so the cry is an imitation built from what makes a cry
a cry:

* a high fundamental (about 350-550 Hz) with an arched melodic contour per
  phonation, vibrato (5-7 Hz) and a little jitter;
* strong harmonics shaped by a formant-like spectral envelope (peaks near
  1.1, 3.2 and 4.9 kHz) and some breath noise;
* phonations of 0.5-1.5 s separated by short noisy inhalations.

Whether a model trained on real recordings fires on it is the model's
business: the demo reports what the hub decided, nothing is forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

Wave = npt.NDArray[np.float32]
Floats = npt.NDArray[np.float64]

SCENE_LABEL: Final = "generated scene (synthetic sounds, not a recording)"
CRY_LABEL: Final = "baby-cry-like synthetic cry"
# (label, seconds) in playing order; the cry is the only crying segment.
DEFAULT_PLAN: Final = (
    ("room tone", 3.0),
    ("door", 1.5),
    ("speech-like babble", 4.0),
    ("music", 4.0),
    ("room tone", 2.0),
    (CRY_LABEL, 9.0),
    ("quiet", 6.0),
)


@dataclass(frozen=True)
class Segment:
    label: str
    start_s: float
    end_s: float

    @property
    def crying(self) -> bool:
        return self.label == CRY_LABEL


@dataclass(frozen=True)
class Scene:
    samples: Wave
    rate: int
    segments: tuple[Segment, ...]
    label: str = SCENE_LABEL

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate


def _db(x: Floats, dbfs: float) -> Floats:
    """Scale ``x`` to an RMS level of ``dbfs`` (a full-scale sine is -3 dBFS)."""
    rms = float(np.sqrt(np.mean(x**2))) + 1e-12
    return x * (10 ** (dbfs / 20) / rms)


def _noise(rng: np.random.Generator, n: int, exponent: float) -> Floats:
    """Noise with power ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x: Floats = np.fft.irfft(spec * f ** (-exponent / 2), n)
    rms = float(np.sqrt(np.mean(x**2))) + 1e-12
    return x / rms


def _fade(x: Floats, rate: int, attack_s: float, release_s: float) -> Floats:
    n = len(x)
    env = np.ones(n)
    a, r = min(n, int(attack_s * rate)), min(n, int(release_s * rate))
    if a:
        env[:a] = np.linspace(0.0, 1.0, a)
    if r:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return x * env


def room_tone(rng: np.random.Generator, n: int, rate: int) -> Floats:
    hum = np.sin(2 * np.pi * 50.0 * np.arange(n) / rate) * 0.2
    return _db(_noise(rng, n, 1.5) + hum, -66.0)


def door(rng: np.random.Generator, n: int, rate: int) -> Floats:
    """A handle click, then a low thud with a short wooden ring."""
    out = np.zeros(n)
    t = np.arange(n) / rate
    click_at, thud_at = int(0.15 * rate), int(0.45 * rate)
    m = min(n - click_at, int(0.03 * rate))
    out[click_at : click_at + m] += _noise(rng, m, 0.0) * np.exp(-np.arange(m) / (0.004 * rate))
    rest = t[: n - thud_at]
    thud = np.sin(2 * np.pi * 70 * rest) + 0.5 * np.sin(2 * np.pi * 180 * rest)
    thud += 0.3 * _noise(rng, len(rest), 1.0)
    out[thud_at:] += thud * np.exp(-rest / 0.12) * 4
    return _db(out, -24.0) + room_tone(rng, n, rate)


def _formant_gain(freqs: Floats, formants: tuple[tuple[float, float], ...]) -> Floats:
    gain = np.full_like(freqs, 0.05)
    for centre, width in formants:
        gain += 1.0 / (1.0 + ((freqs - centre) / width) ** 2)
    return gain


def _harmonics(
    f0: Floats, rate: int, formants: tuple[tuple[float, float], ...], tilt: float
) -> Floats:
    """Additive synthesis: each harmonic's amplitude follows the formant envelope."""
    phase = 2 * np.pi * np.cumsum(f0) / rate
    out = np.zeros_like(f0)
    for k in range(1, int(0.45 * rate / float(np.min(f0))) + 1):
        fk = k * f0
        amp = _formant_gain(fk, formants) * k**-tilt * (fk < 0.45 * rate)
        out += amp * np.sin(k * phase)
    return out


def babble(rng: np.random.Generator, n: int, rate: int) -> Floats:
    """Speech-like babble: syllables of a low voice, vowels changing every ~0.2 s."""
    out = np.zeros(n)
    pos = 0
    vowels = (((700, 130), (1200, 150)), ((300, 80), (2300, 200)), ((500, 100), (900, 120)))
    base = rng.uniform(110, 190)
    while pos < n:
        length = min(n - pos, int(rate * rng.uniform(0.12, 0.3)))
        gap = int(rate * rng.uniform(0.03, 0.12))
        t = np.arange(length) / rate
        f0 = base * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)))
        formants = vowels[int(rng.integers(len(vowels)))]
        out[pos : pos + length] += _fade(_harmonics(f0, rate, formants, 1.0), rate, 0.02, 0.04)
        pos += length + gap
    return _db(out, -28.0) + room_tone(rng, n, rate)


def music(rng: np.random.Generator, n: int, rate: int) -> Floats:
    """A slow music-box melody with chords: piano-like decaying tones."""
    out = np.zeros(n)
    scale = (0, 2, 4, 5, 7, 9, 11, 12)
    pos = 0
    while pos < n:
        length = min(n - pos, int(rate * 0.4))
        t = np.arange(length) / rate
        root = 60 + int(rng.choice(scale))
        for note in (root, root + 4, root + 7):
            f = 440.0 * 2 ** ((note - 69) / 12)
            tone = sum(np.sin(2 * np.pi * k * f * t) / k**1.5 for k in range(1, 5))
            out[pos : pos + length] += tone * np.exp(-t * 4.0)
        pos += length
    return _db(out, -26.0) + room_tone(rng, n, rate)


_CRY_FORMANTS: Final = ((1100.0, 250.0), (3200.0, 400.0), (4900.0, 500.0))


def _phonation(rng: np.random.Generator, n: int, rate: int) -> Floats:
    t = np.arange(n) / rate
    x = t / max(t[-1], 1e-9)
    low, peak = rng.uniform(360, 420), rng.uniform(480, 560)
    arch = low + (peak - low) * np.sin(np.pi * x) ** 0.7  # rise then fall
    vibrato = 1 + 0.035 * np.sin(2 * np.pi * rng.uniform(5, 7) * t + rng.uniform(0, 6))
    jitter = 1 + 0.01 * np.convolve(rng.standard_normal(n), np.ones(80) / 80, mode="same")
    f0 = arch * vibrato * jitter
    voiced = _harmonics(f0, rate, _CRY_FORMANTS, 0.6)
    voiced /= np.sqrt(np.mean(voiced**2)) + 1e-12
    breath = _noise(rng, n, 0.5) * 0.15
    shimmer = 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(8, 12) * t)
    return _fade((voiced * shimmer + breath), rate, 0.06, 0.12)


def _inhalation(rng: np.random.Generator, n: int, rate: int) -> Floats:
    t = np.arange(n) / rate
    envelope: Floats = np.sin(np.pi * t / max(float(t[-1]), 1e-9)) * 0.08
    return _noise(rng, n, 0.3) * envelope


def cry(rng: np.random.Generator, n: int, rate: int) -> Floats:
    """Phonations of 0.5-1.5 s separated by 0.15-0.35 s inhalations."""
    out = np.zeros(n)
    pos = int(0.1 * rate)
    while pos < n:
        length = min(n - pos, int(rate * rng.uniform(0.5, 1.5)))
        out[pos : pos + length] += _phonation(rng, length, rate)
        pos += length
        breath = min(n - pos, int(rate * rng.uniform(0.15, 0.35)))
        if breath > 0:
            out[pos : pos + breath] += _inhalation(rng, breath, rate)
        pos += breath
    return _db(out, -14.0) + room_tone(rng, n, rate)


GENERATORS: Final[dict[str, Callable[[np.random.Generator, int, int], Floats]]] = {
    "room tone": room_tone,
    "quiet": room_tone,
    "door": door,
    "speech-like babble": babble,
    "music": music,
    CRY_LABEL: cry,
}


def generate_scene(
    rate: int = 16_000,
    seed: int = 7,
    plan: tuple[tuple[str, float], ...] = DEFAULT_PLAN,
) -> Scene:
    """Render ``plan`` (label, seconds) into one mono float32 scene."""
    rng = np.random.default_rng(seed)
    parts: list[Floats] = []
    segments: list[Segment] = []
    start = 0.0
    for label, seconds in plan:
        if label not in GENERATORS:
            raise ValueError(f"unknown scene sound {label!r}; one of {sorted(GENERATORS)}")
        n = round(seconds * rate)
        parts.append(GENERATORS[label](rng, n, rate))
        segments.append(Segment(label, start, start + n / rate))
        start += n / rate
    samples = np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
    return Scene(samples, rate, tuple(segments))
