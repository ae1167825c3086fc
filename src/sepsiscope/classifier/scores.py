"""Scores by frame, video and patient; binary metrics; patient bootstrap; validation threshold.

Pure functions on a per-frame prediction table with the columns ``patient_id``, ``video_id``,
``frame_index``, ``y`` (1 septic, 0 non-septic) and ``probability`` (of septic), plus optionally
``split``. Nothing here reads or writes files.

Levels
    ``frame``: each stored sample as the network scored it. ``video``: one score per video from
    its frames (:data:`VIDEO_RULES`; the mean by default). ``patient``: the mean of its videos'
    scores, so a patient with a long video does not outweigh one with short videos.

Bootstrap
    Patients are resampled with replacement (the patient is the independent unit: frames and
    videos of one patient are correlated). A patient drawn ``c`` times enters every level's metric
    ``c`` times, which is exactly the metric of the resampled cohort recomputed from its frames,
    because a video's and a patient's score depend only on that patient's own frames. Resamples
    in which a metric is undefined (AUC with one class, precision with no positive call) are left
    out of that metric's interval and the number used is reported.

Threshold
    Chosen on the validation split only (never the split being judged) by Youden's J at patient
    level, then applied unchanged to frames, videos and patients of the evaluated split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sepsiscope.errors import InputError

LEVELS = ("frame", "video", "patient")
METRICS = ("accuracy", "auc", "sensitivity", "specificity", "precision", "f1", "brier")
VIDEO_RULES = ("mean", "median", "fraction_above")
PREDICTION_COLUMNS = ("patient_id", "video_id", "frame_index", "y", "probability")
# fewer patients of a class than this: bootstrap intervals and AUCs say little (evaluate and
# interpret add a note)
MIN_PATIENTS_PER_CLASS = 5
_UNDEFINED = {
    "auc": "needs both septic and non-septic cases",
    "sensitivity": "no septic cases",
    "specificity": "no non-septic cases",
    "precision": "no case was called septic",
    "f1": "no septic case and none called septic",
}


def check_predictions(frames: pd.DataFrame) -> pd.DataFrame:
    """Validate a per-frame prediction table; returns it with ``patient_id``/``video_id`` as str."""
    missing = [c for c in PREDICTION_COLUMNS if c not in frames.columns]
    if missing:
        raise InputError(f"prediction table lacks columns {missing}")
    if len(frames) == 0:
        raise InputError("prediction table is empty: the split holds no usable frames")
    p = frames["probability"].to_numpy(dtype=float)
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("probabilities must be finite and in [0, 1]")
    if not set(np.unique(frames["y"])) <= {0, 1}:
        raise InputError("labels y must be 0 (non-septic) or 1 (septic)")
    frames = frames.copy()
    frames["patient_id"] = frames["patient_id"].astype(str)
    frames["video_id"] = frames["video_id"].astype(str)
    frames["y"] = frames["y"].astype(int)
    return frames


def video_scores(
    frames: pd.DataFrame, *, rule: str = "mean", frame_threshold: float = 0.5
) -> pd.DataFrame:
    """One score per video from its frames' probabilities.

    Parameters
    ----------
    frames : per-frame prediction table (see module docstring).
    rule : ``"mean"`` (default; every frame counts equally), ``"median"`` (robust to a few
        out-of-focus or moving frames), or ``"fraction_above"`` (the share of frames with
        probability >= ``frame_threshold``: a vote, which loses the frames' confidence).

    Returns
    -------
    DataFrame with patient_id, video_id, y, probability, n_frames (and split when given).
    """
    if rule not in VIDEO_RULES:
        raise InputError(f"unknown video rule {rule!r}: use one of {VIDEO_RULES}")
    frames = check_predictions(frames)
    keys = ["patient_id", "video_id"]
    grouped = frames.groupby(keys, sort=True)
    if rule == "mean":
        prob = grouped["probability"].mean()
    elif rule == "median":
        prob = grouped["probability"].median()
    else:
        prob = (
            (frames["probability"] >= frame_threshold)
            .groupby([frames[k] for k in keys], sort=True)
            .mean()
        )
    out = grouped.agg(y=("y", "first"), n_frames=("y", "size"))
    if (grouped["y"].nunique() > 1).any():
        raise InputError("a video has frames with different labels")
    out["probability"] = prob.astype(float)
    if "split" in frames.columns:
        out["split"] = grouped["split"].first()
    return out.reset_index()[_ordered(out.reset_index(), ["patient_id", "video_id"])]


def patient_scores(videos: pd.DataFrame) -> pd.DataFrame:
    """One score per patient: the mean of its videos' scores.

    Returns patient_id, label, y, probability, n_videos (and split when the videos have one).
    """
    grouped = videos.groupby("patient_id", sort=True)
    if (grouped["y"].nunique() > 1).any():
        raise InputError("a patient has videos with different labels")
    out = grouped.agg(y=("y", "first"), probability=("probability", "mean"))
    out["n_videos"] = grouped.size()
    out = out.reset_index()
    out.insert(1, "label", np.where(out["y"] == 1, "septic", "non-septic"))
    if "split" in videos.columns:
        out["split"] = grouped["split"].first().to_numpy()
    return out


def level_tables(
    frames: pd.DataFrame, *, video_rule: str = "mean", frame_threshold: float = 0.5
) -> dict[str, pd.DataFrame]:
    """``{"frame": frames, "video": videos, "patient": patients}`` for one prediction table."""
    frames = check_predictions(frames)
    videos = video_scores(frames, rule=video_rule, frame_threshold=frame_threshold)
    return {"frame": frames, "video": videos, "patient": patient_scores(videos)}


def _ordered(table: pd.DataFrame, first: list[str]) -> list[str]:
    rest = ["y", "probability", "n_frames", "split"]
    return first + [c for c in rest if c in table.columns]


# --- metrics -------------------------------------------------------------------------------------


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _weighted_metrics(
    y: np.ndarray, probability: np.ndarray, weights: np.ndarray, threshold: float | np.ndarray
) -> dict[str, np.ndarray]:
    """Every metric for each row of ``weights`` ``(B, n)`` at once; NaN where undefined.

    A weight is how often a case enters the (resampled) cohort, so integer weights give the
    metrics of the cohort with those cases duplicated.
    """
    pos = y == 1
    called = probability >= threshold
    tp = weights @ (pos & called)
    fn = weights @ (pos & ~called)
    fp = weights @ (~pos & called)
    tn = weights @ (~pos & ~called)
    total = tp + fn + fp + tn
    out = {
        "accuracy": _div(tp + tn, total),
        "sensitivity": _div(tp, tp + fn),
        "specificity": _div(tn, tn + fp),
        "precision": _div(tp, tp + fp),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "brier": _div(weights @ (probability - y) ** 2, total),
    }
    # AUC = P(score of a septic case > score of a non-septic one), ties counting one half,
    # from cumulative class weights over the distinct scores (ascending).
    order = np.argsort(probability, kind="stable")
    sorted_p = probability[order]
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    w_sorted = weights[:, order]
    pos_g = np.add.reduceat(w_sorted * pos[order], starts, axis=1)
    neg_g = np.add.reduceat(w_sorted * ~pos[order], starts, axis=1)
    neg_below = np.cumsum(neg_g, axis=1) - neg_g
    pairs = pos_g.sum(axis=1) * neg_g.sum(axis=1)
    out["auc"] = _div((pos_g * (neg_below + 0.5 * neg_g)).sum(axis=1), pairs)
    return out


def binary_metrics(
    y: np.ndarray, probability: np.ndarray, *, threshold: float | np.ndarray = 0.5
) -> dict[str, float | None]:
    """Accuracy, AUC, sensitivity, specificity, precision, F1 and Brier score.

    Parameters
    ----------
    y : (n,) int, 1 septic, 0 non-septic.
    probability : (n,) float in [0, 1], the score of septic.
    threshold : a case is called septic when ``probability >= threshold``; a scalar, or an
        ``(n,)`` array of per-case thresholds (pooled out-of-fold predictions, each fold's own).

    Returns
    -------
    dict metric -> value, None where undefined (e.g. AUC on one class).

    Examples
    --------
    >>> binary_metrics(np.array([0, 1]), np.array([0.2, 0.9]))["auc"]
    1.0
    """
    y = np.asarray(y, dtype=int)
    probability = np.asarray(probability, dtype=float)
    if y.shape != probability.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError("y and probability must be equal-length, non-empty 1-d arrays")
    values = _weighted_metrics(y, probability, np.ones((1, len(y))), threshold)
    return {m: (None if np.isnan(values[m][0]) else float(values[m][0])) for m in METRICS}


def confusion_counts(
    y: np.ndarray, probability: np.ndarray, *, threshold: float | np.ndarray
) -> dict[str, int]:
    """True/false positive/negative counts at ``threshold``."""
    y = np.asarray(y, dtype=int)
    called = np.asarray(probability) >= threshold
    return {
        "tp": int(np.sum((y == 1) & called)),
        "fn": int(np.sum((y == 1) & ~called)),
        "fp": int(np.sum((y == 0) & called)),
        "tn": int(np.sum((y == 0) & ~called)),
    }


# --- threshold -----------------------------------------------------------------------------------


def youden_threshold(y: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    """The cut-off that maximises Youden's J = sensitivity + specificity - 1.

    Candidate cut-offs are the midpoints between consecutive distinct scores (so a case never
    sits exactly on the cut-off) plus one below and one above all scores. Among cut-offs with the
    same J, the one closest to 0.5 wins (no preference for either class). With one class (or no
    case) J is undefined and 0.5 is returned with ``method="default"``.

    Returns
    -------
    ``{"threshold": float, "youden_j": float | None, "method": "youden" | "default"}``
    """
    y = np.asarray(y, dtype=int)
    probability = np.asarray(probability, dtype=float)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return {"threshold": 0.5, "youden_j": None, "method": "default"}
    distinct = np.unique(probability)
    cuts = np.r_[distinct[0] - 1e-6, (distinct[1:] + distinct[:-1]) / 2, distinct[-1] + 1e-6]
    called = probability[None, :] >= cuts[:, None]
    tpr = (called & (y == 1)).sum(1) / (y == 1).sum()
    fpr = (called & (y == 0)).sum(1) / (y == 0).sum()
    j = tpr - fpr
    best = np.flatnonzero(np.isclose(j, j.max()))
    pick = best[np.argmin(np.abs(cuts[best] - 0.5))]
    threshold = float(np.clip(cuts[pick], 0.0, 1.0))
    return {"threshold": threshold, "youden_j": float(j[pick]), "method": "youden"}


# --- bootstrap -----------------------------------------------------------------------------------


def patient_resamples(
    patients: np.ndarray, *, n_bootstrap: int, seed: int, strata: np.ndarray | None = None
) -> np.ndarray:
    """How often each patient is drawn in each resample, ``(n_bootstrap, n_patients)`` int.

    Each resample draws ``n_patients`` patients with replacement (uniformly, or within each
    stratum of ``strata`` when given, keeping the class balance).
    """
    n = len(patients)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_bootstrap, n), dtype=np.int64)
    groups = [np.arange(n)]
    if strata is not None:
        groups = [np.flatnonzero(np.asarray(strata) == s) for s in np.unique(strata)]
    offsets = (np.arange(n_bootstrap) * n)[:, None]
    for members in groups:
        draws = members[rng.integers(0, len(members), size=(n_bootstrap, len(members)))]
        counts += np.bincount((offsets + draws).ravel(), minlength=n_bootstrap * n).reshape(
            n_bootstrap, n
        )
    return counts


def perfect_separation_auc_bound(n_pos: int, n_neg: int, alpha: float = 0.025) -> float:
    """The lowest AUC under which ``n_pos`` + ``n_neg`` cases still separate perfectly with
    probability ``alpha``: the one-sided lower confidence bound of an AUC observed as 1.0.

    A patient bootstrap cannot give it (every resample of a perfectly separated set is perfectly
    separated: the interval [1, 1] claims certainty 5 + 5 patients cannot give). Binormal model
    with equal variances: scores N(0, 1) and N(d, 1), P(every positive above every negative) =
    integral of n_neg phi(x) Phi(x)^(n_neg - 1) (1 - Phi(x - d))^n_pos dx, solved for d by
    bisection; AUC = Phi(d / sqrt 2). At d = 0 the probability is 1 / C(n, n_pos). Examples
    (alpha 0.025): 5 + 5 patients 0.66, 10 + 10 0.87, 20 + 20 0.96.
    """
    from scipy.stats import norm

    def perfect(d: float) -> float:
        x = np.linspace(-9.0, 9.0 + d, 6001)
        density = n_neg * norm.pdf(x) * norm.cdf(x) ** (n_neg - 1) * norm.sf(x - d) ** n_pos
        return float(np.trapezoid(density, x))

    low, high = 0.0, 12.0
    if perfect(low) >= alpha:
        return 0.5
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if perfect(mid) < alpha else (low, mid)
    return float(norm.cdf(high / np.sqrt(2)))


def widen_perfect_auc(auc: dict[str, Any], n_pos: int, n_neg: int, alpha: float) -> None:
    """Replace a bootstrap interval collapsed onto an AUC of 1 (or 0) by the perfect-separation
    bound of ``n_pos`` + ``n_neg`` patients (:func:`perfect_separation_auc_bound`), in place."""
    value, interval = auc.get("value"), auc.get("interval") or [None, None]
    if value not in (0.0, 1.0) or interval[0] != interval[1] or min(n_pos, n_neg) == 0:
        return
    bound = perfect_separation_auc_bound(n_pos, n_neg, alpha)
    auc["interval"] = [bound, 1.0] if value == 1.0 else [0.0, 1.0 - bound]
    auc["interval_method"] = (
        "perfect separation: binormal bound for "
        f"{n_pos} + {n_neg} patients (a bootstrap cannot widen it)"
    )


def auc_interval(
    y: np.ndarray,
    probability: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """``{"value", "interval"}``: the AUC of one score per patient with a percentile interval
    over patient resamples stratified by label (each keeps both classes); a perfect separation
    gets :func:`widen_perfect_auc`'s bound. ``value`` is None with one class only."""
    y, probability = np.asarray(y, dtype=int), np.asarray(probability, dtype=float)
    counts = patient_resamples(np.arange(len(y)), n_bootstrap=n_bootstrap, seed=seed, strata=y)
    draws = _weighted_metrics(y, probability, counts.astype(float), 0.5)["auc"]
    draws = draws[~np.isnan(draws)]
    alpha = (1 - confidence) / 2
    value = binary_metrics(y, probability)["auc"]
    interval = (
        [float(q) for q in np.quantile(draws, [alpha, 1 - alpha])]
        if len(draws) and value is not None
        else [None, None]
    )
    auc = {"value": value, "interval": interval}
    widen_perfect_auc(auc, int(y.sum()), int(len(y) - y.sum()), alpha)
    return auc


def evaluate_levels(
    frames: pd.DataFrame,
    *,
    threshold: float | Mapping[str, float],
    n_bootstrap: int = 1000,
    seed: int = 0,
    video_rule: str = "mean",
    frame_threshold: float = 0.5,
    confidence: float = 0.95,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Metrics with patient-bootstrap intervals at frame, video and patient level.

    ``threshold`` is one number, or patient_id -> threshold (pooled out-of-fold predictions,
    where each patient is called at the threshold its own fold fixed on validation).

    Returns
    -------
    metrics : ``{level: {metric: {"value", "interval": [low, high], "n_resamples", "reason"?},
        "n": {...}, "confusion": {...}}}``.
    tables : the frame, video and patient tables the metrics were computed on.
    """
    tables = level_tables(frames, video_rule=video_rule, frame_threshold=frame_threshold)
    patient_ids = tables["patient"]["patient_id"].to_numpy()
    counts = patient_resamples(patient_ids, n_bootstrap=n_bootstrap, seed=seed)
    alpha = (1 - confidence) / 2
    result: dict[str, Any] = {}
    for level in LEVELS:
        table = tables[level]
        y = table["y"].to_numpy(dtype=int)
        p = table["probability"].to_numpy(dtype=float)
        member = pd.Index(patient_ids).get_indexer(table["patient_id"])
        cut = (
            table["patient_id"].map(threshold).to_numpy(dtype=float)
            if isinstance(threshold, Mapping)
            else float(threshold)
        )
        point = binary_metrics(y, p, threshold=cut)
        entry: dict[str, Any] = {}
        boot: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
        for start in range(0, n_bootstrap, 200):  # chunks bound memory: (200, n_rows) floats
            weights = counts[start : start + 200][:, member].astype(float)
            for m, values in _weighted_metrics(y, p, weights, cut).items():
                boot[m].append(values)
        for m in METRICS:
            values = np.concatenate(boot[m]) if boot[m] else np.empty(0)
            values = values[~np.isnan(values)]
            interval = (
                [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]
                if len(values) and point[m] is not None
                else [None, None]
            )
            entry[m] = {"value": point[m], "interval": interval, "n_resamples": int(len(values))}
            if point[m] is None:
                entry[m]["reason"] = _UNDEFINED[m]
        by_patient = tables["patient"]["y"].to_numpy(dtype=int)
        widen_perfect_auc(entry["auc"], int(by_patient.sum()), int((1 - by_patient).sum()), alpha)
        entry["n"] = {
            "cases": int(len(table)),
            "septic": int(y.sum()),
            "non_septic": int(len(y) - y.sum()),
            "patients": int(len(patient_ids)),
        }
        entry["confusion"] = confusion_counts(y, p, threshold=cut)
        result[level] = entry
    return result, tables


def paired_difference(
    frames_a: pd.DataFrame,
    frames_b: pd.DataFrame,
    *,
    threshold_a: float,
    threshold_b: float,
    n_bootstrap: int = 1000,
    seed: int = 0,
    video_rule: str = "mean",
    frame_threshold: float = 0.5,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Metric of model A minus model B on the same patients, with a paired patient bootstrap.

    Both prediction tables must hold the same patients (e.g. the network and the baseline on one
    split); each resample draws the same patients for both, so the interval reflects the
    difference itself, not two independent uncertainties. An interval that excludes 0 says the
    difference is larger than the patient sampling explains.

    Returns
    -------
    ``{level: {metric: {"value", "interval", "n_resamples"}}}``; for the Brier score a negative
    difference means A is better.
    """
    tables_a = level_tables(frames_a, video_rule=video_rule, frame_threshold=frame_threshold)
    tables_b = level_tables(frames_b, video_rule=video_rule, frame_threshold=frame_threshold)
    patient_ids = tables_a["patient"]["patient_id"].to_numpy()
    if set(patient_ids) != set(tables_b["patient"]["patient_id"]):
        raise InputError("a paired comparison needs both models scored on the same patients")
    counts = patient_resamples(patient_ids, n_bootstrap=n_bootstrap, seed=seed)
    alpha = (1 - confidence) / 2
    out: dict[str, Any] = {}
    for level in LEVELS:
        values: dict[str, list[np.ndarray]] = {}
        for table, cut in ((tables_a[level], threshold_a), (tables_b[level], threshold_b)):
            y = table["y"].to_numpy(dtype=int)
            p = table["probability"].to_numpy(dtype=float)
            member = pd.Index(patient_ids).get_indexer(table["patient_id"])
            weights = np.vstack([np.ones(len(y)), counts[:, member].astype(float)])
            for m, v in _weighted_metrics(y, p, weights, cut).items():
                values.setdefault(m, []).append(v)
        out[level] = {}
        for m in METRICS:
            diff = values[m][0] - values[m][1]
            point, boot = diff[0], diff[1:]
            boot = boot[~np.isnan(boot)]
            defined = not np.isnan(point) and len(boot) > 0
            out[level][m] = {
                "value": None if np.isnan(point) else float(point),
                "interval": [float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))]
                if defined
                else [None, None],
                "n_resamples": int(len(boot)),
            }
    return out


def summarise_folds(fold_metrics: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of each metric over folds, per level.

    ``fold_metrics`` are :func:`evaluate_levels` results (one per fold); undefined values are
    skipped and ``n_folds`` says how many counted.
    """
    out: dict[str, Any] = {}
    for level in LEVELS:
        out[level] = {}
        for m in METRICS:
            values = np.array(
                [f[level][m]["value"] for f in fold_metrics if f[level][m]["value"] is not None],
                dtype=float,
            )
            out[level][m] = {
                "mean": float(values.mean()) if len(values) else None,
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "min": float(values.min()) if len(values) else None,
                "max": float(values.max()) if len(values) else None,
                "n_folds": int(len(values)),
            }
    return out
