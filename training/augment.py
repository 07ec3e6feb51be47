"""Waveform augmentation (before the frontend) and spectrogram masking (after it).

Everything takes a seeded ``numpy.random.Generator``, so an epoch is
reproducible. Waveforms are 16 kHz float32.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from scipy import signal

from .synth import coloured_noise

Wave = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; the defaults are what the shipped model used."""

    rms_dbfs: tuple[float, float] = (-55.0, -12.0)  # gain: the level of the sound itself
    floor_dbfs: tuple[float, float] = (-95.0, -65.0)  # microphone self-noise
    white_floor: bool = False  # white self-noise (cheaper) instead of random-coloured
    p_mix: float = 0.5  # a cry over a negative background / two negatives mixed
    mix_snr_db: tuple[float, float] = (0.0, 20.0)
    p_noise: float = 0.3  # coloured background noise
    noise_snr_db: tuple[float, float] = (3.0, 30.0)
    p_reverb: float = 0.3
    rt60_s: tuple[float, float] = (0.1, 0.8)
    p_band_positive: float = 0.5  # band-limit (low-pass / phone) wideband positives ...
    p_band_negative: float = 0.75  # ... and negatives, so the band carries no label
    p_time_mask: float = 0.4
    p_freq_mask: float = 0.4
    # Far field, microphones and codecs (off in the 0.1 recipe):
    p_room: float = 0.0  # a simulated room (rooms.py) instead of the synthetic reverb
    far_share: float = 0.5  # of those, the source across the room
    p_mic: float = 0.0  # a cheap microphone's response (microphone())
    p_mp3: float = 0.0  # an MP3 round trip
    p_onset: float = 0.0  # a cry that starts inside the window (what comes before is quiet)


def crop(wave: Wave, n: int, rng: np.random.Generator) -> Wave:
    """A random ``n``-sample excerpt; a shorter clip lands at a random place in silence."""
    if wave.size >= n:
        start = int(rng.integers(0, wave.size - n + 1))
        return np.array(wave[start : start + n], dtype=np.float32)
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - wave.size + 1))
    out[start : start + wave.size] = wave
    return out


def speed_up(wave: Wave, n: int, rng: np.random.Generator, factor: float) -> Wave:
    """A random excerpt played ``factor`` times faster (pitch up by the same ratio),
    ``n`` samples long: an adult's laugh or chatter made baby-like."""
    need = int(np.ceil(n * factor))
    fast = soxr.resample(crop(wave, need, rng), int(16_000 * factor), 16_000)
    out = np.zeros(n, np.float32)
    out[: min(n, fast.size)] = fast[:n]
    return out


def rms_db(x: Wave) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def set_level(x: Wave, dbfs: float) -> Wave:
    return (x * 10 ** ((dbfs - rms_db(x)) / 20)).astype(np.float32)


def mix(signal_: Wave, background: Wave, snr_db: float) -> Wave:
    """``signal_`` plus ``background`` scaled to ``snr_db`` below it."""
    if rms_db(background) < -150:
        return signal_
    return signal_ + set_level(background, rms_db(signal_) - snr_db)


def reverb(x: Wave, rng: np.random.Generator, rate: int, rt60: tuple[float, float]) -> Wave:
    """Convolve with a synthetic room: exponentially decaying noise, random RT60 and wet share."""
    t60 = rng.uniform(*rt60)
    length = int(rate * t60)
    t = np.arange(length) / rate
    ir = rng.standard_normal(length) * 10 ** (-3 * t / t60)
    ir[0] = 0.0
    ir *= rng.uniform(0.2, 1.0) / (np.sqrt(np.sum(ir**2)) + 1e-12)
    ir[0] = 1.0
    wet: Wave = signal.fftconvolve(x, ir)[: x.size].astype(np.float32)
    return wet


