"""Generated hard negatives for sounds the data lacks or holds little of.

Each generator returns ``n`` float32 samples at ``rate`` Hz, peak about 0.5:

* ``siren``: wail/yelp sweeps, 500-1800 Hz with harmonics (the fundamental of
  a cry lives in the same range, so the model must learn the difference);
* ``beeps``: on/off tones 400-3500 Hz (alarms, smoke detectors, microwaves, toys);
* ``chords``: music-like note sequences of 1-4 harmonic tones with piano-like decay;
* ``noise_machine``: white, pink or brown noise, optionally with slow swell
  (white-noise machines, fans, hair dryers, washing machines);
* ``motor``: a steady harmonic hum 40-300 Hz plus broadband noise (fans, appliances);
* ``chirps``: short fast FM sweeps 1.5-4 kHz (bird-like);
* ``knocks``: decaying filtered noise bursts at random times (footsteps, doors, toys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

Wave = npt.NDArray[np.float32]
Generator = Callable[[np.random.Generator, int, int], Wave]


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> Wave:
    """Noise whose power falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-exponent / 2)
    x: npt.NDArray[np.float64] = np.fft.irfft(spec, n)
    out: Wave = (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)
    return out


def _harmonic(
    phase: npt.NDArray[np.float64], rng: np.random.Generator, k_max: int
) -> npt.NDArray[np.float64]:
    out = np.zeros_like(phase)
    for k in range(1, k_max + 1):
        out += rng.uniform(0.2, 1.0) / k * np.sin(k * phase)
    return out


def _norm(x: npt.NDArray[np.float64]) -> Wave:
    out: Wave = (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)
    return out


def siren(rng: np.random.Generator, n: int, rate: int) -> Wave:
    t = np.arange(n) / rate
    lo, hi = rng.uniform(500, 900), rng.uniform(1000, 1800)
    period = rng.choice([rng.uniform(0.15, 0.4), rng.uniform(1.5, 5.0)])
    mod = 0.5 + 0.5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    freq = lo + (hi - lo) * mod
    phase = 2 * np.pi * np.cumsum(freq) / rate
    return _norm(_harmonic(phase, rng, int(rng.integers(1, 6))))


def beeps(rng: np.random.Generator, n: int, rate: int) -> Wave:
    t = np.arange(n) / rate
    f = rng.choice([rng.uniform(400, 3500), rng.uniform(2900, 3300)])
    on, off = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.6)
    gate = ((t + rng.uniform(0, on + off)) % (on + off)) < on
    tone = _harmonic(2 * np.pi * f * t, rng, int(rng.integers(1, 3)))
    return _norm(tone * gate + 1e-3 * rng.standard_normal(n))


def chords(rng: np.random.Generator, n: int, rate: int) -> Wave:
    out = np.zeros(n)
    pos = -int(rng.integers(0, rate // 2))
    while pos < n:
        length = int(rate * rng.uniform(0.15, 0.8))
        start, stop = max(pos, 0), min(pos + length, n)
        pos += length
        if stop <= start:
            continue
        t = np.arange(stop - start) / rate
        env = np.exp(-t * rng.uniform(1.0, 8.0))
        for _ in range(int(rng.integers(1, 5))):
            f = 440.0 * 2 ** ((int(rng.integers(40, 88)) - 69) / 12)
            out[start:stop] += env * _harmonic(2 * np.pi * f * t, rng, int(rng.integers(1, 6)))
    return _norm(out)


def noise_machine(rng: np.random.Generator, n: int, rate: int) -> Wave:
    x = coloured_noise(rng, n, float(rng.choice([0.0, 1.0, 2.0, rng.uniform(0, 2)])))
    if rng.random() < 0.5:
        t = np.arange(n) / rate
        x = x * (1 + 0.3 * np.sin(2 * np.pi * t * rng.uniform(0.1, 1.0))).astype(np.float32)
    return _norm(x.astype(np.float64))


def motor(rng: np.random.Generator, n: int, rate: int) -> Wave:
    t = np.arange(n) / rate
    hum = _harmonic(2 * np.pi * rng.uniform(40, 300) * t, rng, int(rng.integers(2, 10)))
    noise = coloured_noise(rng, n, rng.uniform(0, 2)) * rng.uniform(0.1, 1.0)
    return _norm(hum + noise)


def chirps(rng: np.random.Generator, n: int, rate: int) -> Wave:
    out = 1e-3 * rng.standard_normal(n)
    for _ in range(int(rng.integers(2, 12))):
        length = int(rate * rng.uniform(0.03, 0.15))
        start = int(rng.integers(0, max(1, n - length)))
        f0, f1 = rng.uniform(1500, 4000, size=2)
        freq = np.linspace(f0, f1, length)
        seg = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.hanning(length)
        out[start : start + length] += seg[: n - start]
    return _norm(out)


def knocks(rng: np.random.Generator, n: int, rate: int) -> Wave:
    out = 1e-3 * rng.standard_normal(n)
    for _ in range(int(rng.integers(1, 8))):
        length = int(rate * rng.uniform(0.02, 0.2))
        start = int(rng.integers(0, max(1, n - length)))
        burst = coloured_noise(rng, length, rng.uniform(0.5, 2.5))
        burst *= np.exp(-np.arange(length) / (length / 5))
        out[start : start + length] += burst[: n - start]
    return _norm(out)


GENERATORS: Final[dict[str, Generator]] = {
    "siren": siren,
    "beeps": beeps,
    "chords": chords,
    "noise_machine": noise_machine,
    "motor": motor,
    "chirps": chirps,
    "knocks": knocks,
}


def generate(rng: np.random.Generator, n: int, rate: int) -> tuple[str, Wave]:
    """One generated hard negative of a random kind."""
    name = str(rng.choice(list(GENERATORS)))
    return name, GENERATORS[name](rng, n, rate)
