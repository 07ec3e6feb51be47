"""Shipping the student's copy of the teacher's cry score (training/cry_head.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio_gen import make_dataset

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def _student(seed: int = 0):  # type: ignore[no-untyped-def]
    import keras

    from nurserycry.training.model import build_student

    keras.utils.set_random_seed(seed)
    student = build_student(50, 32, 2, width=8, embedding_size=8, n_scores=30)
    scores = student.get_layer("scores")
    kernel, bias = scores.get_weights()
    rng = np.random.default_rng(seed)
    scores.set_weights([rng.normal(0, 3, kernel.shape), rng.normal(0, 2, bias.shape)])
    return student


def _logit(p: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    p64 = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p64) - np.log1p(-p64)


def test_the_export_is_the_calibrated_max_of_the_cry_columns() -> None:
    from nurserycry.training.cry_head import teacher_cry_model

    student = _student()
    x = np.random.default_rng(1).standard_normal((6, 50, 32)).astype(np.float32)
    scores = student.predict(x, verbose=0)["scores"]
    z = _logit(scores[:, [19, 20, 21]]).max(axis=1)
    a, b = 1.5, -0.5
    expected = 1 / (1 + np.exp(-(a * z + b)))
    out = teacher_cry_model(student, (a, b), ["crying", "not_crying"], "crying").predict(
        x, verbose=0
    )
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    swapped = teacher_cry_model(student, (a, b), ["not_crying", "crying"], "crying")
    np.testing.assert_allclose(swapped.predict(x, verbose=0)[:, 1], out[:, 0], atol=1e-6)


def test_calibration_learns_which_way_the_score_points_and_wrong_students_fail() -> None:
    import keras

    from nurserycry.training.cry_head import calibrate, cry_logit_model, teacher_cry_model
    from nurserycry.training.model import build_student

    student = _student(2)
    x = np.random.default_rng(3).standard_normal((400, 50, 32)).astype(np.float32)
    z = cry_logit_model(student).predict(x, verbose=0)[:, 0]
    a, _ = calibrate(student, x, z > np.median(z))
    assert a > 1.0  # a high cry logit means crying
    a_flipped, _ = calibrate(student, x, z < np.median(z))
    assert a_flipped < -1.0
    with pytest.raises(ValueError, match="a <= 0"):
        teacher_cry_model(student, (a_flipped, 0.0), ["crying", "not_crying"], "crying")
    with pytest.raises(ValueError, match="two labels"):
        teacher_cry_model(student, (1.0, 0.0), ["crying", "voice", "not_crying"], "crying")
    keras.utils.set_random_seed(0)
    plain = build_student(50, 32, 2, width=8)
    with pytest.raises(ValueError, match="--teacher"):
        teacher_cry_model(plain, (1.0, 0.0), ["crying", "not_crying"], "crying")


class BandTeacher:
    """Calls a chunk crying (class 20) by its share of energy at 250-700 Hz."""

    chunk_samples, embedding_size, n_scores, name = 15_600, 8, 521, "band"

    def run(self, chunks: npt.NDArray[np.float32]):  # type: ignore[no-untyped-def]
        from nurserycry.training.teacher import TeacherOutput

        spec = np.abs(np.fft.rfft(chunks, axis=1)) ** 2
        freqs = np.fft.rfftfreq(chunks.shape[1], 1 / 16_000)
        share = spec[:, (freqs > 250) & (freqs < 700)].sum(1) / (spec.sum(1) + 1e-9)
        scores = np.zeros((len(chunks), 521), np.float32)
        scores[:, 20] = np.clip(share, 0.01, 0.99)
        emb = np.repeat(share[:, None], 8, axis=1).astype(np.float32)
        return TeacherOutput(emb, scores)


def train_saved_student(
    data: Path, tmp: Path, **overrides: Any
) -> tuple[Any, dict[str, Any], Path]:
    """A small teacher-trained student saved with ``--save-keras`` under ``tmp/model`` (the
    :class:`BandTeacher`): its ``RunConfig``, its report and its pool."""
    from nurserycry.training.pipeline import RunConfig, run
    from nurserycry.training.trainer import TrainConfig

    cfg = RunConfig(
        data_dir=data,
        out=tmp / "model",
        cache_dir=tmp / "cache",
        split="none",
        pool_examples=384,
        save_keras=True,
        train=TrainConfig(epochs=4, batch_size=32, width=8, verbose=0, scores_weight=20.0),
        **overrides,
    )
    report = run(cfg, teacher=BandTeacher())
    return cfg, report, next((tmp / "cache").glob("pool-*.npz"))


def test_train_with_output_teacher_cry_ships_the_calibrated_head(
    dataset: Path, tmp_path: Path
) -> None:
    import keras

    from nurserycry.shared.frontend import model_input
    from nurserycry.shared.model import CryModel
    from nurserycry.training.cry_head import cry_logit_model, reexport
    from nurserycry.training.pipeline import RunConfig, run

    cfg, report, pool = train_saved_student(dataset, tmp_path, output="teacher-cry")
    output = report["training"]["output"]
    assert output["head"] == "teacher-cry" and output["classes"] == [19, 20, 21]
    a, b = output["calibration"]
    meta = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert meta["training"]["output"]["calibration"] == [a, b]
    from nurserycry.training.card import _output

    assert f"p = sigmoid({a:.3f} z {b:+.3f})" in _output(output)
    assert _output({"head": "labels"}) == ""

    # what the hub runs is sigmoid(a * z + b) of the saved student's cry logits
    student = keras.models.load_model(tmp_path / "model" / "model.keras", compile=False)
    with np.load(pool) as npz:
        codes = npz["codes"][:40]  # training-like windows: int8 ranges were set on such
    z = cry_logit_model(student).predict(model_input(codes), verbose=0)[:, 0]
    expected = 1 / (1 + np.exp(-(a * z + b)))
    shipped = CryModel.load(tmp_path / "model", variant="float32").predict(codes)
    np.testing.assert_allclose(shipped, expected, rtol=1e-3, atol=1e-4)
    int8 = CryModel.load(tmp_path / "model").predict(codes)  # what the hub runs by default
    np.testing.assert_allclose(int8, shipped, atol=0.05)
    assert np.ptp(shipped) > 0.05  # the windows are told apart

    # re-exporting the saved student from its pool gives the same calibration
    reexport(tmp_path / "model", pool, tmp_path / "again", model_version="again-1")
    again = json.loads((tmp_path / "again" / "metadata.json").read_text())
    assert again["model_version"] == "again-1"
    np.testing.assert_allclose(again["training"]["output"]["calibration"], [a, b], rtol=1e-4)

    labels_only = RunConfig(**{**cfg.__dict__, "output": "teacher-cry", "pool_examples": 0})
    with pytest.raises(ValueError, match="needs --teacher"):
        run(labels_only)


def test_labelled_cry_score_sets_the_baby_cry_target_on_crying_examples_only(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nurserycry.training import trainer
    from nurserycry.training.audio import load_waves
    from nurserycry.training.dataset import discover_folders
    from nurserycry.training.examples import ExampleConfig, ExampleMaker
    from nurserycry.training.pool import Pool

    clips = discover_folders(dataset)
    maker = ExampleMaker(
        clips,
        load_waves(clips),
        ["crying", "not_crying"],
        crying_label="crying",
        config=ExampleConfig(),
    )
    labels = np.array([0, 1, 1, 0, 1, 0, 1, 1], np.int64)  # crying is label 0
    pool = Pool(
        codes=np.zeros((8, 50, 32), np.int8),
        labels=labels,
        weights=np.ones(8, np.float32),
        embedding=np.ones((8, 4), np.float16),
        scores=np.full((8, 521), 0.25, np.float16),
    )
    seen = []
    monkeypatch.setattr(trainer, "_fit_epoch", lambda model, data, *a, **k: seen.append(data[1]))
    for flag in (False, True):
        cfg = trainer.TrainConfig(epochs=1, width=8, verbose=0, labelled_cry_score=flag)
        trainer.train_on_pool(pool, maker, cfg)
    plain, corrected = (s["scores"] for s in seen)
    assert np.all(plain == 0.25)
    assert np.all(corrected[labels == 0, 20] == 1.0)
    assert np.all(corrected[labels == 1, 20] == 0.25)
    assert np.all(np.delete(corrected, 20, axis=1) == 0.25)  # the other classes untouched
