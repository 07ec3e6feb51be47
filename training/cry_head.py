"""Ship the student's copy of the teacher's cry score instead of its label head.

A student trained with ``--teacher`` has a head that predicts YAMNet's 521 scores.
Its cry classes (19-21) carry what YAMNet knows about sounds the labelled data
lacks: on the harness's held-out second cry source, the float student ranked clips
at ROC-AUC 0.994 by that head and 0.964 by its label head (training/README.md).

:func:`teacher_cry_model` is the graph the hub runs: the trunk, a Dense of the
three cry columns of the score head (pre-sigmoid) with one logistic calibration
folded in, their max, and a sigmoid: ``sigmoid(a * z + b)``, ``z`` the max cry logit.
Its output is ``[p, 1 - p]`` in the model's label order, so the hub, its 0.9 rule
and ``CryModel`` need no change. :func:`calibrate` fits ``a, b`` on the training
pool's labels (never on held-out clips), so 0.9 means "90% sure" on training-like
audio. :func:`reexport` does it all for a model directory saved with ``--save-keras``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
import numpy.typing as npt
from keras import layers

from nurserycry.shared.frontend import DEFAULT_PARAMS, model_input
from nurserycry.shared.model import ModelMetadata

from .teacher import CRY_CLASSES

log = logging.getLogger(__name__)

HEAD: Final = "teacher-cry"


def cry_logit_model(
    student: Any,
    scale: float = 1.0,
    shift: float = 0.0,
    classes: tuple[int, ...] = CRY_CLASSES,
    added: tuple[npt.NDArray[np.float32], float] | None = None,
) -> Any:
    """input -> max over ``classes`` of ``scale * z + shift (+ w . h + v)``, ``z`` the score
    head's pre-sigmoid outputs, ``h`` the pooled features both heads read, ``added = (w, v)``
    a linear term shared by every column; ``(n, 1)``. With the calibration folded into the
    Dense (``scale`` > 0 keeps the max), int8 spends its steps on the calibrated logit."""
    scores = student.get_layer("scores")
    kernel, bias = scores.get_weights()
    cols = list(classes)
    inputs = keras.Input(student.input.shape[1:], name="mel")
    body = keras.Model(student.input, scores.input, name="trunk")
    head = layers.Dense(len(cols), name="cry_logits")
    z = head(body(inputs))
    kernel, bias = kernel[:, cols] * scale, bias[cols] * scale + shift
    if added is not None:
        kernel, bias = kernel + added[0][:, None], bias + added[1]
    head.set_weights([kernel, bias])
    z = layers.Reshape((len(cols), 1))(z)
    return keras.Model(inputs, layers.GlobalMaxPooling1D(name="max_cry_logit")(z))


def calibrate(
    student: Any, x: npt.NDArray[np.float32], is_cry: npt.NDArray[np.bool_]
) -> tuple[float, float]:
    """``a, b`` of ``sigmoid(a * z + b)`` by logistic regression of ``is_cry`` on ``z``."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (train extra)

    z = cry_logit_model(student).predict(x, batch_size=512, verbose=0)[:, 0].astype(np.float64)
    mean, std = float(z.mean()), float(z.std()) or 1.0
    fit = LogisticRegression(C=1e4).fit(((z - mean) / std).reshape(-1, 1), is_cry)
    a = float(fit.coef_[0, 0]) / std
    return a, float(fit.intercept_[0]) - a * mean


def teacher_cry_model(
    student: Any, calibration: tuple[float, float], labels: list[str], crying_label: str
) -> Any:
    """The hub's graph: input -> ``[p, 1 - p]`` (label order) from the cry-score head."""
    if len(labels) != 2:
        raise ValueError(f"--output {HEAD} needs two labels, not {labels}")
    if "scores" not in {layer.name for layer in student.layers}:
        raise ValueError(f"--output {HEAD} needs a student trained with --teacher")
    a, b = calibration
    if a <= 0:
        raise ValueError("the cry-score head does not rank cries above other sounds (a <= 0)")
    return two_label_model(cry_logit_model(student, a, b), labels, crying_label, "teacher_cry")


