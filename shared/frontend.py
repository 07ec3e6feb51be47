"""The audio frontend: 16 kHz mono samples -> quantised log-mel frames.

This module is the single definition of the features the model sees. The edge
agent computes them from the microphone, training computes them from clips, and
both call :func:`compute_features` (one-shot) or :class:`StreamingFrontend`
(chunked), which give bit-identical frames for the same audio.

Output
------
``Features.mel``: ``int8`` array of shape ``(n_frames, n_mels)``. Code ``c``
means ``c / 2 - 50`` dB (0.5 dB steps, -114 .. +13.5 dB), relative to a
full-scale sine's mean-square power being -3 dB (band power, Parseval
scaled). ``Features.level``: ``int8``
array ``(n_frames,)`` with the RMS level of each frame in dBFS, same code.

Frame ``i`` covers samples ``[i*hop, i*hop + win)``: framing is causal, with no
padding, so a frame exists only once all of its samples have arrived.

The band stays within ``fmin..fmax`` (default 125-3800 Hz): half the training
cries are 8 kHz phone audio with nothing above 4 kHz (see the data README), so
the model must not be able to see that band.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

SAMPLE_RATE: Final = 16_000
DB_FLOOR: Final = -100.0
_DB_OFFSET: Final = 50.0
_DB_STEP: Final = 0.5

FloatArray = npt.NDArray[np.float32]
Int8Array = npt.NDArray[np.int8]


@dataclass(frozen=True)
class FrontendParams:
    """Everything that defines the features; its hash travels with every frame."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 640  # 40 ms
    hop_length: int = 320  # 20 ms -> 50 frames per second
    n_mels: int = 32
    fmin: float = 125.0
    fmax: float = 3800.0
    db_floor: float = DB_FLOOR
    quant_offset_db: float = _DB_OFFSET
    quant_step_db: float = _DB_STEP
    version: int = 1
    _hash: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 < fmin < fmax <= {self.sample_rate / 2} Hz")
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError("need 0 < hop_length <= win_length <= n_fft")
        payload = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        object.__setattr__(self, "_hash", digest[:16])

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def hash(self) -> str:
        """A short stable digest: model metadata and every frame carry it."""
        return self._hash

    def to_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> FrontendParams:
        return cls(**data)  # type: ignore[arg-type]


DEFAULT_PARAMS: Final = FrontendParams()


