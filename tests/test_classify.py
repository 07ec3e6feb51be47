"""``nurserycry classify``: generated audio through the hub's detector, JSON out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from nurserycry.cli import main
from nurserycry.shared.detector import DetectorConfig, detect, stream_file
from nurserycry.shared.frontend import compute_features, decode_db

from tests.audio_gen import cry_like, not_cry, write

KEYS = {
    "path",
    "duration_s",
    "windows",
    "cry_probability_max",
    "cry_probability_mean",
    "alert",
    "episodes",
}
EPISODE_KEYS = {"start_s", "end_s", "alert_at_s", "peak", "alert"}


class LoudIsCrying:
    """A stand-in model: a window 'cries' when its loudest band, averaged over the
    window, is above -70 dB (so a window needs ~40% of its frames to be sound)."""

    def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        level = decode_db(mel_codes).max(axis=2).mean(axis=1)
        p: npt.NDArray[np.float32] = (level > -70).astype(np.float32) * 0.98 + 0.01
        return p


def _scene(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """4 s near-silence, 6 s cry-like sound, 4 s near-silence."""

    def quiet(seconds: float) -> npt.NDArray[np.float32]:
        return (1e-5 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32)

    return np.concatenate([quiet(4), cry_like(rng, 6.0), quiet(4)])


def _run(argv: list[str]) -> tuple[int, list[dict[str, object]]]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["classify", *argv])
    return code, [json.loads(line) for line in buf.getvalue().splitlines()]


def test_classify_prints_one_documented_json_line_per_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write(tmp_path / "a" / "scene.wav", _scene(rng))
    write(tmp_path / "a" / "noise.flac", not_cry(rng, 5.0, 8_000), 8_000)
    code, records = _run([str(tmp_path / "a")])
    assert code == 0 and len(records) == 2
    assert [Path(str(r["path"])).name for r in records] == ["noise.flac", "scene.wav"]
    for r in records:
        assert set(r) >= KEYS
        assert isinstance(r["alert"], bool)
        assert 0.0 <= float(r["cry_probability_max"]) <= 1.0  # type: ignore[arg-type]
        episodes = r["episodes"]
        assert isinstance(episodes, list)
        for e in episodes:
            assert set(e) >= EPISODE_KEYS
            assert e["start_s"] <= e["alert_at_s"] <= e["end_s"] + 1e-9
        assert r["alert"] == any(e["alert"] for e in episodes)
    assert records[0]["duration_s"] == 5.0 and records[1]["duration_s"] == 14.0
    assert records[1]["windows"] == 26


def test_detect_alert_time_is_causal(tmp_path: Path) -> None:
    """The alert fires 1.5 s after the onset (2-of-3 windows, 1 s run), and cutting
    the stream right after that moment gives the same alert time."""
    wave = _scene(np.random.default_rng(1))
    path = write(tmp_path / "s.wav", wave)
    full = detect(stream_file(path), LoudIsCrying())
    assert len(full.episodes) == 1 and full.alert
    ep = full.episodes[0]
    assert 2.9 <= ep.start <= 4.0 and 9.5 <= (ep.end or 0) <= 11.0
    assert ep.alert_at - ep.start == 1.5
    cut = wave[: int((ep.alert_at + 0.02) * 16_000)]
    early = detect([compute_features(cut)], LoudIsCrying())
    assert early.episodes[0].alert_at == ep.alert_at and early.episodes[0].start == ep.start
    too_early = detect(
        [compute_features(wave[: int((ep.alert_at - 0.1) * 16_000)])], LoudIsCrying()
    )
    assert not too_early.episodes
    # Chunking never changes the result.
    chunked = detect(stream_file(path, chunk_s=0.37), LoudIsCrying(), DetectorConfig())
    np.testing.assert_array_equal(chunked.probabilities, full.probabilities)


def test_classify_errors_and_subprocess(tmp_path: Path) -> None:
    code, _ = _run([str(tmp_path / "missing.wav")])
    assert code == 2
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    code, records = _run([str(tmp_path / "bad.wav")])
    assert code == 1 and records == []
    path = write(tmp_path / "cry.wav", cry_like(np.random.default_rng(2), 3.0))
    exe = Path(sys.executable).with_name("nurserycry")
    proc = subprocess.run(
        [str(exe), "classify", str(path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["path"] == str(path) and record["windows"] == 4
    # nothing but the JSON: not the TFLite runtime's "Created ... XNNPACK delegate" line
    assert proc.stderr == "", proc.stderr
    script = (
        "import sys; from nurserycry.cli import main; rc = main(['classify', sys.argv[1]]); "
        "sys.exit(rc or 10 * ('tensorflow' in sys.modules))"
    )
    plain = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, check=False, timeout=120
    )
    assert plain.returncode == 0, "classify imported TensorFlow (or failed)"


def test_classify_computes_features_with_the_models_own_frontend(tmp_path: Path) -> None:
    """A model trained on another frontend (24 bands, 40 frames/s) is fed its own
    frames, never the defaults' (the latent bug of the default parameters)."""
    from typing import cast

    from nurserycry.hub.classify import classify_file
    from nurserycry.shared.frontend import DEFAULT_PARAMS, FrontendParams
    from nurserycry.shared.model import CryModel

    params = FrontendParams(n_mels=24, hop_length=400, win_length=800)
    assert params.hash != DEFAULT_PARAMS.hash
    seen: list[tuple[int, ...]] = []

    class OtherFrontendModel:
        def __init__(self) -> None:
            self.params = params
            self.metadata = self

        def detector_config(self) -> DetectorConfig:
            return DetectorConfig(window_frames=40, hop_frames=20)

        def predict(self, mel_codes: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
            seen.append(mel_codes.shape)
            return LoudIsCrying().predict(mel_codes)

    path = write(tmp_path / "cry.wav", cry_like(np.random.default_rng(1), 6.0))
    model = OtherFrontendModel()
    record = classify_file(path, cast(CryModel, model), model.detector_config())
    assert seen and all(shape[1:] == (40, 24) for shape in seen)
    # 6 s at 40 frames/s: 239 frames, so 10 windows of 1 s every 0.5 s
    assert record["windows"] == 10
    assert record["alert"] is True


def test_a_folder_without_audio_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("no audio here")
    (tmp_path / "sub").mkdir()
    code, records = _run([str(tmp_path)])
    assert code == 2 and records == []
    assert f"no audio files (.flac, .ogg, .wav) in {tmp_path}" in capsys.readouterr().err


def test_a_clip_shorter_than_one_window_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    short = write(tmp_path / "short.wav", cry_like(rng, 0.8))
    just = write(tmp_path / "just.wav", cry_like(rng, 1.02))  # exactly one window
    code, records = _run([str(short), str(just)])
    assert code == 0
    assert [r["windows"] for r in records] == [0, 1]
    err = capsys.readouterr().err
    assert f"{short}: 0.8 s is shorter than one window of the model (50 frames, 1.02 s)" in err
    assert str(just) not in err
