"""A probe in the teacher's embedding space on the student's copy (training/probe_head.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audio_gen import make_dataset
from tests.test_cry_head import train_saved_student

pytestmark = pytest.mark.train

LABELS = ["crying", "not_crying"]


def test_the_probe_reads_the_direction_of_the_embedding_not_its_length() -> None:
    from nurserycry.training.probe_head import fit_probe, unit

    rng = np.random.default_rng(0)
    n, d = 3000, 16
    is_cry = rng.random(n) < 0.3
    e = rng.normal(0, 1, (n, d))
    e[:, 3] += np.where(is_cry, 2.5, -2.5)  # crying points one way
    w, b = fit_probe(e, is_cry)
    assert np.argmax(np.abs(w)) == 3 and w[3] > 0
    scaled = e * rng.uniform(0.1, 10, (n, 1))  # a cosine-trained student's lengths vary
    w2, _ = fit_probe(scaled, is_cry)
    np.testing.assert_allclose(w2, w, rtol=1e-4, atol=1e-4)
    p = 1 / (1 + np.exp(-(unit(scaled) @ w + b)))
    assert ((p > 0.5) == is_cry).mean() > 0.95
    np.testing.assert_allclose(np.linalg.norm(unit(scaled), axis=1), 1.0)
    with pytest.raises(ValueError, match="both crying and non-crying"):
        fit_probe(e, np.zeros(n, bool))


def test_the_graph_is_the_probe_on_the_unit_student_embedding() -> None:
    import keras

    from nurserycry.training.model import build_student
    from nurserycry.training.probe_head import probe_model, unit

    keras.utils.set_random_seed(0)
    student = build_student(50, 32, 2, width=8, embedding_size=8, n_scores=30)
    x = np.random.default_rng(1).standard_normal((6, 50, 32)).astype(np.float32)
    rng = np.random.default_rng(2)
    w, b = rng.normal(0, 2, 8), 0.3
    e = student.predict(x, verbose=0)["embedding"]
    expected = 1 / (1 + np.exp(-(unit(e) @ w + b)))
    got = probe_model(student, (w, b), LABELS, "crying").predict(x, verbose=0)
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-3, atol=1e-4)
    swapped = probe_model(student, (w, b), LABELS[::-1], "crying").predict(x, verbose=0)
    np.testing.assert_allclose(swapped[:, 1], got[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="8-d embedding"):
        probe_model(student, (w[:5], b), LABELS, "crying")
    plain = build_student(50, 32, 2, width=8)
    with pytest.raises(ValueError, match="needs a student trained with --teacher"):
        probe_model(plain, (w, b), LABELS, "crying")


def test_reexport_fits_on_the_pool_teacher_embeddings(tmp_path: Path) -> None:
    from nurserycry.shared.model import CryModel
    from nurserycry.training.card import _output
    from nurserycry.training.probe_head import fit_probe, main

    _, _, pool = train_saved_student(make_dataset(tmp_path / "data"), tmp_path)
    out = tmp_path / "probe"
    args = [str(tmp_path / "model"), "--pool", str(pool), "--out", str(out)]
    assert main([*args, "--model-version", "p-1"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["model_version"] == "p-1"
    output = meta["training"]["output"]
    assert output["head"] == "embedding-probe" and output["examples"] == 384
    assert "embedding" in _output(output)
    with np.load(pool) as npz:  # the probe is the teacher's, refitted the same way
        codes, labels, weights, emb = npz["codes"], npz["labels"], npz["weights"], npz["embedding"]
    _, bias = fit_probe(emb, labels == 0, weights)
    assert output["bias"] == pytest.approx(bias, rel=1e-6)
    float32 = CryModel.load(out, variant="float32").predict(codes[:40])
    int8 = CryModel.load(out).predict(codes[:40])
    np.testing.assert_allclose(int8, float32, atol=0.1)
