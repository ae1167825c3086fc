"""Patient-grouped, stratified k-fold cross-validation of the classifier.

The folds are the store's (``splits.json`` ``"folds"``: every patient in exactly one fold,
stratified by label, written by ingest). For fold ``i`` one model is trained with
``TrainSettings(fold=i)`` (fold ``i``'s patients held out as its test split; training decides its
own validation patients among the others) into ``RUN/folds/fold_i/``, and judged on fold ``i``'s
patients with :func:`sepsiscope.classifier.evaluate.evaluate` (its threshold fixed on its own
validation patients). Then, under ``RUN/crossval/``:

- ``oof_frames.parquet``, ``oof_videos.parquet``, ``oof_patients.parquet``: the out-of-fold
  scores of every patient, with the ``fold`` that held it out and that fold's ``threshold``;
- ``metrics.json``: ``"folds"`` (mean, SD, min, max of each metric over folds, per level),
  ``"pooled"`` (the pooled out-of-fold predictions, each patient called at its own fold's
  threshold, with patient-bootstrap intervals), ``"per_fold"`` and ``"baseline_folds"``.

Then the models to apply (:mod:`sepsiscope.classifier.ensemble`): ``RUN/ensemble`` always, and
``RUN/refit`` with ``refit=True``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from sepsiscope._io import read_json, write_json, write_table
from sepsiscope._lock import writes
from sepsiscope.classifier import scores as M
from sepsiscope.classifier.calibration import compare_calibration, scale
from sepsiscope.classifier.ensemble import write_ensemble, write_refit
from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.settings import StageSettings, provenance

log = logging.getLogger(__name__)


class CrossvalSettings(StageSettings):
    """Cross-validation: how many folds, how each fold trains and how it is judged."""

    folds: int | None = Field(None, ge=2, description="must match the store's; None = the store's")
    train: dict[str, Any] = Field(
        default_factory=dict, description="TrainSettings fields for every fold (epochs, ...)"
    )
    evaluate: EvaluateSettings = EvaluateSettings(n_bootstrap=200)
    refit: bool = Field(
        False, description="also train RUN/refit on every patient (the folds' median epoch count)"
    )
    overwrite: bool = False


@writes("run_dir", "crossval")
def crossval(
    store_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    settings: CrossvalSettings,
    *,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train and judge one model per fold; pool the out-of-fold predictions.

    Returns
    -------
    dict: paths written, the number of folds, the mean and SD over folds of the patient-level AUC
    and accuracy, and the pooled out-of-fold patient AUC with its interval.

    Examples
    --------
    >>> crossval("store", "cv", CrossvalSettings(train={"epochs": 2}))  # doctest: +SKIP
    """
    store = FrameStore(store_dir)
    fold_lists = _check_folds(store, settings)
    layout = RunLayout(run_dir)
    layout.crossval.mkdir(parents=True, exist_ok=True)
    settings.save(layout.crossval_settings)
    judge_settings = settings.evaluate.model_copy(update={"store": Path(store_dir)})

    per_fold, baselines, oof = [], [], []
    for i in range(len(fold_lists)):
        fold = layout.fold(i)
        _run_fold(store_dir, fold, i, len(fold_lists), settings, judge_settings, quiet=quiet)
        frames, document = _read_fold(fold, i, fold_lists[i])
        oof.append(frames)
        per_fold.append({level: document[level] for level in M.LEVELS})
        if document.get("baseline") and "patient" in document["baseline"]:
            baselines.append({level: document["baseline"][level] for level in M.LEVELS})

    oof_frames = pd.concat(oof, ignore_index=True)
    pooled, tables = _pool(oof_frames, settings.evaluate)
    missing = sorted(set(map(str, sum(fold_lists, []))) - set(tables["patient"]["patient_id"]))
    document = {
        "folds": M.summarise_folds(per_fold),
        "pooled": pooled,
        "calibration": _pooled_calibration(oof_frames, settings.evaluate.video_rule),
        "per_fold": per_fold,
        "baseline_folds": M.summarise_folds(baselines) if baselines else None,
        "n_folds": len(fold_lists),
        "patients_without_usable_frames": missing,
        "settings": settings.model_dump(mode="json"),
        **provenance(),
    }
    _write_outputs(layout, oof_frames, tables, document)
    ensemble = write_ensemble(layout, len(fold_lists), oof_frames, settings.evaluate)
    result = _summary(layout, tables, document)
    result["ensemble"] = str(ensemble.root) if ensemble else None
    if settings.refit:
        refit = write_refit(
            layout, store_dir, settings.train, len(fold_lists), oof_frames, settings.evaluate,
            overwrite=settings.overwrite, quiet=quiet,
        )  # fmt: skip
        result["refit"] = str(refit.root)
    return result


