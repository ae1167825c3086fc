"""Figures of an evaluation: ROC curves, confusion matrices and a reliability diagram (PNG)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from sepsiscope._io import save_png  # noqa: E402
from sepsiscope.classifier.scores import LEVELS, confusion_counts  # noqa: E402

_COLOURS = {"frame": "#4c72b0", "video": "#dd8452", "patient": "#c44e52"}


def _title(split: str, note: str) -> str:
    return f"{split} split{f' ({note})' if note else ''}"


def roc_figure(
    tables: dict[str, pd.DataFrame],
    metrics: dict[str, Any],
    path: str | os.PathLike,
    *,
    split: str,
    baseline: dict[str, pd.DataFrame] | None = None,
    note: str = "",
) -> Path:
    """ROC curves at frame, video and patient level (and the baseline's patient curve)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    for level in LEVELS:
        y, p = tables[level]["y"].to_numpy(), tables[level]["probability"].to_numpy()
        auc = metrics[level]["auc"]
        if auc["value"] is None:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        low, high = auc["interval"]
        label = f"{level}: AUC {auc['value']:.2f}"
        if low is not None:
            label += f" [{low:.2f}, {high:.2f}]"
        ax.plot(
            fpr, tpr, color=_COLOURS[level], label=label, linewidth=2 if level == "patient" else 1.3
        )
    if baseline is not None and len(np.unique(baseline["patient"]["y"])) == 2:
        fpr, tpr, _ = roc_curve(baseline["patient"]["y"], baseline["patient"]["probability"])
        ax.plot(fpr, tpr, color="0.4", linestyle="--", label="baseline (patient)")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"ROC, {_title(split, note)}")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return save_png(path, fig)


def confusion_figure(
    tables: dict[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    threshold: float,
    split: str,
    note: str = "",
) -> Path:
    """Confusion matrices at the three levels, at the validation threshold."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
    for ax, level in zip(axes, LEVELS, strict=True):
        c = confusion_counts(tables[level]["y"], tables[level]["probability"], threshold=threshold)
        matrix = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()))
        for (i, j), value in np.ndenumerate(matrix):
            colour = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=12)
        ax.set_xticks([0, 1], ["non-septic", "septic"])
        ax.set_yticks([0, 1], ["non-septic", "septic"] if level == LEVELS[0] else ["", ""])
        ax.set_xlabel("called")
        if level == LEVELS[0]:
            ax.set_ylabel("true")
        ax.set_title(f"{level}s")
    fig.suptitle(f"Confusion at threshold {threshold:.3f}, {_title(split, note)}")
    return save_png(path, fig)


def reliability_figure(
    tables: dict[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    split: str,
    n_bins: int = 10,
    note: str = "",
) -> Path:
    """Observed share of septic cases against the mean predicted probability, per bin."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1, label="perfect calibration")
    edges = np.linspace(0, 1, n_bins + 1)
    for level in LEVELS:
        y = tables[level]["y"].to_numpy(dtype=float)
        p = tables[level]["probability"].to_numpy(dtype=float)
        bins = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
        counts = np.bincount(bins, minlength=n_bins)
        keep = counts > 0
        mean_p = np.bincount(bins, p, n_bins)[keep] / counts[keep]
        observed = np.bincount(bins, y, n_bins)[keep] / counts[keep]
        ax.plot(mean_p, observed, marker="o", color=_COLOURS[level], label=f"{level}s")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean predicted probability of sepsis")
    ax.set_ylabel("observed share septic")
    ax.set_title(f"Reliability, {_title(split, note)}")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8)
    return save_png(path, fig)
