"""Probabilities a clinician can read: temperature scaling, Brier score and calibration error.

Temperature scaling (Guo et al., ICML 2017) divides the network's logit by one number ``T``
fitted on held-out predictions (the validation split, or out-of-fold ones), never on the
predictions it is judged on. ``T > 1`` softens an over-confident network, ``T < 1`` sharpens an
under-confident one. It is monotone, so every ranking (AUC) and every threshold decision stays
the same once the threshold is carried over; only how far a probability can be trusted changes.

- Brier score: mean squared difference between probability and outcome (0 perfect, 0.25 a coin).
- Expected calibration error (ECE; Naeini et al., AAAI 2015): the predictions are put into
  ``n_bins`` equal-width bins of probability; ECE is the frame-weighted mean over bins of
  |mean probability - observed share septic|.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from sepsiscope.classifier import scores as M

EPS = 1e-6
T_BOUNDS = (0.05, 20.0)


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def scale(p: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """Probabilities ``p`` with their logits divided by ``temperature`` (one, or one each)."""
    return 1 / (1 + np.exp(-logit(p) / temperature))


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the log-loss of ``p`` against outcomes ``y`` (0/1); 1.0
    when both classes are not present (nothing to fit)."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    if len(np.unique(y)) < 2:
        return 1.0
    z = logit(p)

    def log_loss(t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-z / t)), EPS, 1 - EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    found = minimize_scalar(log_loss, bounds=T_BOUNDS, method="bounded")
    return float(found.x)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean of (p - y)^2 over finite predictions; NaN when there are none."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(p)
    return float(np.mean((p[keep] - y[keep]) ** 2)) if keep.any() else float("nan")


def expected_calibration_error(p: np.ndarray, y: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width probability bins (see module notes); NaN when empty."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    if not len(p):
        return float("nan")
    bins = np.clip(np.digitize(p, np.linspace(0, 1, n_bins + 1)[1:-1]), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, p, n_bins) - np.bincount(bins, y, n_bins))
    return float(gap.sum() / counts.sum())


def calibration_report(
    frames: pd.DataFrame, temperature: float, *, video_rule: str = "mean", n_bins: int = 10
) -> dict[str, Any]:
    """Brier score and ECE before and after scaling by ``temperature``, by frame, video and
    patient, for a per-frame prediction table (patient_id, video_id, y, probability)."""
    calibrated = frames.assign(probability=scale(frames["probability"], temperature))
    report = compare_calibration(frames, calibrated, video_rule=video_rule, n_bins=n_bins)
    return {"temperature": temperature, **report}


def compare_calibration(
    frames: pd.DataFrame, calibrated: pd.DataFrame, *, video_rule: str = "mean", n_bins: int = 10
) -> dict[str, Any]:
    """Brier score and ECE of two prediction tables of the same frames (before, after), by
    frame, video and patient."""
    before = M.level_tables(frames, video_rule=video_rule)
    after = M.level_tables(calibrated, video_rule=video_rule)
    out: dict[str, Any] = {"n_bins": n_bins}
    for level in M.LEVELS:
        b, a = before[level], after[level]
        out[level] = {
            "n": len(b),
            "brier_before": brier(b["probability"], b["y"]),
            "brier_after": brier(a["probability"], a["y"]),
            "ece_before": expected_calibration_error(b["probability"], b["y"], n_bins=n_bins),
            "ece_after": expected_calibration_error(a["probability"], a["y"], n_bins=n_bins),
        }
    return out
