"""Judge a trained classifier by frame, video and patient, beside a simple baseline.

``evaluate(run_dir, settings)`` scores the validation split (to fix the decision threshold,
saved to ``RUN/classifier/threshold.json``) and the evaluated split (``test`` by default) with the
run's model, then writes under ``RUN/evaluation/``:

- ``metrics.json``: a key per level (``"frame"``, ``"video"``, ``"patient"``), each with accuracy,
  AUC, sensitivity, specificity, precision, F1 and Brier score as ``{"value", "interval",
  "n_resamples"}`` (95 % patient-bootstrap interval); ``"threshold"``, ``"split"``, ``"n"``, and
  ``"baseline"`` (the same levels for logistic regression on frame statistics, and
  ``"network_minus_baseline"``: each metric's difference with a paired patient-bootstrap interval);
- ``frames.parquet``, ``videos.parquet``, ``patients.parquet``: the scores at each level;
- ``roc.png``, ``confusion.png``, ``reliability.png``.

The method (aggregation rules, threshold, bootstrap) is in :mod:`sepsiscope.classifier.scores` and
docs/evaluation.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from sepsiscope._io import write_json, write_table
from sepsiscope._lock import writes
from sepsiscope.classifier import scores as M
from sepsiscope.classifier._figures import confusion_figure, reliability_figure, roc_figure
from sepsiscope.classifier.baseline import DEFAULT_FEATURES, baseline_predictions
from sepsiscope.classifier.calibration import calibration_report, fit_temperature, scale
from sepsiscope.data.splits import split_tables
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.settings import StageSettings, provenance

log = logging.getLogger(__name__)


class EvaluateSettings(StageSettings):
    """How a run is judged.

    ``threshold=None`` fixes the decision threshold by Youden's J on the validation split's
    ``threshold_level`` scores; a number uses that threshold instead (e.g. one agreed in advance).
    """

    split: Literal["train", "val", "test"] = "test"
    n_bootstrap: int = Field(1000, ge=0, description="patient resamples for the 95 % intervals")
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0
    video_rule: Literal["mean", "median", "fraction_above"] = "mean"
    frame_threshold: float = Field(0.5, ge=0, le=1, description="for video_rule=fraction_above")
    threshold: float | None = Field(None, ge=0, le=1)
    threshold_level: Literal["frame", "video", "patient"] = "patient"
    baseline: bool = True
    baseline_features: tuple[str, ...] = DEFAULT_FEATURES
    batch_size: int = Field(64, ge=1)
    store: Path | None = Field(None, description="the frame store; default: the run's own")
    tta: bool = Field(False, description="average each sample over its 8 flips and turns")


# --- glue to the classifier (train.py / inference.py) --------------------------------------------


def _split_tables(store: FrameStore, train_settings: Any, names: list[str]) -> dict[str, Any]:
    """Frame rows of each split in ``names``, exactly as the run's training defined them
    (patient split, fold, or the leaky frame split)."""
    s = train_settings
    tables = split_tables(store, split_by=s.split_by, fold=s.fold, seed=s.seed)
    return {n: tables[n] for n in names}


def predict_frames(
    model: Any,
    train_settings: Any,
    store: FrameStore,
    table: pd.DataFrame,
    *,
    batch_size: int,
    tta: bool = False,
) -> pd.DataFrame:
    """Per-frame prediction table (patient_id, video_id, frame_index, y, probability, split)."""
    from sepsiscope.classifier.inference import predict_store

    if len(table) == 0:
        return pd.DataFrame(columns=[*M.PREDICTION_COLUMNS, "split"])
    predicted = predict_store(model, train_settings, store, table, batch_size=batch_size, tta=tta)
    out = table[["patient_id", "video_id", "frame_index", "y", "split"]].reset_index(drop=True)
    out["probability"] = predicted["probability"].to_numpy(dtype=float)
    return out[[*M.PREDICTION_COLUMNS, "split"]]


# --- the stage -----------------------------------------------------------------------------------


def choose_threshold(val_frames: pd.DataFrame, settings: EvaluateSettings) -> dict[str, Any]:
    """The decision threshold from the validation predictions (or the fixed one in settings)."""
    if settings.threshold is not None:
        return {"threshold": settings.threshold, "method": "fixed", "youden_j": None}
    if len(val_frames) == 0:
        log.warning("the validation split is empty: threshold 0.5")
        return {"threshold": 0.5, "method": "default", "youden_j": None,
                "reason": "empty validation split"}  # fmt: skip
    level = M.level_tables(
        val_frames, video_rule=settings.video_rule, frame_threshold=settings.frame_threshold
    )[settings.threshold_level]
    chosen = M.youden_threshold(level["y"].to_numpy(), level["probability"].to_numpy())
    if chosen["method"] == "default":
        chosen["reason"] = "validation split holds one class only"
    chosen["n_validation_cases"] = len(level)
    return chosen


def small_split_note(frames: pd.DataFrame, split: str) -> str | None:
    """A warning when a split holds too few patients of a class for its figures to be stable.

    Under ``MIN_PATIENTS_PER_CLASS`` of a class, resampling 2-4 patients gives intervals that can
    be zero-width (every resample the same) or span everything; under twice that, the figures
    of one split still move a lot between splits (an AUC by about +-0.2 at 5 + 5 patients).
    """
    by_patient = frames.groupby("patient_id")["y"].first()
    n_septic = int(by_patient.sum())
    n_other = len(by_patient) - n_septic
    fewest = min(n_septic, n_other)
    if fewest >= 2 * M.MIN_PATIENTS_PER_CLASS:
        return None
    counts = f"only {len(by_patient)} {split} patients ({n_septic} septic, {n_other} non-septic)"
    if fewest < M.MIN_PATIENTS_PER_CLASS:
        return (
            f"{counts}: with fewer than {M.MIN_PATIENTS_PER_CLASS} of a class the bootstrap "
            "intervals are not informative (they can be zero-width); use `sepsiscope crossval` "
            "for small cohorts"
        )
    return (
        f"{counts}: the figures of one split this small move a lot with the patients drawn "
        "(read the intervals, not the values); `sepsiscope crossval` scores every patient out "
        "of fold"
    )


def judge(
    eval_frames: pd.DataFrame, val_frames: pd.DataFrame, settings: EvaluateSettings
) -> tuple[dict[str, Any], dict[str, Any], dict[str, pd.DataFrame]]:
    """Threshold from ``val_frames``, metrics with intervals on ``eval_frames``.

    Returns ``(metrics by level, threshold record, level tables)``; pure (no files).
    """
    if len(eval_frames) == 0:
        raise InputError(
            f"the {settings.split} split holds no usable frames: the store's splits put no "
            "patient there (or quality removed every frame); re-ingest with more patients"
        )
    chosen = choose_threshold(val_frames, settings)
    chosen.update(level=settings.threshold_level, video_rule=settings.video_rule, split="val")
    result, tables = M.evaluate_levels(
        eval_frames,
        threshold=chosen["threshold"],
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
        video_rule=settings.video_rule,
        frame_threshold=settings.frame_threshold,
        confidence=settings.confidence,
    )
    return result, chosen, tables


@writes("run_dir", "evaluate", create=False)
def evaluate(
    run_dir: str | os.PathLike, settings: EvaluateSettings, *, quiet: bool = False
) -> dict[str, Any]:
    """Evaluate a run's classifier on one split; see the module docstring for what is written.

    Returns
    -------
    dict: paths written, the split, the threshold, and the patient-level AUC, accuracy,
    sensitivity and specificity (value and interval), and the baseline's patient AUC.

    Examples
    --------
    >>> evaluate("run", EvaluateSettings(split="test"))["patient_auc"]  # doctest: +SKIP
    {'value': 0.93, 'interval': [0.81, 1.0]}
    """
    layout = RunLayout(run_dir).require_classifier()
    from sepsiscope.classifier.inference import load_classifier

    model, train_settings = load_classifier(run_dir)
    store = FrameStore(layout.store_dir(settings.store))
    split_by = getattr(train_settings, "split_by", "patient")
    if split_by == "all":
        raise InputError(
            f"{run_dir} was trained on every patient (crossval --refit): no patient is held out "
            "to judge it on; its figures are those of the cross-validation in the folder above"
        )
    names = list(dict.fromkeys(["train", "val", settings.split]))
    tables = _split_tables(store, train_settings, names)
    val_frames, eval_frames = _predict_splits(model, train_settings, store, tables, settings)
    result, chosen, level_tables = judge(eval_frames, val_frames, settings)
    # fitted on validation, judged on the evaluated split (the same one for --split val)
    temperature = fit_temperature(val_frames["probability"], val_frames["y"])
    calibration = calibration_report(eval_frames, temperature, video_rule=settings.video_rule)
    notes = _notes(eval_frames, settings, split_by)
    baseline, baseline_tables = _compare_baseline(
        store, tables, eval_frames, chosen, settings, quiet=quiet
    )
    result["calibration"] = calibration
    figures = _write_outputs(
        layout, settings, result, chosen, level_tables, baseline, baseline_tables, notes, split_by
    )
    figures.append(_write_calibration(layout, settings, eval_frames, val_frames, temperature))
    for text in notes:
        log.warning(text)
    return _summary(layout, settings, result, chosen, baseline, figures, notes)


def _predict_splits(
    model: Any,
    train_settings: Any,
    store: FrameStore,
    tables: dict[str, pd.DataFrame],
    settings: EvaluateSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frame predictions of the validation and the evaluated split (the same table for val)."""
    options = {"batch_size": settings.batch_size, "tta": settings.tta}
    val_frames = predict_frames(model, train_settings, store, tables["val"], **options)
    if settings.split == "val":
        return val_frames, val_frames
    eval_frames = predict_frames(model, train_settings, store, tables[settings.split], **options)
    return val_frames, eval_frames


