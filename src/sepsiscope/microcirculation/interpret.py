"""``sepsiscope interpret``: an interpretable classifier on the consensus metrics.

Patient-level logistic regression on each patient's mean metrics (TVD, small TVD, PPV, PVD, MFI,
velocity), judged by stratified cross-validation over patients (one row per patient, so no
patient can reach both sides of a fold). Given a run, a combined model adds the network's
out-of-fold patient probability (``RUN/crossval/oof_patients.parquet``, else the held-out patients
of ``RUN/evaluation/patients.parquet``) as a feature, and all AUCs are reported on the same
patients in one table: the metrics alone, the network alone, and both (Hilty et al. 2022 found the
union held up better on an external cohort than deep learning alone).

Writes MEASUREMENTS/interpret/: ``auc.csv``, ``coefficients.csv``, ``patients.csv`` (out-of-fold
probabilities) and ``interpret.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope._io import read_table, write_json, write_text
from sepsiscope._lock import writes
from sepsiscope.classifier.scores import MIN_PATIENTS_PER_CLASS, auc_interval
from sepsiscope.errors import InputError
from sepsiscope.layout import MeasurementLayout, RunLayout
from sepsiscope.settings import StageSettings, provenance

DEFAULT_FEATURES = (
    "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "ppv_percent", "pvd_mm_per_mm2", "mfi",
    "mean_velocity_um_per_s",
)  # fmt: skip


class InterpretSettings(StageSettings):
    """Settings of ``sepsiscope interpret``."""

    folds: int = Field(5, ge=2)
    seed: int = 0
    c: float = Field(1.0, gt=0, description="Inverse L2 regularisation strength.")
    features: tuple[str, ...] = DEFAULT_FEATURES


def patient_table(videos: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """Per-patient mean of each metric over the patient's accepted videos, with ``y``."""
    ok = videos[videos["status"] == "ok"] if "status" in videos else videos
    ok = ok[ok["patient_id"].astype(str) != ""]
    if ok.empty:
        raise InputError("no measured videos with a patient_id: measure a manifest first")
    labels = ok["label"].astype(str).str.lower()
    if not labels.isin(("septic", "non-septic")).all():
        raise InputError("the measurements carry no septic/non-septic labels (use a manifest)")
    present = [f for f in features if f in ok]
    table = ok.groupby("patient_id")[present].mean()
    table["y"] = (labels == "septic").groupby(ok["patient_id"]).first().astype(int)
    return table.reset_index()


def _model(c: float, seed: int):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # keep_empty_features: a metric measured in some patients only can be missing from a whole
    # training fold; it is then a column of zeros (no weight) instead of a dropped column.
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=c, max_iter=1000, random_state=seed),
    )


