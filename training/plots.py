"""Figures as PNG (matplotlib, Agg backend): training curves, confusion, PR/ROC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

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
            ax.text(c, r, str(grid[r][c]), ha="center", va="center", fontsize=12)
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
