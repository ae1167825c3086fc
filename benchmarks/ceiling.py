"""How well can anything tell the simulator's septic patients apart? Its own truth, scored.

The simulator draws each septic patient's severity from Beta(1.1, 2.6), with much mass near 0
(some septic patients look nearly normal, as in the clinic). No classifier of the videos can do
better than the videos' own ground truth allows, so this scores the truth itself, without
rendering a frame (``simulate_truth``): the patient AUC of each true metric (mean over the
patient's videos; lower = septic) and of a logistic regression on all of them (5-fold, out of
fold), on a large cohort and over many cohorts of the size the study uses (the spread a
40-patient figure has). Synthetic: describes the simulator, not patients.

    python benchmarks/ceiling.py --patients 400 --cohort-size 40 --draws 200
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sepsiscope.simulate import SimulateSettings, simulate_truth

METRICS = ("mfi", "mean_velocity_um_per_s", "ppv_percent", "pvd_mm_per_mm2",
           "tvd_small_mm_per_mm2", "tvd_mm_per_mm2")  # fmt: skip


def patient_truth(patients: int, videos: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Per patient: the mean of each true metric over its videos, and y (1 septic)."""
    truth = simulate_truth(SimulateSettings(patients=patients, videos_per_patient=videos,
                                            camera="mixed", seed=seed))  # fmt: skip
    truth["mean_velocity_um_per_s"] = truth["mean_velocity_um_per_s"].fillna(0.0)  # none flows
    grouped = truth.groupby("patient_id")
    return grouped[list(METRICS)].mean(), (grouped["label"].first() == "septic").to_numpy(int)


def combined_oof(x: pd.DataFrame, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of a logistic regression on every true metric."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(model, x.to_numpy(), y, cv=folds, method="predict_proba")[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--videos-per-patient", type=int, default=2)
    parser.add_argument("--cohort-size", type=int, default=40)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--goal", type=float, default=0.96, help="issue 15's patient AUC goal")
    args = parser.parse_args()
    x, y = patient_truth(args.patients, args.videos_per_patient, args.seed)
    print(f"{args.patients} simulated patients ({y.sum()} septic), "
          f"{args.videos_per_patient} videos each, mixed cameras, seed {args.seed}\n")  # fmt: skip
    print(f"| true metric (patient mean) | patient AUC, {args.patients} patients | "
          f"median [5th, 95th percentile] over {args.draws} cohorts of {args.cohort_size} | "
          f"cohorts with AUC >= {args.goal} |")  # fmt: skip
    print("|---|---:|---|---:|")
    rng = np.random.default_rng(args.seed)
    draws = [rng.permutation(len(y))[: args.cohort_size] for _ in range(args.draws)]
    draws = [d for d in draws if 0 < y[d].sum() < len(d)]
    columns = {name: -x[name].to_numpy() for name in METRICS}
    columns["logistic on all (5-fold, out of fold)"] = combined_oof(x, y, args.seed)
    for name, score in columns.items():
        aucs = np.array([roc_auc_score(y[d], score[d]) for d in draws])
        spread = np.percentile(aucs, [50, 5, 95])
        print(f"| {name} | {roc_auc_score(y, score):.3f} | "
              f"{spread[0]:.2f} [{spread[1]:.2f}, {spread[2]:.2f}] | "
              f"{np.mean(aucs >= args.goal):.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
