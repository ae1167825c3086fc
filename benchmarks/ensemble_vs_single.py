"""crossval's ensemble against its single fold models (and its refit) on patients none saw.

A new cohort is simulated with another seed (the same simulator and cameras as the training
cohort, so this measures the ensemble's gain, not generalisation to other data), and every model
predicts every video: the ensemble (RUN/ensemble, at its out-of-fold threshold), the model refit
on every patient (RUN/refit, from ``crossval --refit``, same threshold) when there is one, and
each fold model (at its own validation threshold). Patient probability = mean of its videos.
The table goes to CV/crossval/ensemble_vs_single.csv too, for benchmarks/ablation.py's study table.

    python benchmarks/ensemble_vs_single.py --cv CV_RUN --patients 20 --seed 1
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from sepsiscope.apply.predict import PredictSettings, predict
from sepsiscope.layout import RunLayout
from sepsiscope.simulate import SimulateSettings, simulate_cohort


def video_predictions(
    run: Path, manifest: Path, out: Path | None = None
) -> tuple[pd.DataFrame, float]:
    """Every video's probability as a prediction table (one row per video: patient_id, video_id,
    frame_index 0, y, probability) and the run's threshold; ``out`` as predict's (default
    RUN/predictions)."""
    result = predict(run, manifest, PredictSettings(backend="fp32", out=out), quiet=True)
    videos = pd.DataFrame(result["videos"])
    table = pd.DataFrame({
        "patient_id": videos["patient_id"].astype(str), "video_id": videos["name"].astype(str),
        "frame_index": 0, "y": (videos["label"] == "septic").astype(int),
        "probability": videos["probability"].astype(float),
    })  # fmt: skip
    return table, float(result["videos"][0]["threshold"])


def patient_table(run: Path, manifest: Path) -> tuple[pd.DataFrame, float]:
    """Per patient: the mean of its videos' probabilities and its label (y); the threshold."""
    videos, threshold = video_predictions(run, manifest)
    patients = videos.groupby("patient_id").agg(
        probability=("probability", "mean"), y=("y", "first")
    )
    return patients, threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv", type=Path, required=True, help="a crossval run with ensemble/")
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cv = RunLayout(args.cv)
    folds = sorted(p for p in cv.folds.glob("fold_*") if (p / "classifier").is_dir())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = SimulateSettings(patients=args.patients, videos_per_patient=2, seconds=3.0,
                                    camera="mixed", seed=args.seed)  # fmt: skip
        simulate_cohort(Path(tmp) / "cohort", settings, quiet=True)
        manifest = Path(tmp) / "cohort" / "manifest.csv"
        applied = [("ensemble", cv.ensemble.root)]
        if cv.refit.model.exists():
            applied.append(("refit", cv.refit.root))
        for name, run in applied + [(f.name, f) for f in folds]:
            patients, threshold = patient_table(run, manifest)
            called = patients["probability"] >= threshold
            rows.append({
                "model": name, "auc": roc_auc_score(patients["y"], patients["probability"]),
                "accuracy": float((called == patients["y"].astype(bool)).mean()),
                "sensitivity": float(called[patients["y"] == 1].mean()),
                "specificity": float((~called)[patients["y"] == 0].mean()),
                "threshold": threshold,
            })  # fmt: skip
    table = pd.DataFrame(rows).assign(n_patients=args.patients, seed=args.seed)
    table.to_csv(
        cv.crossval / "ensemble_vs_single.csv", index=False
    )  # ablation.py's table reads it
    singles = table[table["model"].str.startswith("fold_")]
    print(f"{args.patients} new simulated patients (seed {args.seed}, 2 videos each, mixed "
          f"cameras); {platform.node()}\n")  # fmt: skip
    print("| model | patient AUC | accuracy | sensitivity | specificity | threshold |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in table.itertuples():
        print(f"| {r.model} | {r.auc:.3f} | {r.accuracy:.2f} | {r.sensitivity:.2f} | "
              f"{r.specificity:.2f} | {r.threshold:.3f} |")  # fmt: skip
    mean = singles[["accuracy", "sensitivity", "specificity"]].mean()
    print(f"| single models, mean ± SD | {singles['auc'].mean():.3f} ± "
          f"{np.std(singles['auc'], ddof=1):.3f} | {mean['accuracy']:.2f} | "
          f"{mean['sensitivity']:.2f} | {mean['specificity']:.2f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
