"""Read clips as 16 kHz mono float32, with an optional on-disk cache."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
from tqdm import tqdm

from nurserycry.shared.frontend import DEFAULT_PARAMS, FrontendParams, resample

from .dataset import Clip

log = logging.getLogger(__name__)

Wave = npt.NDArray[np.float32]


def read_audio(path: Path, params: FrontendParams = DEFAULT_PARAMS) -> Wave:
    """Any file soundfile reads -> mono float32 at the frontend's sample rate."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    return resample(mono, int(rate), params)


def load_waves(
    clips: Sequence[Clip], cache_dir: Path | None = None, params: FrontendParams = DEFAULT_PARAMS
) -> list[Wave]:
    """Every clip's samples, in order. With ``cache_dir`` they are stored as one
    ``.npz`` keyed by the clip list and the sample rate, and reused."""
    cache: Path | None = None
    if cache_dir is not None:
        digest = hashlib.sha256()
        for c in clips:
            digest.update(f"{c.path}|{c.path.stat().st_size}\n".encode())
        digest.update(str(params.sample_rate).encode())
        cache = cache_dir / f"waves-{digest.hexdigest()[:16]}.npz"
        if cache.is_file():
            log.info("reading cached audio %s", cache)
            with np.load(cache) as npz:
                flat, offsets = npz["flat"], npz["offsets"]
            return [flat[offsets[i] : offsets[i + 1]] for i in range(len(clips))]
    waves = [read_audio(c.path, params) for c in tqdm(clips, desc="reading audio", unit="clip")]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int64)
        np.savez(cache, flat=np.concatenate(waves), offsets=offsets)
        log.info("cached audio in %s", cache)
    return waves
