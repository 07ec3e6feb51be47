"""The shipped default model through the hub's inference wrapper (no TensorFlow)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from nurserycry.shared import model as model_module
from nurserycry.shared.errors import ModelMismatchError
from nurserycry.shared.frontend import DEFAULT_PARAMS, compute_features
from nurserycry.shared.model import CryModel, ModelMetadata, default_model_dir

from tests.audio_gen import cry_like, not_cry


@pytest.fixture(scope="module")
def model() -> CryModel:
    return CryModel.load()


def _windows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    waves = [cry_like(rng, 1.1) if i % 2 else not_cry(rng, 1.1) for i in range(n)]
    return np.stack([compute_features(w).mel[:50] for w in waves])


def test_shipped_model_is_complete_small_and_matches_the_frontend(model: CryModel) -> None:
    directory = default_model_dir()
    for name in (
        "model.tflite",
        "model_float32.tflite",
        "metadata.json",
        "MODEL_CARD.md",
        "report.json",
        "curves.png",
        "confusion.png",
    ):
        assert (directory / name).is_file(), name
    assert (directory / "model.tflite").stat().st_size < 200_000
    assert (directory / "model_float32.tflite").stat().st_size < 200_000
    meta = model.metadata
    assert meta.frontend_hash == DEFAULT_PARAMS.hash
    assert meta.frontend == DEFAULT_PARAMS.to_dict()
    assert meta.crying_label in meta.labels
    assert (meta.window_frames, meta.hop_frames) == (50, 25)
    model.check_frontend(DEFAULT_PARAMS.hash)
    with pytest.raises(ModelMismatchError, match=rf"deadbeef.*{DEFAULT_PARAMS.hash}"):
        model.check_frontend("deadbeef")


def test_predict_shapes_batches_and_range(model: CryModel) -> None:
    wins = _windows(37)
    p = model.predict(wins)
    assert p.shape == (37,) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    one_by_one = np.array([model.predict(w[None])[0] for w in wins])
    np.testing.assert_array_equal(p, one_by_one)  # batching never changes a score
    proba = model.predict_proba(wins)
    assert proba.shape == (37, len(model.metadata.labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=0.02)
    assert model.predict(wins[0]).shape == (1,)  # a single (frames, mels) window
    with pytest.raises(ValueError, match="int8 windows"):
        model.predict(wins.astype(np.float32))
    with pytest.raises(ValueError, match="int8 windows"):
        model.predict(wins[:, :40])


def test_scores_ignore_loudness(model: CryModel) -> None:
    wins = _windows(8, seed=3).astype(np.int16)
    louder = np.clip(wins + 20, -128, 127).astype(np.int8)  # +10 dB in every band
    assert (wins + 20 <= 127).all()
    np.testing.assert_array_equal(model.predict(wins.astype(np.int8)), model.predict(louder))


def test_int8_and_float32_variants_agree(model: CryModel) -> None:
    wins = _windows(40, seed=5)
    f32 = CryModel.load(variant="float32").predict(wins)
    assert np.abs(model.predict(wins) - f32).max() < 0.1


def test_inference_is_fast_on_one_thread(model: CryModel) -> None:
    wins = np.repeat(_windows(10), 100, axis=0)
    model.predict(wins[:300])
    t0 = time.perf_counter()
    model.predict(wins)
    per_window = (time.perf_counter() - t0) / len(wins)
    assert per_window < 1e-3  # target 0.1 ms here; 10x slack for a loaded CI runner


def test_bad_model_dirs_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "m"
    shutil.copytree(default_model_dir(), bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["frontend_hash"] = "0000"
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        CryModel.load(bad)
    meta = json.loads((default_model_dir() / "metadata.json").read_text())
    meta["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        ModelMetadata.model_validate(meta)
    with pytest.raises(FileNotFoundError, match=r"model\.tflite"):
        CryModel.load(tmp_path)
    with pytest.raises(ValueError, match="variant"):
        CryModel.load(variant="fp16")


def test_a_missing_runtime_is_not_logged_as_a_loaded_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An edge-only install: the hub says the runtime is missing, never "loaded model"."""

    def no_runtime() -> None:
        raise ModuleNotFoundError("no TFLite runtime", name="ai_edge_litert")

    monkeypatch.setattr(model_module, "_interpreter_class", no_runtime)
    with caplog.at_level("INFO", logger="nurserycry.shared.model"):
        with pytest.raises(ModuleNotFoundError, match="no TFLite runtime"):
            CryModel.load()
        assert "loaded model" not in caplog.text
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="nurserycry.shared.model"):
        CryModel.load()
    assert "loaded model nurserycry-" in caplog.text
