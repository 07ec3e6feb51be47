"""Unlabelled audio from Debian packages (training/packaged_audio.py), on a fake root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nurserycry.training.packaged_audio import SOURCES, build, excerpts, main

from tests.audio_gen import not_cry


def _fake_root(root: Path, music_s: float = 35.0) -> None:
    """Each source's glob gets two files (OGG at 44.1 kHz, stereo, as the packages ship)."""
    rng = np.random.default_rng(0)
    for src in SOURCES:
        folder = root / src.pattern.replace("*/", "x/").rsplit("/", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(2):
            wave = not_cry(rng, music_s if src.music else 1.5, 44_100)
            stereo = np.stack([wave, wave], axis=1)
            sf.write(str(folder / f"track-{k}.ogg"), stereo, 44_100, format="OGG")


def test_excerpts_are_even_non_overlapping_and_never_longer_than_the_wave() -> None:
    wave = np.arange(100, dtype=np.float32)
    parts = excerpts(wave, 30, 6)
    assert len(parts) == 3  # only three fit without overlap
    assert [int(p[0]) for p in parts] == [0, 35, 70]
    assert all(p.size == 30 for p in parts)
    assert excerpts(wave[:20], 30, 6)[0].size == 20


def test_build_writes_16k_mono_excerpts_grouped_by_track(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    _fake_root(root)
    written = build(out, root=root, excerpt_s=10.0, per_track=6, voice_every=2)
    # music: 35 s tracks give 3 excerpts of 10 s each; voices: every 2nd of 2; sounds: all
    assert written == {
        "wesnoth": 6,
        "hedgewars_music": 6,
        "hedgewars_voices": 1,
        "hedgewars_sounds": 2,
    }
    files = sorted(out.glob("*.flac"))
    assert len(files) == 15
    info = sf.info(str(files[0]))
    assert (info.samplerate, info.channels) == (16_000, 1)
    music = [f for f in files if f.name.startswith("wesnoth")]
    assert {round(sf.info(str(f)).duration, 2) for f in music} == {10.0}
    # one group per track: the stem before '-' (dataset.unlabelled_clips)
    assert len({f.stem.split("-")[0] for f in music}) == 2


def test_a_missing_package_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(FileNotFoundError, match=r"apt-get install wesnoth-1\.16-music"):
        build(tmp_path / "out", root=tmp_path)
    assert main([str(tmp_path / "out2"), "--root", str(tmp_path)]) == 2
    assert "apt-get install" in caplog.text


def test_unlabelled_share_reaches_the_example_maker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--unlabelled-share sets how often a teacher-labelled clip is drawn (default 0.15)."""
    from nurserycry.training import cli, pipeline

    seen = []
    monkeypatch.setattr(pipeline, "run", lambda cfg: seen.append(cfg) or {})
    assert cli.train([str(tmp_path), "--unlabelled-share", "0.3", "--quiet"]) == 0
    assert cli.train([str(tmp_path), "--quiet"]) == 0
    assert [c.examples.teacher_share for c in seen] == [0.3, 0.15]
