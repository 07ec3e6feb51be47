"""Detection metrics from per-window and per-clip scores (numpy + scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

Scores = npt.NDArray[np.float64]


def binary(y_true: npt.ArrayLike, scores: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1 at ``threshold``, ROC-AUC, average precision, confusion."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pred = s >= threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both = bool(y.any() and (~y).any())
    out: dict[str, Any] = {
        "n": int(y.size),
        "positives": int(y.sum()),
        "threshold": threshold,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "roc_auc": round(float(roc_auc_score(y, s)), 4) if both else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }
    if both:
        p, r, _ = precision_recall_curve(y, s)
        out["average_precision"] = round(float(-np.sum(np.diff(r) * p[:-1])), 4)
        f1s = 2 * p * r / np.maximum(p + r, 1e-12)
        out["best_f1"] = round(float(f1s.max()), 4)
    return out


def curves(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> dict[str, list[float]]:
    """PR and ROC curves (thinned to at most 200 points each) for plots and JSON."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if not (y.any() and (~y).any()):
        return {}
    p, r, _ = precision_recall_curve(y, s)
    fpr, tpr, _ = roc_curve(y, s)

    def thin(a: npt.NDArray[np.float64], n: int) -> list[float]:
        idx = np.unique(np.linspace(0, a.size - 1, min(n, a.size)).astype(int))
        return [round(float(v), 4) for v in a[idx]]

    return {
        "precision": thin(p, 200),
        "recall": thin(r, 200),
        "fpr": thin(fpr, 200),
        "tpr": thin(tpr, 200),
    }


def per_key(
    keys: Sequence[str], y_true: npt.ArrayLike, scores: npt.ArrayLike, threshold: float
) -> dict[str, dict[str, Any]]:
    """Per class or group: windows, mean score, and the share of hot windows
    (recall for positives, false-positive rate for negatives)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    k = np.asarray(keys)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(keys)):
        m = k == key
        hot = float(np.mean(s[m] >= threshold))
        out[key] = {
            "windows": int(m.sum()),
            "crying": bool(y[m].all()),
            "mean_score": round(float(s[m].mean()), 4),
            "hot_share": round(hot, 4),
        }
    return out
