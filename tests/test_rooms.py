"""Simulated rooms are the same for the same seed on any run (the harness's night streams
and training's far-field examples are built from them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyroomacoustics")


def test_a_seed_makes_the_same_rooms_every_time() -> None:
    from nurserycry.training.rooms import room_bank

    first = room_bank(2, seed=5)
    again = room_bank(2, seed=5)
    other = room_bank(2, seed=6)
    for a, b in zip(first.near + first.far, again.near + again.far, strict=True):
        # the ray tracer's rays are seeded too: unseeded, the tails differed by up to 0.7
        np.testing.assert_array_equal(a, b)
    assert any(
        a.size != b.size or not np.array_equal(a, b)
        for a, b in zip(first.far, other.far, strict=True)
    )


def test_a_cached_bank_is_the_bank_it_was_made_from(tmp_path: Path) -> None:
    from nurserycry.training.rooms import room_bank

    made = room_bank(1, seed=3, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("rooms-v2-1-3-16000.npz")
    loaded = room_bank(1, seed=3, cache_dir=tmp_path)
    assert cached.is_file()
    for a, b in zip(made.near + made.far, loaded.near + loaded.far, strict=True):
        np.testing.assert_array_equal(a, b)
