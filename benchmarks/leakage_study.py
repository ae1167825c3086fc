"""Leakage study: how much a frame-level split inflates the classifier's figures.

On a SYNTHETIC cohort (simulate -> ingest), the same network is trained twice with the same settings
and seed: once with the patient split (every patient's frames on one side only) and once with
``split_by="frame"`` (frames of one patient on both sides, as a frame-level split does). Both are
judged with ``sepsiscope.classifier.evaluate`` (threshold on validation, patient-bootstrap
intervals), the logistic-regression baseline beside them. Prints a markdown table for
docs/evaluation.md. Synthetic data: the numbers show the size of the effect, not clinical accuracy.

    python benchmarks/leakage_study.py --patients 24 --epochs 4 --out /tmp/leakage
    python benchmarks/leakage_study.py --patients 32 --folds 4 --out /tmp/leakage_cv

With ``--folds K`` the patient side is patient-grouped K-fold cross-validation
(``sepsiscope.classifier.crossval``), so every patient is judged once, out of fold, instead of the
few patients of one test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

from sepsiscope.classifier.crossval import CrossvalSettings, crossval
from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate
from sepsiscope.classifier.train import TrainSettings, train
from sepsiscope.data.ingest import IngestSettings, ingest
from sepsiscope.layout import RunLayout
from sepsiscope.simulate import SimulateSettings, simulate_cohort


def _fmt(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    low, high = entry["interval"]
    return f"{entry['value']:.2f} [{low:.2f}, {high:.2f}]" if low is not None else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--videos", type=int, default=2, help="videos per patient")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=160)
    parser.add_argument("--size", type=int, default=96, help="sample side, px")
    parser.add_argument("--rate", type=float, default=4.0, help="samples per second")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--folds", type=int, default=0, help="K-fold CV on the patient side")
    parser.add_argument("--train", default="{}", help="extra TrainSettings as JSON")
    parser.add_argument("--out", type=Path, default=Path("leakage_study"))
    args = parser.parse_args()

    out = args.out
    if not (out / "store" / "store.json").exists():
        simulate_cohort(
            out / "cohort",
            SimulateSettings(patients=args.patients, videos_per_patient=args.videos,
                             seconds=args.seconds, width=args.width, height=args.height,
                             seed=args.seed),
            quiet=True,
        )  # fmt: skip
        ingest(
            out / "cohort" / "manifest.csv",
            out / "store",
            IngestSettings(
                size=args.size, rate_hz=args.rate, seed=args.seed, folds=max(args.folds, 2)
            ),
            quiet=True,
        )
    extra = json.loads(args.train)
    judge = EvaluateSettings(n_bootstrap=args.bootstrap, seed=args.seed)
    results = {}
    for split_by in ("patient", "frame"):
        run = out / f"run_{split_by}"
        started = time.perf_counter()
        if split_by == "patient" and args.folds:
            train_fields = {**extra, "epochs": args.epochs, "seed": args.seed}
            settings = CrossvalSettings(folds=args.folds, train=train_fields, evaluate=judge)
            summary = crossval(out / "store", run, settings, quiet=True)
            cv = json.loads(Path(summary["metrics"]).read_text())
            metrics = {**cv["pooled"], "baseline": cv["baseline_folds"], "folds": cv["folds"]}
            metrics["n"] = {
                "patients": summary["n_patients"],
                "videos": len(pd.read_parquet(RunLayout(run).oof_videos)),
                "frames": cv["pooled"]["frame"]["n"]["cases"],
            }
        else:
            settings = TrainSettings.build(
                **{**extra, "epochs": args.epochs, "split_by": split_by, "seed": args.seed}
            )
            train(out / "store", run, settings, quiet=True)
            summary = evaluate(run, judge, quiet=True)
            metrics = json.loads(Path(summary["metrics"]).read_text())
        results[split_by] = {"metrics": metrics, "seconds": time.perf_counter() - started}

    print(f"Synthetic cohort: {args.patients} patients x {args.videos} videos x {args.seconds} s, "
          f"{args.size} px samples, {args.epochs} epochs, seed {args.seed}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n")  # fmt: skip
    side = f"by patient ({args.folds}-fold CV, pooled out-of-fold)" if args.folds else "by patient"
    print("| split | level | network AUC [95 % CI] | network accuracy [95 % CI] | baseline AUC |")
    print("|---|---|---|---|---|")
    for split_by, r in results.items():
        m = r["metrics"]
        for level in ("frame", "video", "patient"):
            base = (m.get("baseline") or {}).get(level, {}).get("auc")
            if base and "mean" in base:  # cross-validation: mean and SD over folds
                base_text = f"{base['mean']:.2f} ± {base['std'] or 0:.2f} (folds)"
            else:
                base_text = _fmt(base)
            name = side if split_by == "patient" else "by frame (LEAKY)"
            print(
                f"| {name} | {level} | {_fmt(m[level]['auc'])} | "
                f"{_fmt(m[level]['accuracy'])} | {base_text} |"
            )
    if args.folds:
        folds = results["patient"]["metrics"]["folds"]
        print("\nPatient split, mean ± SD over folds: " + "; ".join(
            f"{level} AUC {folds[level]['auc']['mean']:.2f} ± {folds[level]['auc']['std']:.2f}"
            for level in ("frame", "video", "patient") if folds[level]["auc"]["mean"] is not None
        ))  # fmt: skip
    for split_by, r in results.items():
        n = r["metrics"]["n"]
        print(f"\nby {split_by}: evaluated on {n['patients']} patients, {n['videos']} videos, "
              f"{n['frames']} frames; {r['seconds']:.0f} s to train and evaluate")  # fmt: skip
    (out / "leakage_study.json").write_text(
        json.dumps({k: v["metrics"] for k, v in results.items()}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
