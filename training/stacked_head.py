"""Ship both heads of a teacher-trained student as one, weighted on sounds it never heard.

The label head learns what this data calls a cry (Donate-a-cry's phone cries
included); the score head learns what YAMNet hears, and carries it to voices and
music the student never heard, blind spots included (training/README.md, ninth
session). Both read the same pooled features ``h``, so with ``L`` the label head's
crying logit and ``T`` the max cry logit of the score head (classes 19-21),

    a L + c T + b = max_k ((c W_k + a dw) . h + c b_k + a db + b)   for a, c > 0,

one Dense of three columns, a max and a sigmoid: the teacher-cry graph with other
weights, at the same cost. :func:`fit` finds ``a, c, b`` by a logistic regression
(balanced classes) on a *stack set* the student did not train on as negatives:
every window of a folder of unheard non-cry audio (``packaged_audio``: game music,
voice packs, sound effects) against crying examples of its own pool. On its own pool
the label head is nearly always right, so weights fitted there lean on it; on
sounds it never heard, the teacher's view earns its weight.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from nurserycry.shared.frontend import DEFAULT_PARAMS, model_input
from nurserycry.shared.model import ModelMetadata

from .audio import read_audio
from .cry_head import calibrate, cry_logit_model, pool_sample, two_label_model, write_reexport
from .examples import clip_windows
from .teacher import CRY_CLASSES

log = logging.getLogger(__name__)

HEAD: Final = "stacked"
Weights = tuple[float, float, float]  # a (label logit), c (cry-score logit), b


def label_direction(student: Any, labels: list[str], crying_label: str) -> tuple[Any, float]:
    """``(dw, db)``: the label head's crying logit is ``dw . h + db`` (two labels, softmax)."""
    if len(labels) != 2:
        raise ValueError(f"--output {HEAD} needs two labels, not {labels}")
    kernel, bias = student.get_layer("probabilities").get_weights()
    cry = labels.index(crying_label)
    return kernel[:, cry] - kernel[:, 1 - cry], float(bias[cry] - bias[1 - cry])


