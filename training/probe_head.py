"""Ship a probe in the teacher's embedding space on the student's copy of it.

The usual way to detect a sound with YAMNet is a small classifier on its 1024-d
embedding. A student trained with ``--teacher`` has a head that predicts that
embedding's direction (a cosine loss), so a linear probe fitted on the *teacher's*
own embeddings of the pool, L2-normalised, against the pool's labels can run on the
student's: the hub's graph is the student's trunk and embedding head, an L2
normalisation, the probe and a sigmoid. The probe's direction is chosen in YAMNet's
space from the teacher's view of each example, not from the student's fit of the
labels (training/README.md, tenth session).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from nurserycry.shared.model import ModelMetadata

from .cry_head import pool_sample, two_label_model, write_reexport

log = logging.getLogger(__name__)

HEAD: Final = "embedding-probe"
Probe = tuple[npt.NDArray[np.float64], float]  # weights over the unit embedding, bias


def unit(x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    x64 = np.asarray(x, np.float64)
    norm = np.linalg.norm(x64, axis=-1, keepdims=True)
    out: npt.NDArray[np.float64] = x64 / np.maximum(norm, 1e-12)
    return out


def fit_probe(
    embedding: npt.NDArray[np.floating],
    is_cry: npt.NDArray[np.bool_],
    weights: npt.NDArray[np.floating] | None = None,
    c: float = 1.0,
) -> Probe:
    """Logistic regression (L2, ``c``) of ``is_cry`` on the unit-length embeddings."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (train extra)

    if is_cry.all() or not is_cry.any():
        raise ValueError("the probe needs both crying and non-crying examples")
    fit = LogisticRegression(C=c, max_iter=2000).fit(unit(embedding), is_cry, sample_weight=weights)
    return fit.coef_[0].astype(np.float64), float(fit.intercept_[0])


def probe_logit_model(student: Any, probe: Probe) -> Any:
    """input -> ``(n, 1)``: ``w . unit(e) + b``, ``e`` the student's embedding head."""
    import keras  # noqa: PLC0415  (TensorFlow)
    from keras import layers  # noqa: PLC0415

    if "embedding" not in {layer.name for layer in student.layers}:
        raise ValueError(f"--output {HEAD} needs a student trained with --teacher")
    w, b = probe
    embedding = student.get_layer("embedding")
    if w.shape != (embedding.units,):
        raise ValueError(f"a probe of {w.shape[0]} weights for a {embedding.units}-d embedding")
    inputs = keras.Input(student.input.shape[1:], name="mel")
    body = keras.Model(student.input, embedding.output, name="trunk_embedding")
    e = layers.UnitNormalization(name="unit_embedding")(body(inputs))
    dense = layers.Dense(1, name="probe")
    out = dense(e)
    dense.set_weights([w.reshape(-1, 1).astype(np.float32), np.array([b], np.float32)])
    return keras.Model(inputs, out, name="probe_logit")


def probe_model(student: Any, probe: Probe, labels: list[str], crying_label: str) -> Any:
    """The hub's graph: input -> ``[p, 1 - p]`` (label order)."""
    if len(labels) != 2:
        raise ValueError(f"--output {HEAD} needs two labels, not {labels}")
    return two_label_model(probe_logit_model(student, probe), labels, crying_label, "probe")


def reexport(
    model_dir: Path,
    pool: Path,
    out: Path,
    *,
    sample: int = 40_000,
    c: float = 1.0,
    model_version: str | None = None,
) -> Probe:
    """Write ``out``: ``model_dir``'s student (saved with ``--save-keras``) with a probe
    fitted on ``sample`` examples of ``pool`` (its teacher embeddings and labels)."""
    import keras  # noqa: PLC0415  (TensorFlow)

    from .export import to_float32, to_int8  # noqa: PLC0415

    student = keras.models.load_model(model_dir / "model.keras", compile=False)
    meta = ModelMetadata.read(model_dir)
    crying = meta.labels.index(meta.crying_label)
    with np.load(pool) as npz:
        if "embedding" not in npz.files:
            raise ValueError(f"{pool} holds no teacher embeddings (drawn without --teacher)")
        labels_idx, weights = npz["labels"], npz["weights"]
        pick = np.sort(
            np.random.default_rng(50_000).choice(
                labels_idx.size, size=min(sample, labels_idx.size), replace=False
            )
        )
        embedding = npz["embedding"][pick]
        codes = npz["codes"]
    probe = fit_probe(embedding, labels_idx[pick] == crying, weights[pick], c)
    model = probe_model(student, probe, meta.labels, meta.crying_label)
    rep, _ = pool_sample(codes, labels_idx, crying, 400)
    summary = {"head": HEAD, "examples": int(pick.size), "c": c, "bias": probe[1]}
    log.info("embedding probe on %d pool examples: bias %.3f", pick.size, probe[1])
    source = {"from": str(model_dir), "pool": pool.name}
    write_reexport(
        out,
        (to_float32(model), to_int8(model, rep)),
        meta,
        summary=summary,
        source=source,
        model_version=model_version,
    )
    return probe


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m nurserycry.training.probe_head",
        description="Export a teacher-trained student (saved with --save-keras) by a probe "
        "fitted on the teacher's embeddings of its pool.",
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--pool", type=Path, required=True, help="the pool-*.npz it trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=40_000)
    parser.add_argument("-C", type=float, default=1.0, help="inverse L2 strength")
    parser.add_argument("--model-version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reexport(
        args.model_dir,
        args.pool,
        args.out,
        sample=args.sample,
        c=args.C,
        model_version=args.model_version,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
