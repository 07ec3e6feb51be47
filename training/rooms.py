"""Simulated rooms: impulse responses from a source near or far from the microphone.

:func:`room_bank` simulates shoebox rooms with ``pyroomacoustics`` (image sources
for the early reflections, ray tracing for the tail, air absorption), RT60
0.25-0.9 s, the source 0.4-1.2 m (near) or 2.5-6 m (far) from the microphone.
A bank is cached on disk (``.npz``) because a room costs about 0.1 s. The ray
tracer draws its rays from pyroomacoustics' own generators (C++ and numpy), so each
room seeds them from the bank's generator: the same seed makes the same rooms on any
machine. (Unseeded, a rebuilt cache moved the harness's night figures by up to 3
episodes and 2.4 false alerts per hour.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

log = logging.getLogger(__name__)

Wave = npt.NDArray[np.float32]
NEAR_M = (0.4, 1.2)
FAR_M = (2.5, 6.0)


@dataclass(frozen=True)
class RoomBank:
    near: list[Wave]
    far: list[Wave]

    def pick(self, rng: np.random.Generator, far: bool) -> Wave:
        irs = self.far if far else self.near
        return irs[int(rng.integers(len(irs)))]


def _one_room(rng: np.random.Generator, rate: int, far: bool) -> Wave:
    import pyroomacoustics as pra  # noqa: PLC0415  (the train extra; imported when rooms are made)

    for _ in range(50):
        dim = np.array([rng.uniform(3, 7), rng.uniform(2.8, 5.5), rng.uniform(2.4, 3.0)])
        mic = dim * rng.uniform(0.15, 0.85, 3)
        mic[2] = rng.uniform(0.8, 2.0)
        lo, hi = FAR_M if far else NEAR_M
        direction = rng.standard_normal(3)
        direction[2] *= 0.2
        src = mic + direction / np.linalg.norm(direction) * rng.uniform(lo, hi)
        if np.all(src > 0.2) and np.all(src < dim - 0.2):
            break
    else:  # a small room cannot fit that distance: take the far corner
        src = np.where(mic > dim / 2, 0.3, dim - 0.3)
    absorption, _ = pra.inverse_sabine(rng.uniform(0.25, 0.9), dim)
    ray_seed = int(rng.integers(2**63))
    pra.random.seed(numpy=ray_seed, libroom=ray_seed)
    room = pra.ShoeBox(
        dim,
        fs=rate,
        materials=pra.Material(absorption),
        max_order=3,
        ray_tracing=True,
        air_absorption=True,
    )
    room.set_ray_tracing(receiver_radius=0.5, n_rays=2000, energy_thres=1e-5)
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    ir = np.asarray(room.rir[0][0], np.float32)
    peak = int(np.argmax(np.abs(ir)))
    ir = ir[max(0, peak - 16) :]  # the direct sound at the start: no added latency
    out: Wave = (ir / (np.abs(ir).max() + 1e-12)).astype(np.float32)
    return out


def room_bank(count: int, seed: int, cache_dir: Path | None = None, rate: int = 16_000) -> RoomBank:
    """``count`` near and ``count`` far rooms, reproducible from ``seed``."""
    name = f"rooms-v2-{count}-{seed}-{rate}.npz"  # v2: seeded rays (v1 banks differ per run)
    cache = cache_dir / name if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as npz:
            flat, offsets = npz["flat"], npz["offsets"]
        irs = [flat[offsets[i] : offsets[i + 1]] for i in range(offsets.size - 1)]
        return RoomBank(irs[:count], irs[count:])
    rng = np.random.default_rng([seed, 7])
    near = [_one_room(rng, rate, far=False) for _ in range(count)]
    far = [_one_room(rng, rate, far=True) for _ in range(count)]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        irs = near + far
        offsets = np.concatenate([[0], np.cumsum([ir.size for ir in irs])]).astype(np.int64)
        np.savez(cache, flat=np.concatenate(irs), offsets=offsets)
        log.info("cached %d rooms in %s", 2 * count, cache)
    return RoomBank(near, far)


def in_room(x: Wave, ir: Wave) -> Wave:
    """``x`` as the microphone hears it in the room of ``ir`` (same length, same start)."""
    wet: Wave = signal.fftconvolve(x, ir)[: x.size].astype(np.float32)
    return wet