def _read_fold(fold: RunLayout, i: int, patients: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fold ``i``'s judged frames, tagged with its fold, threshold and temperature, and its
    metrics document; InputError when its test patients are not the fold's ``patients``."""
    document = read_json(fold.evaluation_metrics)
    held_out = set(map(str, patients))
    frames = pd.read_parquet(fold.evaluation_frames)
    if not set(frames["patient_id"].astype(str)) <= held_out:
        raise InputError(
            f"{fold.root}: its test patients are not fold {i}'s; the fold was trained on "
            "another store or split (use --overwrite)"
        )
    threshold = document["threshold"]["threshold"]
    temperature = document.get("calibration", {}).get("temperature", 1.0)  # older folds: 1
    return frames.assign(fold=i, threshold=threshold, temperature=temperature), document


def _pooled_calibration(oof_frames: pd.DataFrame, video_rule: str) -> dict[str, Any]:
    """Calibration of the pooled out-of-fold predictions before and after temperature scaling."""
    # each patient's probability scaled by its own fold's temperature, fitted on that fold's
    # validation patients: never on the patients it is judged on
    p, temperature = oof_frames["probability"].to_numpy(), oof_frames["temperature"].to_numpy()
    scaled = oof_frames.assign(probability=scale(p, temperature))
    calibration = compare_calibration(
        oof_frames[list(M.PREDICTION_COLUMNS)],
        scaled[list(M.PREDICTION_COLUMNS)],
        video_rule=video_rule,
    )
    calibration["temperature_by_fold"] = oof_frames.groupby("fold")["temperature"].first().tolist()
    return calibration


def _write_outputs(
    layout: RunLayout,
    oof_frames: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    document: dict[str, Any],
) -> None:
    """Write the out-of-fold tables and metrics.json under RUN/crossval/."""
    write_table(layout.oof_frames, oof_frames)
    write_table(layout.oof_videos, tables["video"])
    write_table(layout.oof_patients, tables["patient"])
    write_json(layout.crossval_metrics, document)


def _summary(
    layout: RunLayout, tables: dict[str, pd.DataFrame], document: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-able result of :func:`crossval`: paths and the patient-level key figures."""
    patient = document["folds"]["patient"]
    pooled_auc = document["pooled"]["patient"]["auc"]
    baseline_folds = document["baseline_folds"]
    return {
        "metrics": str(layout.crossval_metrics),
        "tables": [str(layout.oof_frames), str(layout.oof_videos), str(layout.oof_patients)],
        "folds": [str(layout.fold(i).root) for i in range(document["n_folds"])],
        "n_folds": document["n_folds"],
        "n_patients": int(len(tables["patient"])),
        "patient_auc_mean": patient["auc"]["mean"],
        "patient_auc_std": patient["auc"]["std"],
        "patient_accuracy_mean": patient["accuracy"]["mean"],
        "patient_accuracy_std": patient["accuracy"]["std"],
        "pooled_patient_auc": {"value": pooled_auc["value"], "interval": pooled_auc["interval"]},
        "baseline_patient_auc_mean": (
            baseline_folds["patient"]["auc"]["mean"] if baseline_folds else None
        ),
    }


def _check_folds(store: FrameStore, settings: CrossvalSettings) -> list[list[str]]:
    """The store's folds; InputError when there are none, too few, or not as many as asked."""
    fold_lists = store.splits.get("folds") or []
    if len(fold_lists) < 2:
        raise InputError(
            f"{store.layout.splits}: the store holds no folds; ingest again with --folds K (K >= 2)"
        )
    if settings.folds is not None and settings.folds != len(fold_lists):
        raise InputError(
            f"the store holds {len(fold_lists)} folds, not {settings.folds}: ingest again with "
            f"--folds {settings.folds}, or leave --folds out"
        )
    if settings.evaluate.split != "test":
        raise InputError("cross-validation judges each fold on its held-out (test) patients")
    return fold_lists


def _run_fold(
    store_dir: str | os.PathLike,
    fold: RunLayout,
    i: int,
    n_folds: int,
    settings: CrossvalSettings,
    judge_settings: EvaluateSettings,
    *,
    quiet: bool,
) -> None:
    """Train fold ``i`` and judge it on its held-out patients, unless already done."""
    from sepsiscope.classifier.train import TrainSettings, train

    if settings.overwrite or not fold.model.exists():
        log.info("fold %d/%d: training", i + 1, n_folds)
        train(store_dir, fold.root, TrainSettings.build(**{**settings.train, "fold": i}),
              quiet=quiet)  # fmt: skip
    if settings.overwrite or not fold.evaluation_metrics.exists():
        # A fold's test part is small by design ("use crossval" would be advice in a loop);
        # its notes stay in the fold's metrics.json, the pooled figures are what to read.
        evaluate_log = logging.getLogger("sepsiscope.classifier.evaluate")
        level = evaluate_log.level
        evaluate_log.setLevel(logging.ERROR)
        try:
            evaluate(fold.root, judge_settings, quiet=quiet)
        finally:
            evaluate_log.setLevel(level)


def _pool(
    oof_frames: pd.DataFrame, settings: EvaluateSettings
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Figures of the pooled out-of-fold predictions, each patient called at its own fold's
    threshold; the video and patient tables carry the fold and threshold."""
    cuts = oof_frames.groupby("patient_id")["threshold"].first().to_dict()
    pooled, tables = M.evaluate_levels(
        oof_frames[[*M.PREDICTION_COLUMNS, "split"]],
        threshold=cuts,
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
        video_rule=settings.video_rule,
        frame_threshold=settings.frame_threshold,
        confidence=settings.confidence,
    )
    fold_of = oof_frames.groupby("patient_id")["fold"].first()
    for level in ("video", "patient"):
        tables[level]["fold"] = tables[level]["patient_id"].map(fold_of).to_numpy()
        tables[level]["threshold"] = tables[level]["patient_id"].map(cuts).to_numpy()
    return pooled, tables