def _compare_baseline(
    store: FrameStore,
    tables: dict[str, pd.DataFrame],
    eval_frames: pd.DataFrame,
    chosen: dict[str, Any],
    settings: EvaluateSettings,
    *,
    quiet: bool,
) -> tuple[dict[str, Any] | None, dict[str, pd.DataFrame] | None]:
    """The baseline if asked for, with the network's paired difference from it when it ran."""
    if not settings.baseline:
        return None, None
    baseline, baseline_tables = _baseline(store, tables, settings, quiet=quiet)
    if baseline_tables is not None:
        # What the network adds: the same patients drawn for both in each resample.
        baseline["network_minus_baseline"] = M.paired_difference(
            eval_frames,
            baseline_tables["frame"],
            threshold_a=chosen["threshold"],
            threshold_b=baseline["threshold"]["threshold"],
            n_bootstrap=settings.n_bootstrap,
            seed=settings.seed,
            video_rule=settings.video_rule,
            frame_threshold=settings.frame_threshold,
            confidence=settings.confidence,
        )
    return baseline, baseline_tables


def _write_calibration(
    layout: RunLayout,
    settings: EvaluateSettings,
    eval_frames: pd.DataFrame,
    val_frames: pd.DataFrame,
    temperature: float,
) -> Path:
    """Write the temperature-scaled reliability figure and the temperature; return the figure."""
    calibrated = M.level_tables(
        eval_frames.assign(probability=scale(eval_frames["probability"], temperature)),
        video_rule=settings.video_rule,
    )
    figure = reliability_figure(
        calibrated, layout.reliability_calibrated_figure, split=settings.split,
        note=f"temperature-scaled, T = {temperature:.2f} fitted on val",
    )  # fmt: skip
    write_json(layout.calibration, {"temperature": temperature, "fitted_on": "val frames",
                                    "n_frames": len(val_frames), **provenance()})  # fmt: skip
    return figure


