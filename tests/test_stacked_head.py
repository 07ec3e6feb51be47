"""Both heads of a student as one, weighted on unheard audio (training/stacked_head.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio_gen import make_dataset
from tests.test_cry_head import _logit, _student, train_saved_student

pytestmark = pytest.mark.train

LABELS = ["crying", "not_crying"]


def test_head_logits_and_the_graph_are_the_maths_of_both_heads() -> None:
    from nurserycry.training.stacked_head import head_logits, stacked_model

    student = _student()
    probs = student.get_layer("probabilities")  # an untrained head's logits are all near 0
    rng = np.random.default_rng(2)
    probs.set_weights([rng.normal(0, 3, w.shape) for w in probs.get_weights()])
    x = np.random.default_rng(1).standard_normal((7, 50, 32)).astype(np.float32)
    out = student.predict(x, verbose=0)
    label_logit = _logit(out["probabilities"][:, 0])
    cry_logit = _logit(out["scores"][:, [19, 20, 21]]).max(axis=1)
    feats = head_logits(student, x, LABELS, "crying")
    np.testing.assert_allclose(feats[:, 0], label_logit, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(feats[:, 1], cry_logit, rtol=1e-3, atol=1e-3)
    # the other label order flips the label head's logit, not the score head's
    flipped = head_logits(student, x, LABELS[::-1], "crying")
    np.testing.assert_allclose(flipped[:, 0], -feats[:, 0], atol=1e-5)
    assert np.abs(feats).min() > 0.5  # so the flip above tells a sign apart

    a, c, b = 0.7, 1.3, -0.4
    expected = 1 / (1 + np.exp(-(a * label_logit + c * cry_logit + b)))
    got = stacked_model(student, (a, c, b), LABELS, "crying").predict(x, verbose=0)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="gives one head no weight"):
        stacked_model(student, (0.5, -0.1, 0.0), LABELS, "crying")


def test_fit_weights_the_head_that_tells_unheard_sounds_apart() -> None:
    from nurserycry.training.stacked_head import fit

    rng = np.random.default_rng(0)
    n = 4000
    is_cry = np.arange(n) < n // 4
    # the label head is sure of every cry and of half the negatives too; the score
    # head separates them with noise
    label = np.where(is_cry, 8.0, np.where(rng.random(n) < 0.5, 8.0, -8.0)) + rng.normal(0, 1, n)
    score = np.where(is_cry, 2.0, -2.0) + rng.normal(0, 1, n)
    a, c, b = fit(np.stack([label, score], axis=1), is_cry)
    assert c > 0 and a > 0
    assert c > 1.5 and a < c  # the score head carries the decision
    p = 1 / (1 + np.exp(-(a * label + c * score + b)))
    assert ((p > 0.5) == is_cry).mean() > 0.9
    with pytest.raises(ValueError, match="both crying and non-crying"):
        fit(np.zeros((5, 2)), np.ones(5, bool))


def test_reexport_of_a_saved_student_on_unheard_negatives(tmp_path: Path) -> None:
    from nurserycry.shared.model import CryModel
    from nurserycry.training.audio import read_audio
    from nurserycry.training.card import _output
    from nurserycry.training.examples import clip_windows
    from nurserycry.training.stacked_head import main

    data = make_dataset(tmp_path / "data")
    _, _, pool = train_saved_student(data, tmp_path)
    meta_in = json.loads((tmp_path / "model" / "metadata.json").read_text())
    # the mechanics, not the lever: the data's own non-cry clips stand in for unheard audio
    unheard = data / "not_crying"
    n_windows = sum(
        len(clip_windows(read_audio(p), meta_in["window_frames"], meta_in["hop_frames"]))
        for p in unheard.rglob("*.*")
    )
    assert (
        main(
            [
                str(tmp_path / "model"),
                "--pool",
                str(pool),
                "--negatives",
                str(unheard),
                "--out",
                str(tmp_path / "stacked"),
                "--model-version",
                "s-1",
            ]
        )
        == 0
    )

    meta = json.loads((tmp_path / "stacked" / "metadata.json").read_text())
    assert meta["model_version"] == "s-1"
    output = meta["training"]["output"]
    assert output["head"] == "stacked" and output["stack_set"]["unheard_windows"] == n_windows
    w = output["weights"]
    assert w["label_logit"] > 0 and w["cry_score_logit"] > 0
    assert "both heads in one" in _output(output)
    with np.load(pool) as npz:
        codes = npz["codes"][:40]
    float32 = CryModel.load(tmp_path / "stacked", variant="float32").predict(codes)
    int8 = CryModel.load(tmp_path / "stacked").predict(codes)
    # a steep sigmoid after int8 steps: within 0.1 where the output turns
    np.testing.assert_allclose(int8, float32, atol=0.1)
    assert np.ptp(float32) > 0.05

    with pytest.raises(FileNotFoundError, match="stack set"):
        main(
            [
                str(tmp_path / "model"),
                "--pool",
                str(pool),
                "--negatives",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "x"),
            ]
        )


def test_equal_weights_are_the_mean_of_both_calibrated_logits() -> None:
    from nurserycry.training.cry_head import calibrate, pool_sample
    from nurserycry.training.stacked_head import equal_weights, stacked_model

    student = _student(1)
    rng = np.random.default_rng(4)
    codes = rng.integers(-128, 127, (300, 50, 32), dtype=np.int8)
    labels_idx = rng.integers(0, 2, 300)
    x, is_cry = pool_sample(codes, labels_idx, 0)
    assert x.shape == (300, 50, 32) and is_cry.sum() == (labels_idx == 0).sum()
    a_t, b_t = calibrate(student, x, is_cry)
    assert equal_weights(student, codes, labels_idx, LABELS, "crying") == pytest.approx(
        (0.5, 0.5 * a_t, 0.5 * b_t)
    )
    if a_t > 0:  # a random score head may point either way; the graph needs it to point up
        out = student.predict(x, verbose=0)
        logit = 0.5 * _logit(out["probabilities"][:, 0]) + 0.5 * (
            a_t * _logit(out["scores"][:, [19, 20, 21]]).max(axis=1) + b_t
        )
        got = stacked_model(student, (0.5, 0.5 * a_t, 0.5 * b_t), LABELS, "crying")
        np.testing.assert_allclose(
            got.predict(x, verbose=0)[:, 0], 1 / (1 + np.exp(-logit)), rtol=1e-3, atol=1e-4
        )
