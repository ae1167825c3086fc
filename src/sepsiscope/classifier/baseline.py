"""The reviewer's baseline: logistic regression on simple statistics of each frame.

If a few numbers anyone can compute from a frame (brightness, contrast, sharpness) separate septic
from non-septic patients as well as the network does, the network adds nothing; if they do not,
the gap is what it adds. The baseline sees exactly the samples the network sees (the store's
``(3, S, S)`` uint8 samples, channel 0 = the frame at ``t``), is fitted on the training patients'
frames only, and is judged with the same threshold rule and patient bootstrap.

Statistics (per sample, on channel 0 unless said; grey levels scaled to [0, 1]):

``mean_intensity``       mean grey level (illumination, haemoglobin content)
``contrast``             standard deviation of the grey levels
``sharpness``            log10(1 + variance of the 3x3 Laplacian, in grey levels²): focus
``dark_fraction``        share of pixels darker than mean - 1 SD: roughly the vessel area
``temporal_difference``  mean |frame(t + k) - frame(t)| from channels 0 and 1: motion and flow

The default set is the first three (the issue's "mean intensity, contrast, sharpness"); the other
two can be added with ``features=`` (``temporal_difference`` needs a store with time channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sepsiscope._progress import track
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError

FEATURES = ("mean_intensity", "contrast", "sharpness", "dark_fraction", "temporal_difference")
DEFAULT_FEATURES = ("mean_intensity", "contrast", "sharpness")


def frame_statistics(
    samples: np.ndarray, *, features: Sequence[str] = DEFAULT_FEATURES
) -> np.ndarray:
    """Simple statistics of each sample.

    Parameters
    ----------
    samples : (n, 3, S, S) uint8, the store's samples (channel 0 = frame at ``t``).
    features : names from :data:`FEATURES`, in the order of the output columns.

    Returns
    -------
    (n, len(features)) float64.

    Examples
    --------
    >>> flat = np.full((1, 3, 8, 8), 128, np.uint8)
    >>> frame_statistics(flat, features=["mean_intensity", "contrast"]).round(3).tolist()
    [[0.502, 0.0]]
    """
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise InputError(f"unknown baseline features {unknown}: use some of {FEATURES}")
    if samples.ndim != 4 or samples.shape[1] != 3 or samples.dtype != np.uint8:
        raise ValueError(f"samples must be (n, 3, S, S) uint8, got {samples.shape}")
    frames = samples[:, 0].astype(np.float32) / 255.0
    flat = frames.reshape(len(frames), -1)
    mean = flat.mean(axis=1)
    std = flat.std(axis=1)
    columns = {
        "mean_intensity": lambda: mean,
        "contrast": lambda: std,
        "sharpness": lambda: np.log10(
            1.0 + np.array([cv2.Laplacian(f * 255.0, cv2.CV_32F, ksize=1).var() for f in frames])
        ),
        "dark_fraction": lambda: (flat < (mean - std)[:, None]).mean(axis=1),
        "temporal_difference": lambda: (
            np.abs(samples[:, 1].astype(np.float32) - samples[:, 0].astype(np.float32))
            .reshape(len(samples), -1)
            .mean(axis=1)
            / 255.0
        ),
    }
    return np.stack([columns[f]() for f in features], axis=1).astype(np.float64)


def store_statistics(
    store: FrameStore,
    table: pd.DataFrame,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
    batch_size: int = 512,
    quiet: bool = True,
) -> np.ndarray:
    """:func:`frame_statistics` of the store samples named by frame rows ``table``, in order."""
    out = np.empty((len(table), len(features)))
    starts = range(0, len(table), batch_size)
    for start in track(starts, description="frame statistics", quiet=quiet):
        rows = table.iloc[start : start + batch_size]
        out[start : start + len(rows)] = frame_statistics(store.read_table(rows), features=features)
    return out


def fit_baseline(statistics: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Pipeline:
    """Standardise, then logistic regression with balanced class weights.

    Parameters
    ----------
    statistics : (n, k) float, from :func:`frame_statistics`.
    y : (n,) int, 1 septic.
    """
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise InputError(
            "the baseline needs septic and non-septic frames in the training split; "
            f"it has only y={int(y[0]) if len(y) else 'none'}"
        )
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000)
    )
    model.set_params(logisticregression__random_state=seed)
    return model.fit(statistics, y)


def baseline_predictions(
    store: FrameStore,
    tables: dict[str, pd.DataFrame],
    *,
    fit_on: str = "train",
    features: Sequence[str] = DEFAULT_FEATURES,
    seed: int = 0,
    quiet: bool = True,
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Fit on ``tables[fit_on]`` and score every other table of frame rows.

    Returns
    -------
    predictions : name -> per-frame prediction table (patient_id, video_id, frame_index, y,
        probability, split) for each table except ``fit_on``.
    coefficients : feature -> standardised logistic coefficient (positive = more septic).
    """
    fit_table = tables[fit_on]
    if len(fit_table) == 0:
        raise InputError(f"the {fit_on} split holds no usable frames to fit the baseline on")
    model = fit_baseline(
        store_statistics(store, fit_table, features=features, quiet=quiet),
        fit_table["y"].to_numpy(),
        seed=seed,
    )
    predictions = {}
    for name, table in tables.items():
        if name == fit_on:
            continue
        stats = store_statistics(store, table, features=features, quiet=quiet)
        prob = model.predict_proba(stats)[:, 1] if len(table) else np.empty(0)
        out = table[["patient_id", "video_id", "frame_index", "y"]].copy()
        out["probability"] = prob
        out["split"] = table["split"].to_numpy() if "split" in table.columns else name
        predictions[name] = out.reset_index(drop=True)
    coefs = model.named_steps["logisticregression"].coef_[0]
    return predictions, {f: float(c) for f, c in zip(features, coefs, strict=True)}