def _notes(eval_frames: pd.DataFrame, settings: EvaluateSettings, split_by: str) -> list[str]:
    """What a reader must know before trusting the figures (optimism, leakage, small splits)."""
    notes = []
    if settings.split == "val":
        notes.append("threshold chosen on the evaluated (validation) split: optimistic")
    if split_by != "patient":
        notes.append(
            "LEAKAGE: the run was split by frame, so the same patients are in training and "
            "evaluation; frame figures are inflated and patient figures are meaningless"
        )
    small = small_split_note(eval_frames, settings.split)
    if small:
        notes.append(small)
    return notes


def _write_outputs(
    layout: RunLayout,
    settings: EvaluateSettings,
    result: dict[str, Any],
    chosen: dict[str, Any],
    level_tables: dict[str, pd.DataFrame],
    baseline: dict[str, Any] | None,
    baseline_tables: dict[str, pd.DataFrame] | None,
    notes: list[str],
    split_by: str,
) -> list[Path]:
    """Write RUN/evaluation/ (settings, tables, figures, metrics.json) and the threshold; return
    the figures' paths."""
    layout.evaluation.mkdir(parents=True, exist_ok=True)
    settings.save(layout.evaluation_settings)
    write_json(layout.threshold, {**chosen, **provenance()})
    write_table(layout.evaluation_frames, level_tables["frame"])
    write_table(layout.evaluation_videos, level_tables["video"])
    write_table(layout.evaluation_patients, level_tables["patient"])
    note = "frame split, leaky" if split_by != "patient" else ""
    split = settings.split
    figures = [
        roc_figure(level_tables, result, layout.roc_figure, split=split,
                   baseline=baseline_tables, note=note),
        confusion_figure(level_tables, layout.confusion_figure, threshold=chosen["threshold"],
                         split=split, note=note),
        reliability_figure(level_tables, layout.reliability_figure, split=split, note=note),
    ]  # fmt: skip
    document = {
        **result,
        "split": split,
        "split_by": split_by,
        "threshold": chosen,
        "n": result["patient"]["n"]
        | {"videos": len(level_tables["video"]), "frames": len(level_tables["frame"])},  # fmt: skip
        "baseline": baseline,
        "notes": notes,
        "settings": settings.model_dump(mode="json"),
        **provenance(),
    }
    write_json(layout.evaluation_metrics, document)
    return figures


