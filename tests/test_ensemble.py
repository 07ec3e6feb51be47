"""Ensembles of students (--ensemble N): one graph, the members' logits averaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio_gen import make_dataset

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def test_the_ensemble_is_the_softmax_of_its_members_mean_logits() -> None:
    import keras

    from nurserycry.training.model import build_student, ensemble_model

    keras.utils.set_random_seed(0)
    students = [build_student(50, 32, 2, width=8, embedding_size=16, n_scores=5) for _ in range(3)]
    rng = np.random.default_rng(0)
    for s in students:  # confident members that disagree, as trained ones do
        kernel, bias = s.get_layer("probabilities").get_weights()
        s.get_layer("probabilities").set_weights([kernel, rng.normal(0, 3, bias.shape)])
    x = rng.standard_normal((4, 50, 32)).astype(np.float32)
    probs = [s.predict(x, verbose=0)["probabilities"] for s in students]
    logits = np.mean([np.log(p) for p in probs], axis=0)  # log-softmax differs by a constant
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ensemble = ensemble_model(students)
    got = ensemble.predict(x, verbose=0)
    assert got.shape == (4, 2)  # the teacher heads are gone
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # not the mean of the probabilities (unless the members agree exactly)
    assert np.abs(got - np.mean(probs, axis=0)).max() > 0.01
    single = ensemble_model(students[:1]).predict(x, verbose=0)
    np.testing.assert_allclose(single, probs[0], rtol=1e-4, atol=1e-5)


def test_train_with_ensemble_ships_one_model_of_all_members(dataset: Path, tmp_path: Path) -> None:
    from nurserycry.shared.frontend import DEFAULT_PARAMS
    from nurserycry.shared.model import CryModel
    from nurserycry.training.card import _members
    from nurserycry.training.pipeline import RunConfig, run
    from nurserycry.training.trainer import TrainConfig

    def fit(members: int, out: str) -> dict[str, object]:
        cfg = RunConfig(
            data_dir=dataset,
            out=tmp_path / out,
            split="group",
            val_fraction=0.34,
            pool_examples=96,
            train=TrainConfig(epochs=1, batch_size=32, width=8, verbose=0, members=members),
        )
        return run(cfg)

    report = fit(2, "pair")
    assert report["training"]["train_config"]["members"] == 2
    assert len(report["member_histories"]) == 1  # the second member's; the first is "history"
    one, pair = fit(1, "one"), CryModel.load(tmp_path / "pair")
    assert "member_histories" not in one
    x = np.random.default_rng(1).integers(-128, 127, (3, 50, DEFAULT_PARAMS.n_mels), np.int8)
    assert pair.predict(x).shape == (3,)
    # two members are twice the weights of one
    sizes = [(tmp_path / d / "model_float32.tflite").stat().st_size for d in ("one", "pair")]
    assert 1.8 < sizes[1] / sizes[0] < 2.2
    meta = json.loads((tmp_path / "pair" / "metadata.json").read_text())
    assert meta["training"]["train_config"]["members"] == 2
    assert "ensemble of 2 students of width 8 (seeds 0-1" in _members(
        meta["training"]["train_config"]
    )
