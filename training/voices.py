"""Generated human-like voices, for the teacher to label (``--synthetic-voices``).

A held-out fold of voices and music is where students fail most: they have heard no
speech, song or moaning of that kind, and a harmonic sound at a baby's pitch looks like
a cry to them. A source-filter synthesiser gives them endless voice-like sounds: a
glottal source (harmonics of a fundamental that follows a speech, song, moan or
babble contour, with jitter, vibrato and breath) shaped by the formants of a sequence
of vowels, gated into syllables with fricative and plosive noise between them.

These sounds are not labelled here. A synthetic "waah" at 450 Hz may well be heard
as crying, so the teacher decides what each one is (``pool.teacher_label``), and the
student learns the teacher's embedding of it either way. Each style returns ``n``
float32 samples at ``rate`` Hz, peak about 0.5.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Final

import numpy as np
import numpy.typing as npt

from .synth import Wave, coloured_noise

# Adult male vowel formants (Hz), after Peterson and Barney: F1, F2, F3.
VOWELS: Final = np.array(
    [
        [730, 1090, 2440],  # a
        [270, 2290, 3010],  # i
        [300, 870, 2240],  # u
        [530, 1840, 2480],  # e
        [570, 840, 2410],  # o
        [660, 1720, 2410],  # ae
        [490, 1350, 1690],  # er
    ],
    dtype=np.float64,
)

# Style: (F0 range in Hz, syllables per second, formant scale range).
STYLES: Final[dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]] = {
    "speech": ((80.0, 260.0), (3.0, 7.0), (1.0, 1.25)),
    "child_speech": ((220.0, 420.0), (3.0, 6.0), (1.25, 1.5)),
    "song": ((110.0, 700.0), (1.2, 4.0), (1.0, 1.4)),
    "moan": ((90.0, 350.0), (0.4, 1.5), (1.0, 1.3)),
    "babble": ((250.0, 550.0), (2.0, 5.0), (1.3, 1.6)),
}


def _segments(rng: np.random.Generator, n: int, rate: int, per_s: float) -> npt.NDArray[np.int64]:
    """Syllable boundaries: ``[0, ..., n]`` with lengths around ``1 / per_s`` seconds."""
    mean = rate / per_s
    lengths = rng.uniform(0.5, 1.5, size=int(n / mean * 2) + 4) * mean
    edges = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    edges = edges[edges < n]
    return np.append(edges, n)


def _f0(
    rng: np.random.Generator, style: str, edges: npt.NDArray[np.int64], rate: int
) -> npt.NDArray[np.float64]:
    (lo, hi), _, _ = STYLES[style]
    n = int(edges[-1])
    base = rng.uniform(lo, min(hi, lo * 2.2))
    f0 = np.empty(n)
    for a, b in pairwise(edges):
        t = np.linspace(0.0, 1.0, int(b - a))
        if style == "song":  # a held note on a scale, with vibrato
            note = base * 2 ** (int(rng.integers(-5, 8)) / 12)
            vib = 1 + rng.uniform(0.01, 0.04) * np.sin(
                2 * np.pi * rng.uniform(4.5, 6.5) * t * (b - a) / rate
            )
            f0[a:b] = note * vib
        elif style == "moan":  # a slow glide
            f0[a:b] = base * 2 ** (rng.uniform(-0.5, 0.5) * t + rng.uniform(-0.2, 0.2))
        else:  # speech and babble: a rise or fall per syllable, declining over the phrase
            f0[a:b] = base * (1 + rng.uniform(-0.25, 0.25) * t + rng.uniform(-0.1, 0.1))
    f0 *= np.linspace(1.0, rng.uniform(0.85, 1.0), n) if style != "song" else 1.0
    f0 *= 1 + 0.01 * np.convolve(rng.standard_normal(n), np.ones(80) / 80, mode="same")  # jitter
    return np.clip(f0, 50.0, 1200.0)


def _formants(
    rng: np.random.Generator, edges: npt.NDArray[np.int64], scale: float
) -> npt.NDArray[np.float64]:
    """(n, 3) formant tracks: a vowel per syllable, glided between neighbours."""
    n = int(edges[-1])
    picks = VOWELS[rng.integers(0, len(VOWELS), size=len(edges) - 1)] * scale
    centres = (edges[:-1] + edges[1:]) / 2
    return np.stack([np.interp(np.arange(n), centres, picks[:, j]) for j in range(3)], axis=1)


def _gate(
    rng: np.random.Generator, edges: npt.NDArray[np.int64], style: str
) -> npt.NDArray[np.float64]:
    """Amplitude per sample: each syllable rises and falls; some are silent (pauses)."""
    n = int(edges[-1])
    env = np.zeros(n)
    for a, b in pairwise(edges):
        if style != "song" and rng.random() < 0.15:
            continue
        m = int(b - a)
        attack = max(1, int(m * rng.uniform(0.05, 0.3)))
        release = max(1, int(m * rng.uniform(0.1, 0.4)))
        seg = np.ones(m) * rng.uniform(0.4, 1.0)
        seg[:attack] *= np.linspace(0, 1, attack)
        seg[m - release :] *= np.linspace(1, 0, release)
        env[a:b] = seg
    return env


def voice(rng: np.random.Generator, n: int, rate: int, style: str | None = None) -> Wave:
    """One generated voice of ``style`` (random if ``None``): see ``STYLES``."""
    style = style or str(rng.choice(list(STYLES)))
    _, per_s, (s_lo, s_hi) = STYLES[style]
    edges = _segments(rng, n, rate, rng.uniform(*per_s))
    f0 = _f0(rng, style, edges, rate)
    formants = _formants(rng, edges, rng.uniform(s_lo, s_hi))
    bandwidths = np.array([80.0, 120.0, 180.0]) * rng.uniform(0.8, 2.0)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tilt = rng.uniform(0.8, 1.6)  # source roll-off: breathy (steep) to pressed (flat)
    coarse = np.arange(0, n, 32)  # formants and pitch move slowly: gains on a coarse grid
    top = min(rate / 2 - 200, 6000.0)
    out = np.zeros(n)
    z, zk = np.exp(1j * phase), np.ones(n, np.complex128)  # zk = exp(i k phase), by products
    for k in range(1, int(top / f0.min()) + 1):
        zk *= z
        fk = k * f0[coarse]
        gain = np.zeros(coarse.size)
        for j in range(3):
            gain += np.exp(-0.5 * ((fk - formants[coarse, j]) / bandwidths[j]) ** 2) / (j + 1)
        amp = (gain + 0.02) * k**-tilt * (fk < top)
        out += np.interp(np.arange(n), coarse, amp) * zk.imag
    out *= _gate(rng, edges, style)
    breath = coloured_noise(rng, n, rng.uniform(0.5, 1.5)).astype(np.float64)
    out += rng.uniform(0.005, 0.05) * np.std(out) * breath / (np.std(breath) + 1e-12) * 10
    for a in edges[1:-1]:  # consonants: a short burst of hiss or a plosive at some onsets
        if style in ("speech", "child_speech", "babble") and rng.random() < 0.5:
            m = int(rate * rng.uniform(0.02, 0.08))
            burst = coloured_noise(rng, m, rng.uniform(-1.0, 0.5)).astype(np.float64)
            stop = min(int(a) + m, n)
            out[int(a) : stop] += burst[: stop - int(a)] * np.std(out) * rng.uniform(0.3, 1.5)
    result: Wave = (0.5 * out / (np.max(np.abs(out)) + 1e-12)).astype(np.float32)
    return result
