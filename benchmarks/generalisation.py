"""Classifiers trained on the project's simulator, applied to a cohort of the independent renderer.

A cross-validation on one simulator's cohort compares choices (time channels, augmentation, BN
recalibration) on the cameras and drawing style they were trained on; what a user needs is how
a choice holds on videos from elsewhere. This renders a cohort with benchmarks/second_renderer.py
(other cameras: 30-fps strobed MPEG-4 and 20-fps continuous-light PNG folders; other vessels,
cells, noise and motion; nothing shared with ``sepsiscope.simulate``), lets every run predict
every video (``sepsiscope predict``, fp32) and reports the patient AUC (patient probability =
mean of its videos) with a 95 % interval over stratified patient resamples, its difference to
the first run's with a paired patient bootstrap, and each run's sensitivity and specificity at
its own threshold. Synthetic data: not a clinical figure.

    python benchmarks/generalisation.py --cohort /tmp/second_cohort --patients 24 --seed 11 \
        --runs product=CV/ensemble "no augmentation"=ABL/no_augmentation/ensemble
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble_vs_single import video_predictions  # noqa: E402
from second_renderer import render_cohort  # noqa: E402

from sepsiscope.classifier.scores import auc_interval, paired_difference  # noqa: E402


def _ci(metric: dict, fmt: str = "{:.2f}") -> str:
    low, high = metric["interval"]
    return f"{fmt.format(metric['value'])} [{fmt.format(low)}, {fmt.format(high)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="NAME=RUN (a run or ensemble)")
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--videos-per-patient", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cohort", type=Path, required=True, help="rendered here (kept, reused)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    manifest = args.cohort / "manifest.csv"
    started = time.perf_counter()
    if not manifest.exists():
        render_cohort(args.cohort, patients=args.patients, seed=args.seed, seconds=args.seconds,
                      videos_per_patient=args.videos_per_patient, camera="mixed")  # fmt: skip
    rendered = time.perf_counter() - started
    rows, first = [], None
    for spec in args.runs:
        name, run = spec.split("=", 1)
        videos, threshold = video_predictions(Path(run), manifest, args.cohort / "predicted")
        patients = videos.groupby("patient_id").agg(y=("y", "first"), p=("probability", "mean"))
        auc = auc_interval(patients["y"].to_numpy(), patients["p"].to_numpy())
        called = patients["p"] >= threshold
        diff = "" if first is None else paired_difference(
            videos, first, threshold_a=threshold, threshold_b=threshold, n_bootstrap=1000
        )["patient"]["auc"]  # fmt: skip
        first = videos if first is None else first
        rows.append({
            "run": name,
            "patient AUC [95 % CI]": _ci(auc),
            f"Δ AUC vs {args.runs[0].split('=')[0]} (paired)": diff and _ci(diff, "{:+.2f}"),
            "sensitivity": f"{called[patients['y'] == 1].mean():.2f}",
            "specificity": f"{(~called)[patients['y'] == 0].mean():.2f}",
            "threshold": f"{threshold:.3f}",
            "patients": f"{int(patients['y'].sum())} + {int((1 - patients['y']).sum())}",
        })  # fmt: skip
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{len(pd.read_csv(manifest))} videos of the second renderer (seed {args.seed}, "
          f"rendered in {rendered:.0f} s); {platform.node()}\n")  # fmt: skip
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for r in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