def pooled(student: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The features ``h`` both heads read, ``(n, d)``."""
    import keras  # noqa: PLC0415  (TensorFlow)

    body = keras.Model(student.input, student.get_layer("scores").input)
    return np.asarray(body.predict(x, batch_size=512, verbose=0), np.float64)


def head_logits(
    student: Any, x: npt.NDArray[np.float32], labels: list[str], crying_label: str
) -> npt.NDArray[np.float64]:
    """``(n, 2)``: each window's ``L`` and ``T``."""
    dw, db = label_direction(student, labels, crying_label)
    kernel, bias = student.get_layer("scores").get_weights()
    cols = list(CRY_CLASSES)
    h = pooled(student, x)
    t = (h @ kernel[:, cols].astype(np.float64) + bias[cols]).max(axis=1)
    return np.stack([h @ dw.astype(np.float64) + db, t], axis=1)


def fit(features: npt.NDArray[np.float64], is_cry: npt.NDArray[np.bool_]) -> Weights:
    """``a, c, b`` of ``sigmoid(a L + c T + b)``: logistic regression, balanced classes."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (train extra)

    if is_cry.all() or not is_cry.any():
        raise ValueError("the stack set needs both crying and non-crying windows")
    mean, std = features.mean(axis=0), features.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=1e4, class_weight="balanced").fit((features - mean) / std, is_cry)
    a, c = (model.coef_[0] / std).tolist()
    return float(a), float(c), float(model.intercept_[0] - (model.coef_[0] / std) @ mean)


def equal_weights(
    student: Any,
    codes: npt.NDArray[np.int8],
    labels_idx: npt.NDArray[np.int64],
    labels: list[str],
    crying_label: str,
) -> Weights:
    """No fit on a stack set: the mean of the label head's logit and the teacher-cry
    export's calibrated logit (``cry_head.calibrate`` on the same pool sample),
    ``(L + a_T T + b_T) / 2``."""
    x, is_cry = pool_sample(codes, labels_idx, labels.index(crying_label))
    a_t, b_t = calibrate(student, x, is_cry)
    return 0.5, 0.5 * a_t, 0.5 * b_t


def stacked_model(student: Any, weights: Weights, labels: list[str], crying_label: str) -> Any:
    """The hub's graph: input -> ``[p, 1 - p]`` (label order), ``p = sigmoid(a L + c T + b)``."""
    a, c, b = weights
    if a <= 0 or c <= 0:
        raise ValueError(
            f"the stack set gives one head no weight (a={a:.3g}, c={c:.3g}): export that head "
            "alone (--output labels or teacher-cry)"
        )
    dw, db = label_direction(student, labels, crying_label)
    logit = cry_logit_model(student, c, 0.0, added=((a * dw).astype(np.float32), a * db + b))
    return two_label_model(logit, labels, crying_label, HEAD)


def negative_windows(folder: Path, window: int, hop: int) -> npt.NDArray[np.int8]:
    """Every window (as the hub cuts them) of every audio file under ``folder``."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".flac", ".wav", ".ogg"})
    if not paths:
        raise FileNotFoundError(f"no audio under {folder} for the stack set's negatives")
    return np.concatenate([clip_windows(read_audio(p), window, hop) for p in paths])


def stack_set(
    codes: npt.NDArray[np.int8],
    labels_idx: npt.NDArray[np.int64],
    crying: int,
    negatives: npt.NDArray[np.int8],
    *,
    positives: int = 20_000,
    seed: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """``positives`` crying pool examples and every negative window: model input, is-cry."""
    rng = np.random.default_rng([seed, 40_000])
    cries = np.flatnonzero(labels_idx == crying)
    pick = rng.choice(cries, size=min(positives, cries.size), replace=False)
    x = model_input(np.concatenate([codes[np.sort(pick)], negatives]), DEFAULT_PARAMS)
    return x, np.arange(x.shape[0]) < pick.size


def reexport(
    model_dir: Path,
    pool: Path,
    negatives: Path | None,
    out: Path,
    *,
    model_version: str | None = None,
) -> Weights:
    """Write ``out``: ``model_dir``'s student (``model.keras``, saved with ``--save-keras``)
    exported by both heads, weighted on ``negatives`` against ``pool``'s cries, or with
    :func:`equal_weights` when ``negatives`` is None."""
    import keras  # noqa: PLC0415  (TensorFlow)

    from .export import to_float32, to_int8  # noqa: PLC0415

    student = keras.models.load_model(model_dir / "model.keras", compile=False)
    meta = ModelMetadata.read(model_dir)
    with np.load(pool) as npz:
        codes, labels_idx = npz["codes"], npz["labels"]
    summary: dict[str, Any] = {"head": HEAD, "classes": list(CRY_CLASSES)}
    if negatives is None:
        weights = equal_weights(student, codes, labels_idx, meta.labels, meta.crying_label)
        x, _ = pool_sample(codes, labels_idx, meta.labels.index(meta.crying_label), 400)
        summary["stack_set"] = None
    else:
        neg = negative_windows(negatives, meta.window_frames, meta.hop_frames)
        x, is_cry = stack_set(codes, labels_idx, meta.labels.index(meta.crying_label), neg)
        weights = fit(head_logits(student, x, meta.labels, meta.crying_label), is_cry)
        summary["stack_set"] = {"cries": int(is_cry.sum()), "unheard_windows": int((~is_cry).sum())}
        pick = np.random.default_rng(0).choice(x.shape[0], size=min(400, x.shape[0]), replace=False)
        x = x[pick]
    log.info("stacked head: p = sigmoid(%.3f L + %.3f T + %.3f)", *weights)
    model = stacked_model(student, weights, meta.labels, meta.crying_label)
    summary["weights"] = dict(zip(("label_logit", "cry_score_logit", "bias"), weights, strict=True))
    source = {"from": str(model_dir), "pool": pool.name, "negatives": str(negatives)}
    write_reexport(
        out,
        (to_float32(model), to_int8(model, x)),
        meta,
        summary=summary,
        source=source,
        model_version=model_version,
    )
    return weights


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="python -m nurserycry.training.stacked_head",
        description="Export a teacher-trained student (saved with --save-keras) by both heads, "
        "weighted on audio it never heard.",
    )
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--pool", type=Path, required=True, help="the pool-*.npz it trained on")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--negatives",
        type=Path,
        help="fit the weights on non-cry audio the student never heard (python -m "
        "nurserycry.training.packaged_audio DIR) against its pool's cries",
    )
    how.add_argument(
        "--equal",
        action="store_true",
        help="no fit: the mean of the label head's logit and the calibrated cry-score logit",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model-version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    reexport(args.model_dir, args.pool, args.negatives, args.out, model_version=args.model_version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