def _summary(
    layout: RunLayout,
    settings: EvaluateSettings,
    result: dict[str, Any],
    chosen: dict[str, Any],
    baseline: dict[str, Any] | None,
    figures: list[Path],
    notes: list[str],
) -> dict[str, Any]:
    """The JSON-able result of :func:`evaluate`: paths and the patient-level key figures."""
    patient = result["patient"]
    compared = baseline is not None and "network_minus_baseline" in baseline
    return {
        "metrics": str(layout.evaluation_metrics),
        "tables": [
            str(layout.evaluation_frames),
            str(layout.evaluation_videos),
            str(layout.evaluation_patients),
        ],  # fmt: skip
        "figures": [str(f) for f in figures],
        "evaluation_dir": str(layout.evaluation),
        "split": settings.split,
        "threshold": chosen["threshold"],
        "n_patients": patient["n"]["patients"],
        "patient_auc": _short(patient["auc"]),
        "patient_accuracy": _short(patient["accuracy"]),
        "patient_sensitivity": _short(patient["sensitivity"]),
        "patient_specificity": _short(patient["specificity"]),
        "baseline_patient_auc": _short(baseline["patient"]["auc"]) if compared else None,
        "network_minus_baseline_patient_auc": (
            _short(baseline["network_minus_baseline"]["patient"]["auc"]) if compared else None
        ),
        "calibration": {
            "temperature": result["calibration"]["temperature"],
            **{f"patient_{k}": v for k, v in result["calibration"]["patient"].items() if k != "n"},
        },
        "notes": notes,
    }


def _short(entry: dict[str, Any]) -> dict[str, Any]:
    return {"value": entry["value"], "interval": entry["interval"]}


def _baseline(
    store: FrameStore, tables: dict[str, pd.DataFrame], settings: EvaluateSettings, *, quiet: bool
) -> tuple[dict[str, Any] | None, dict[str, pd.DataFrame] | None]:
    """The logistic-regression baseline judged exactly like the network."""
    needed = {n: tables[n] for n in ("train", "val", settings.split)}
    try:
        predictions, coefficients = baseline_predictions(
            store, needed, features=settings.baseline_features, seed=settings.seed, quiet=quiet
        )
    except InputError as exc:
        log.warning("baseline skipped: %s", exc)
        return {"skipped": str(exc)}, None
    val = predictions.get("val", pd.DataFrame(columns=[*M.PREDICTION_COLUMNS, "split"]))
    evaluated = predictions[settings.split] if settings.split != "train" else None
    if evaluated is None:
        return {"skipped": "the baseline is fitted on the train split"}, None
    result, chosen, level_tables = judge(evaluated, val, settings)
    return {
        **result,
        "threshold": chosen,
        "features": list(settings.baseline_features),
        "coefficients": coefficients,
        "model": "standardised logistic regression, balanced class weights, fit on train frames",
    }, level_tables
