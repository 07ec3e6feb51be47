"""Figures as PNG (matplotlib, Agg backend): training curves, confusion, PR/ROC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    keys = [k for k in history if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(range(1, len(history[key]) + 1), history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(
                range(1, len(history[f"val_{key}"]) + 1), history[f"val_{key}"], label="validation"
            )
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion(counts: dict[str, int], title: str, path: Path) -> None:
    """2x2 confusion matrix from ``{"tp", "fp", "fn", "tn"}``."""
    grid = [[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]]
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(grid, cmap="Blues")
    for r in range(2):
        for c in range(2):
            dark = grid[r][c] > max(max(row) for row in grid) / 2
            ax.text(
                c,
                r,
                str(grid[r][c]),
                ha="center",
                va="center",
                fontsize=12,
                color="white" if dark else "black",
            )
    ax.set_xticks([0, 1], ["not crying", "crying"])
    ax.set_yticks([0, 1], ["not crying", "crying"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pr_roc(curves: dict[str, Any], title: str, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    if curves:
        ax1.plot(curves["recall"], curves["precision"])
        ax2.plot(curves["fpr"], curves["tpr"])
    ax2.plot([0, 1], [0, 1], ls=":", color="grey")
    ax1.set(xlabel="recall", ylabel="precision", title=f"PR: {title}", xlim=(0, 1), ylim=(0, 1.02))
    ax2.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC: {title}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def harness_summary(report: dict[str, Any], path: Path) -> None:
    """Per fold and detector: clip F1, clip ROC-AUC, night false alerts per hour
    (bars, episodes alerted written on them) and clip ROC curves."""
    folds = list(report["folds"])
    names = list(report["detectors"])
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    width = 0.8 / max(len(names), 1)
    keys = (("clip_f1", "clip F1 (hub's episode rule)"), ("clip_roc_auc", "clip ROC-AUC"))
    for ax, (key, title) in zip(axes[0][:2], keys, strict=True):
        for k, name in enumerate(names):
            vals = [report["folds"][f]["detectors"].get(name, {}).get(key) or 0.0 for f in folds]
            bars = ax.bar(np.arange(len(folds)) + k * width, vals, width, label=name)
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_xticks(np.arange(len(folds)) + width * (len(names) - 1) / 2, folds)
        ax.set_ylim(0, 1.3)  # room above the bars for the legend
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    ax = axes[0][2]
    for k, name in enumerate(names):
        empty = {"false_alerts_per_hour": 0.0, "alerted": "-", "episodes": "-"}
        nights = [report["folds"][f]["detectors"].get(name, {}).get("night", empty) for f in folds]
        bars = ax.bar(
            np.arange(len(folds)) + k * width,
            [n["false_alerts_per_hour"] or 0.0 for n in nights],
            width,
            label=name,
        )
        ax.bar_label(bars, [f"{n['alerted']}/{n['episodes']}" for n in nights], fontsize=7)
    ax.set_xticks(np.arange(len(folds)) + width * (len(names) - 1) / 2, folds)
    ax.set_title("night: false alerts / h (on bars: episodes alerted)")
    ax.legend(fontsize=8)
    for ax, fold in zip(axes[1], folds, strict=False):
        for name in names:
            roc = report["folds"][fold]["detectors"].get(name, {}).get("roc")
            if roc:
                ax.plot(roc["fpr"], roc["tpr"], label=name)
        ax.set_title(f"{fold}: clip ROC (highest window score)")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[1][len(folds) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