def cross_validated_probability(
    x: np.ndarray, y: np.ndarray, *, folds: int, c: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Out-of-fold probability of each patient (stratified folds over patients).

    Parameters
    ----------
    x : (n_patients, n_features) float ndarray, NaN allowed (imputed with the fold's median)
    y : (n_patients,) int ndarray of 0/1
    """
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        raise InputError("need at least 2 patients of each class for cross-validation")
    probability = np.full(len(y), np.nan)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        model = _model(c, seed).fit(x[train], y[train])
        probability[test] = model.predict_proba(x[test])[:, 1]
    return probability


def auc_row(model: str, patients: str, y: np.ndarray, p: Any, *, seed: int = 0) -> dict[str, Any]:
    """One row of the AUC table: the AUC of ``p`` for ``y`` (one entry per patient) with its 95 %
    interval from 1000 stratified patient resamples (:func:`~sepsiscope.classifier.scores.
    auc_interval`)."""
    auc = auc_interval(y, p, seed=seed)
    low, high = (np.nan if v is None else float(v) for v in auc["interval"])
    value = np.nan if auc["value"] is None else float(auc["value"])
    return {"model": model, "patients": patients, "n_patients": len(y), "auc": value,
            "auc_low": low, "auc_high": high}  # fmt: skip


CROSSVAL_HINT = (
    "run `sepsiscope crossval --store STORE --out RUN` for out-of-fold probabilities of every "
    "patient, or pass --run CV_DIR of a crossval run"
)


def _network_patients(run_dir: Path) -> tuple[pd.DataFrame, str]:
    """The network's patient probabilities: a crossval's out-of-fold ones (``run_dir`` a run with
    ``crossval/``, its ``crossval/`` folder itself, or its ``ensemble/`` or ``refit/``: their
    in-sample probabilities would flatter them), else the evaluated (test) patients."""
    from sepsiscope.classifier.ensemble import crossval_model

    run = RunLayout(run_dir)
    parent = RunLayout(run.root.parent)
    for path, source in ((run.oof_patients, "crossval out-of-fold"),
                         (run_dir / run.oof_patients.name, "crossval out-of-fold"),
                         (parent.oof_patients if crossval_model(run_dir) else run.oof_patients,
                          f"crossval out-of-fold (the {crossval_model(run_dir)}'s folds)"),
                         (run.evaluation_patients, "evaluation held-out")):  # fmt: skip
        if path.exists():
            table = read_table(path)
            if "split" in table and source.startswith("evaluation"):
                table = (
                    table[table["split"] == "test"] if (table["split"] == "test").any() else table
                )
            return table[["patient_id", "probability"]].copy(), source
    raise InputError(
        f"no patient probabilities in {run_dir} (neither {run.oof_patients} nor "
        f"{run.evaluation_patients}): {CROSSVAL_HINT}; or `sepsiscope evaluate RUN` for the "
        "test patients only"
    )


def _usable_features(
    patients: pd.DataFrame, features: tuple[str, ...], source: str
) -> tuple[list[str], list[str]]:
    """The metrics measured in at least one patient, and notes on those left out or imputed.

    A metric no patient has (e.g. velocity when every vessel was too fast or too short to follow)
    gives the model nothing and cannot be imputed: it is dropped, with a note, before fitting.
    """
    n = len(patients)
    kept, notes = [], []
    absent = [f for f in features if f not in patients]
    empty = [f for f in features if f in patients and patients[f].isna().all()]
    for f in features:
        if f in absent or f in empty:
            continue
        kept.append(f)
        missing = int(patients[f].isna().sum())
        if missing:
            notes.append(
                f"{f}: missing in {missing} of {n} patients, imputed with the median of the "
                "training patients (0 after standardisation where a fold's training patients "
                "have none)"
            )
    if empty:
        notes.insert(0, f"left out, measured in no patient: {', '.join(empty)}")
    if absent:
        notes.insert(0, f"left out, not in the measurements: {', '.join(absent)}")
    if not kept:
        raise InputError(f"{source}: no metric was measured in any patient")
    return kept, notes


@writes("measurements", "interpret", create=False)
def interpret(
    measurements: str | os.PathLike,
    settings: InterpretSettings | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Cross-validated AUC of the metrics model, and with ``run_dir`` of the network and both.

    Parameters
    ----------
    measurements : folder written by :func:`sepsiscope.microcirculation.measure.measure` on a
    manifest. settings : InterpretSettings, optional run_dir : a run with ``crossval`` or
    ``evaluation`` patient probabilities (or a crossval's
        ``crossval/`` folder), optional.

    Returns
    -------
    dict with ``models`` (name, n_patients, auc), ``coefficients`` (standardised log-odds per
    metric, fitted on all patients), ``notes`` (metrics left out because no patient has them, or
    imputed for some patients) and ``files``.

    Examples
    --------
    >>> interpret("run/measurements", run_dir="run")["models"]  # doctest: +SKIP
    """
    settings = settings or InterpretSettings()
    layout = MeasurementLayout(measurements)
    if not layout.videos.exists():
        raise InputError(f"no measurements in {layout.root}: run `sepsiscope measure` first")
    patients = patient_table(read_table(layout.videos), settings.features)
    features, notes = _usable_features(patients, settings.features, str(layout.videos))
    x, y = patients[features].to_numpy(float), patients["y"].to_numpy(int)
    kw = {"folds": settings.folds, "c": settings.c, "seed": settings.seed}
    patients["p_metrics"] = cross_validated_probability(x, y, **kw)
    models = [auc_row("metrics (logistic regression)", "all measured", y, patients["p_metrics"])]
    source = None
    if run_dir is not None:
        network, source = _network_patients(Path(run_dir))
        joined = patients.merge(network, on="patient_id", how="inner")
        too_few = _too_few_for_combined(joined, source, run_dir)
        if too_few:
            notes.append(too_few)
        else:
            combined, patients = _combined_models(patients, joined, source, features, kw)
            models += combined
    coefficients = _coefficients(x, y, features, settings)
    notes.extend(_small_cohort_notes(models))
    return _write_results(layout, settings, models, coefficients, patients, source, notes)


def _coefficients(
    x: np.ndarray, y: np.ndarray, features: list[str], settings: InterpretSettings
) -> pd.DataFrame:
    """Standardised log-odds per metric of the model fitted on all patients, strongest first."""
    full = _model(settings.c, settings.seed).fit(x, y)
    return pd.DataFrame({"metric": features, "log_odds_per_sd": full[-1].coef_[0]}).sort_values(
        "log_odds_per_sd", key=np.abs, ascending=False
    )


def _small_cohort_notes(models: list[dict[str, Any]]) -> list[str]:
    """A note for each model judged on too few patients for its AUC to be stable; crossval is
    suggested only where the patients are an evaluation's held-out ones (it gives every patient
    a probability; the metrics model is cross-validated already)."""
    notes = []
    for m in models:
        if m["n_patients"] < 2 * MIN_PATIENTS_PER_CLASS:
            advice = (
                "use `sepsiscope crossval` for small cohorts"
                if "evaluation" in m["patients"]
                else "more patients are needed for a stable figure"
            )
            notes.append(
                f"{m['model']} on {m['patients']}: only {m['n_patients']} patients, an AUC that "
                f"one patient moves a lot; {advice}"
            )
    return notes


def _write_results(
    layout: MeasurementLayout,
    settings: InterpretSettings,
    models: list[dict[str, Any]],
    coefficients: pd.DataFrame,
    patients: pd.DataFrame,
    source: str | None,
    notes: list[str],
) -> dict[str, Any]:
    """Write the CSVs and interpret.json under MEASUREMENTS/interpret/; return the result."""
    out = layout.interpret
    auc_table = pd.DataFrame(models)
    files = {
        "auc": write_text(out.auc, auc_table.to_csv(index=False)),
        "coefficients": write_text(out.coefficients, coefficients.to_csv(index=False)),
        "patients": write_text(out.patients, patients.to_csv(index=False)),
    }
    result = {
        "models": models,
        "coefficients": coefficients.to_dict("records"),
        "network_source": source,
        "notes": notes,
        "files": {k: str(v) for k, v in files.items()},
    }
    write_json(out.result, {**result, "settings": settings.model_dump(), **provenance()})
    return result


def _combined_models(
    patients: pd.DataFrame,
    joined: pd.DataFrame,
    source: str,
    features: list[str],
    kw: dict[str, Any],
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The metrics model, the network and both, on the patients that have both (``joined``:
    ``patients`` with the network's ``probability``); ``patients`` with the network's and the
    combined probabilities added."""
    yj = joined["y"].to_numpy(int)
    xj = joined[features].to_numpy(float)
    logit = _logit(joined["probability"])
    joined["p_metrics_same"] = cross_validated_probability(xj, yj, **kw)
    joined["p_combined"] = cross_validated_probability(np.column_stack([xj, logit]), yj, **kw)
    common = f"measured and in {source}"
    models = [
        auc_row("metrics (logistic regression)", common, yj, joined["p_metrics_same"]),
        auc_row("network", common, yj, joined["probability"]),
        auc_row("network + metrics", common, yj, joined["p_combined"]),
    ]
    patients = patients.merge(
        joined[["patient_id", "probability", "p_combined"]], on="patient_id", how="left"
    )
    return models, patients


def _too_few_for_combined(
    joined: pd.DataFrame, source: str, run_dir: str | os.PathLike
) -> str | None:
    """Why the combined model cannot be fitted, as a note (the metrics model is still fitted on
    every measured patient), when fewer than 2 patients of a class are both measured and in
    ``source``; an InputError when none is (another manifest's patient_id values)."""
    if joined.empty:
        raise InputError(
            f"no measured patient is in {run_dir}'s {source} probabilities: check that the "
            "measurements and the run share patient_id values (the same manifest)"
        )
    per_class = np.bincount(joined["y"].to_numpy(int), minlength=2)
    if len(joined) >= 4 and per_class.min() >= 2:
        return None
    found = (
        f"network and combined models not fitted: only {len(joined)} patients ({per_class[1]} "
        f"septic, {per_class[0]} non-septic) are both measured and in {run_dir}'s {source} "
        "probabilities; the combined model needs at least 2 of each class"
    )
    if source.startswith("evaluation"):
        return f"{found}. The evaluation holds only the test patients: {CROSSVAL_HINT}"
    return f"{found}. Measure more of the run's patients"


def _logit(probability: pd.Series) -> pd.Series:
    """The network's probabilities as log-odds, clipped to stay finite at 0 and 1."""
    logit = np.log(np.clip(probability, 1e-6, 1 - 1e-6))
    logit -= np.log(np.clip(1 - probability, 1e-6, 1))
    return logit


def summary_text(result: dict[str, Any]) -> str:
    """The AUC table and the strongest metrics, for the terminal."""
    lines = [f"{'model':32s} {'patients':>8s}  AUC [95 % interval]"]
    for m in result["models"]:
        interval = f"[{m.get('auc_low', np.nan):.2f}, {m.get('auc_high', np.nan):.2f}]"
        lines.append(
            f"{m['model']:32s} {m['n_patients']:8d}  {m['auc']:.3f} {interval}  ({m['patients']})"
        )
    top = ", ".join(
        f"{c['metric']} {c['log_odds_per_sd']:+.2f}" for c in result["coefficients"][:3]
    )
    lines.append(f"strongest metrics (log-odds per SD of septic): {top}")
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)