def band_limit(x: Wave, rng: np.random.Generator, rate: int) -> Wave:
    """A random low-pass at 2.8-3.8 kHz, or a phone channel: 8 kHz, 300-3400 Hz, 8-bit mu-law."""
    if rng.random() < 0.5:
        sos = signal.butter(int(rng.integers(4, 9)), rng.uniform(2800, 3800), fs=rate, output="sos")
        low: Wave = signal.sosfilt(sos, x).astype(np.float32)
        return low
    sos = signal.butter(
        4, [rng.uniform(150, 350), rng.uniform(3200, 3500)], btype="band", fs=rate, output="sos"
    )
    y = signal.sosfilt(sos, x).astype(np.float32)
    narrow = soxr.resample(y, rate, 8000)
    peak = float(np.max(np.abs(narrow))) + 1e-9
    mu = 255.0
    comp = np.sign(narrow / peak) * np.log1p(mu * np.abs(narrow / peak)) / np.log1p(mu)
    comp = np.round(comp * 127) / 127
    narrow = peak * np.sign(comp) * np.expm1(np.abs(comp) * np.log1p(mu)) / mu
    back = soxr.resample(narrow.astype(np.float32), 8000, rate)
    out = np.zeros_like(x)
    out[: min(x.size, back.size)] = back[: x.size]
    return out


def add_floor(x: Wave, rng: np.random.Generator, dbfs: float) -> Wave:
    """White microphone self-noise at ``dbfs`` (cheaper than coloured noise)."""
    noise = rng.standard_normal(x.size, dtype=np.float32) * np.float32(10 ** (dbfs / 20))
    return x + noise


def add_noise(x: Wave, rng: np.random.Generator, dbfs: float) -> Wave:
    return x + set_level(coloured_noise(rng, x.size, rng.uniform(0.0, 2.0)), dbfs)


def spec_mask(x: npt.NDArray[np.float32], rng: np.random.Generator, cfg: AugmentConfig) -> None:
    """SpecAugment-style, in place on one model input ``(frames, mels)``: masked cells
    get 0, the window mean (model inputs have their mean removed)."""
    frames, mels = x.shape
    if rng.random() < cfg.p_time_mask:
        width = int(rng.integers(1, frames // 6 + 1))
        start = int(rng.integers(0, frames - width + 1))
        x[start : start + width] = 0.0
    if rng.random() < cfg.p_freq_mask:
        width = int(rng.integers(1, mels // 8 + 1))
        start = int(rng.integers(0, mels - width + 1))
        x[:, start : start + width] = 0.0


def microphone(x: Wave, rng: np.random.Generator, rate: int) -> Wave:
    """A cheap microphone: a high-pass at 60-300 Hz, a +-8 dB resonance somewhere in
    300-3500 Hz and, sometimes, soft clipping of an overdriven capsule or AGC."""
    sos = signal.butter(2, rng.uniform(60, 300), btype="high", fs=rate, output="sos")
    y = signal.sosfilt(sos, x)
    f0, gain = rng.uniform(300, 3500), rng.uniform(-8, 8)
    b, a = _peaking(f0, gain, rng.uniform(0.7, 3.0), rate)
    y = signal.lfilter(b, a, y)
    if rng.random() < 0.3:
        drive = 10 ** (rng.uniform(0, 20) / 20) / (np.max(np.abs(y)) + 1e-9)
        y = np.tanh(y * drive) / drive
    out: Wave = np.asarray(y, np.float32)
    return out


def _peaking(
    f0: float, gain_db: float, q: float, rate: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """RBJ audio-EQ-cookbook peaking filter."""
    amp, w0 = 10 ** (gain_db / 40), 2 * np.pi * f0 / rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp])
    return b / a[0], a / a[0]


def mp3(x: Wave, rng: np.random.Generator, rate: int) -> Wave:
    """Through an MP3 encoder at a random bit rate (soundfile/libsndfile's LAME)."""
    peak = float(np.max(np.abs(x))) + 1e-9
    buf = io.BytesIO()
    sf.write(
        buf,
        x / peak * 0.9,
        rate,
        format="MP3",
        subtype="MPEG_LAYER_III",
        compression_level=float(rng.uniform(0.3, 0.95)),  # above ~0.999 LAME refuses 16 kHz
    )
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    out = np.zeros_like(x)
    out[: min(x.size, y.size)] = y[: x.size] * peak / 0.9
    return out
