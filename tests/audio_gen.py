"""Generated audio for tests: cry-like harmonic sweeps and non-cry noise/tones.

Nothing here is a real cry; it only has the broad shape of one (a 300-600 Hz
fundamental that rises and falls within each ~1 s burst, strong harmonics,
short breaths between bursts), which is enough to train a toy model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

Wave = npt.NDArray[np.float32]


def cry_like(rng: np.random.Generator, seconds: float, rate: int = 16_000) -> Wave:
    """Bursts of 0.6-1.2 s harmonic sweeps (f0 300-600 Hz), 0.1-0.3 s breaths between."""
    out = np.zeros(int(seconds * rate))
    pos = 0
    while pos < out.size:
        n = int(rate * rng.uniform(0.6, 1.2))
        t = np.arange(n) / rate
        f_lo, f_hi = rng.uniform(300, 420), rng.uniform(450, 600)
        f0 = f_lo + (f_hi - f_lo) * np.sin(np.pi * t / t[-1])
        phase = 2 * np.pi * np.cumsum(f0) / rate
        burst = sum(np.sin(k * phase) / k for k in range(1, 7))
        burst *= np.sqrt(np.abs(np.sin(np.pi * t / t[-1])))
        stop = min(pos + n, out.size)
        out[pos:stop] = burst[: stop - pos]
        pos = stop + int(rate * rng.uniform(0.1, 0.3))
    out += 0.003 * rng.standard_normal(out.size)
    wave: Wave = (0.3 * out / np.max(np.abs(out))).astype(np.float32)
    return wave


def not_cry(rng: np.random.Generator, seconds: float, rate: int = 16_000) -> Wave:
    """White noise, a steady tone, or a low hum with noise."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    kind = int(rng.integers(0, 3))
    if kind == 0:
        x = rng.standard_normal(n)
    elif kind == 1:
        x = np.sin(2 * np.pi * rng.uniform(200, 3000) * t) + 0.01 * rng.standard_normal(n)
    else:
        x = np.sin(2 * np.pi * rng.uniform(50, 150) * t) + 0.3 * rng.standard_normal(n)
    wave: Wave = (0.2 * x / np.max(np.abs(x))).astype(np.float32)
    return wave


def write(path: Path, wave: Wave, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, rate)
    return path


def make_dataset(root: Path, per_label: int = 6, seconds: float = 3.0, seed: int = 0) -> Path:
    """``root/crying/<file>`` and ``root/not_crying/<class>/<file>``, at 16 and 8 kHz."""
    rng = np.random.default_rng(seed)
    for i in range(per_label):
        rate = 16_000 if i % 2 == 0 else 8_000
        suffix = ".wav" if i % 3 else ".flac"
        write(root / "crying" / f"baby{i}-take{i}{suffix}", cry_like(rng, seconds, rate), rate)
        cls = "noise" if i % 2 else "tones"
        write(root / "not_crying" / cls / f"room{i}-a{suffix}", not_cry(rng, seconds, rate), rate)
    return root