def two_label_model(logit_model: Any, labels: list[str], crying_label: str, name: str) -> Any:
    """``logit_model`` (input -> ``(n, 1)`` crying logit) -> ``[p, 1 - p]`` in label order,
    so the hub, its 0.9 rule and ``CryModel`` need no change."""
    inputs = keras.Input(logit_model.input.shape[1:], name="mel")
    p = layers.Activation("sigmoid", name="calibrated")(logit_model(inputs))
    not_p = layers.Rescaling(-1.0, offset=1.0, name="not_crying")(p)
    parts = [p, not_p] if labels.index(crying_label) == 0 else [not_p, p]
    out = layers.Concatenate(name="probabilities")(parts)
    return keras.Model(inputs, out, name=f"nurserycry_{name}")


def pool_sample(
    codes: npt.NDArray[np.int8],
    labels_idx: npt.NDArray[np.int64],
    crying: int,
    sample: int = 20_000,
    seed: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """``sample`` pool examples the calibration is fitted on: model input, is-cry."""
    rng = np.random.default_rng([seed, 30_000])
    pick = rng.choice(codes.shape[0], size=min(sample, codes.shape[0]), replace=False)
    return model_input(codes[pick], DEFAULT_PARAMS), labels_idx[pick] == crying


def export_teacher_cry(
    student: Any,
    codes: npt.NDArray[np.int8],
    labels_idx: npt.NDArray[np.int64],
    labels: list[str],
    crying_label: str,
    *,
    sample: int = 20_000,
    seed: int = 0,
) -> tuple[Any, bytes, bytes, dict[str, Any]]:
    """Calibrate on ``sample`` pool examples; the model, its two flatbuffers and a summary."""
    from .export import to_float32, to_int8  # noqa: PLC0415  (TensorFlow)

    x, is_cry = pool_sample(codes, labels_idx, labels.index(crying_label), sample, seed)
    a, b = calibrate(student, x, is_cry)
    model = teacher_cry_model(student, (a, b), labels, crying_label)
    summary = {"head": HEAD, "classes": list(CRY_CLASSES), "calibration": [a, b]}
    log.info(
        "teacher-cry head: p = sigmoid(%.3f * z + %.3f), on %d pool examples", a, b, x.shape[0]
    )
    return model, to_float32(model), to_int8(model, x[:400]), summary


def reexport(model_dir: Path, pool: Path, out: Path, *, model_version: str | None = None) -> None:
    """Write ``out``: ``model_dir``'s student (``model.keras``) exported by its cry-score head,
    calibrated on ``pool`` (the ``pool-*.npz`` it trained on); metadata carried over."""
    student = keras.models.load_model(model_dir / "model.keras", compile=False)
    meta = ModelMetadata.read(model_dir)
    with np.load(pool) as npz:
        codes, labels_idx = npz["codes"], npz["labels"]
    _, f32, i8, summary = export_teacher_cry(
        student, codes, labels_idx, meta.labels, meta.crying_label
    )
    write_reexport(
        out,
        (f32, i8),
        meta,
        summary=summary,
        source={"from": str(model_dir), "pool": pool.name},
        model_version=model_version,
    )


def write_reexport(
    out: Path,
    flatbuffers: tuple[bytes, bytes],
    meta: ModelMetadata,
    *,
    summary: dict[str, Any],
    source: dict[str, Any],
    model_version: str | None = None,
) -> None:
    """A model directory for a student re-exported by another head: its flatbuffers, the
    metadata carried over with ``summary`` as the output (and without the label head's
    figures, which do not describe it), and ``reexport.json`` (``source`` + ``summary``)."""
    from .metadata import write_model_dir  # noqa: PLC0415

    meta.training = {**meta.training, "output": summary}
    meta.metrics = {}
    if model_version:
        meta.model_version = model_version
    write_model_dir(out, *flatbuffers, meta)
    (out / "reexport.json").write_text(json.dumps({**source, **summary}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m nurserycry.training.cry_head",
        description="Export a teacher-trained student (saved with --save-keras) by its "
        "calibrated cry-score head.",
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--pool", type=Path, required=True, help="the pool-*.npz it trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reexport(args.model_dir, args.pool, args.out, model_version=args.model_version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