@dataclass(frozen=True)
class Features:
    mel: Int8Array  # (n_frames, n_mels)
    level: Int8Array  # (n_frames,)

    @property
    def n_frames(self) -> int:
        return int(self.mel.shape[0])


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(params: FrontendParams = DEFAULT_PARAMS) -> FloatArray:
    """Triangular HTK-mel filters with unit peak, shape ``(n_mels, n_fft // 2 + 1)``.

    Unit peak (not unit area) means a tone at a band's centre reads its own
    mean-square power in that band.
    """
    edges_mel = np.linspace(
        _hz_to_mel(np.array(params.fmin)), _hz_to_mel(np.array(params.fmax)), params.n_mels + 2
    )
    edges = _mel_to_hz(edges_mel)
    freqs = np.fft.rfftfreq(params.n_fft, 1.0 / params.sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank.flags.writeable = False
    return bank.astype(np.float32)


@lru_cache(maxsize=8)
def _window(params: FrontendParams) -> tuple[FloatArray, float]:
    win = np.hanning(params.win_length + 1)[:-1].astype(np.float32)  # periodic Hann
    # One-sided power spectral density scaled by Parseval: summed over all bins
    # it gives the frame's mean-square power, so a band reads the power of the
    # sound inside it (a sine of amplitude A at a band centre reads ~A^2 / 2).
    scale = 2.0 / (params.n_fft * float(np.sum(np.square(win, dtype=np.float64))))
    return win, scale


def encode_db(db: npt.NDArray[np.floating], params: FrontendParams = DEFAULT_PARAMS) -> Int8Array:
    """Quantise decibels to the int8 wire code (0.5 dB steps)."""
    codes = np.rint((db + params.quant_offset_db) / params.quant_step_db)
    out: Int8Array = np.clip(codes, -128, 127).astype(np.int8)
    return out


def decode_db(codes: npt.NDArray[np.int8], params: FrontendParams = DEFAULT_PARAMS) -> FloatArray:
    """The decibels an int8 wire code stands for."""
    return (codes.astype(np.float32) * params.quant_step_db - params.quant_offset_db).astype(
        np.float32
    )


def _frames_from(samples: FloatArray, params: FrontendParams) -> Features:
    """Frames for every complete window in ``samples`` (which starts on a frame)."""
    n = (
        0
        if samples.size < params.win_length
        else 1 + (samples.size - params.win_length) // params.hop_length
    )
    if n == 0:
        return Features(np.zeros((0, params.n_mels), np.int8), np.zeros((0,), np.int8))
    framed = np.lib.stride_tricks.sliding_window_view(samples, params.win_length)[
        :: params.hop_length
    ][:n]
    win, scale = _window(params)
    spectrum = np.fft.rfft(framed * win, n=params.n_fft, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2) * scale
    mel_power = power @ mel_filterbank(params).T
    floor = 10.0 ** (params.db_floor / 10.0)
    mel_db = 10.0 * np.log10(np.maximum(mel_power, floor))
    mean_square = np.mean(np.square(framed, dtype=np.float64), axis=1)
    level_db = 10.0 * np.log10(np.maximum(mean_square, floor))
    return Features(encode_db(mel_db, params), encode_db(level_db, params))


def _as_float32(samples: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(samples)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    if arr.dtype == np.int16:
        return (arr.astype(np.float32) / 32768.0).astype(np.float32)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"samples must be float in [-1, 1] or int16, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(
    samples: npt.ArrayLike, rate: int, params: FrontendParams = DEFAULT_PARAMS
) -> FloatArray:
    """Resample mono audio at ``rate`` Hz to the frontend's rate (soxr, high quality)."""
    audio = _as_float32(samples)
    if rate == params.sample_rate:
        return audio
    return Resampler(rate, params).process(audio, last=True)


class Resampler:
    """Chunked resampling whose output does not depend on the chunk sizes."""

    def __init__(self, rate: int, params: FrontendParams = DEFAULT_PARAMS) -> None:
        if not 1_000 <= rate <= 384_000:
            raise ValueError(f"unsupported sample rate {rate} Hz")
        self.rate = rate
        self._stream = (
            None
            if rate == params.sample_rate
            else soxr.ResampleStream(rate, params.sample_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, samples: npt.ArrayLike, last: bool = False) -> FloatArray:
        audio = _as_float32(samples)
        if self._stream is None:
            return audio
        out: FloatArray = self._stream.resample_chunk(audio, last=last)
        return out


def compute_features(
    samples: npt.ArrayLike, rate: int = SAMPLE_RATE, params: FrontendParams = DEFAULT_PARAMS
) -> Features:
    """One-shot: mono samples (float in [-1, 1] or int16) at ``rate`` Hz -> features."""
    return _frames_from(resample(samples, rate, params), params)


class StreamingFrontend:
    """Chunked twin of :func:`compute_features`: same frames for any chunking."""

    def __init__(self, rate: int = SAMPLE_RATE, params: FrontendParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._resampler = Resampler(rate, params)
        self._pending = np.zeros(0, np.float32)
        self.frames_emitted = 0

    def process(self, samples: npt.ArrayLike, last: bool = False) -> Features:
        audio = self._resampler.process(samples, last=last)
        buf = np.concatenate([self._pending, audio]) if self._pending.size else audio
        feats = _frames_from(buf, self.params)
        consumed = feats.n_frames * self.params.hop_length
        self._pending = np.array(buf[consumed:], dtype=np.float32, copy=True)
        self.frames_emitted += feats.n_frames
        return feats


def model_input(
    mel_codes: npt.NDArray[np.int8], params: FrontendParams = DEFAULT_PARAMS
) -> FloatArray:
    """Windows of wire codes -> the float tensor the model takes.

    ``mel_codes`` has shape ``(..., n_frames, n_mels)``. Each window has its
    mean removed, so the model judges the shape of a sound, never its loudness
    (the level travels separately).
    """
    db = decode_db(mel_codes, params)
    centred = db - db.mean(axis=(-2, -1), keepdims=True)
    out: FloatArray = (centred / 20.0).astype(np.float32)
    return out
