"""Leakage study: how much a frame-level split inflates the classifier's figures.

On a SYNTHETIC cohort (simulate -> ingest), the same network is trained twice with the same
settings and seed: once with the patient split (every patient's frames on one side only) and
once with ``split_by="frame"`` (frames of one patient on both sides, as a frame-level split
does). Both are judged with ``sepsiscope.evaluate`` (threshold on validation, patient-bootstrap
intervals), the logistic-regression baseline beside them. Prints a markdown table for
docs/evaluation.md. Synthetic data: the numbers show the size of the effect, not clinical accuracy.

    python benchmarks/leakage_study.py --patients 24 --epochs 4 --out /tmp/leakage
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from sepsiscope.evaluate import EvaluateSettings, evaluate
from sepsiscope.ingest import IngestSettings, ingest
from sepsiscope.simulate import SimulateSettings, simulate_cohort
from sepsiscope.train import TrainSettings, train


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
            IngestSettings(size=args.size, rate_hz=args.rate, seed=args.seed),
            quiet=True,
        )
    results = {}
    for split_by in ("patient", "frame"):
        run = out / f"run_{split_by}"
        started = time.perf_counter()
        settings = TrainSettings.build(
            **{**json.loads(args.train), "epochs": args.epochs, "split_by": split_by,
               "seed": args.seed}
        )  # fmt: skip
        train(out / "store", run, settings, quiet=True)
        summary = evaluate(run, EvaluateSettings(n_bootstrap=args.bootstrap, seed=args.seed),
                           quiet=True)  # fmt: skip
        metrics = json.loads(Path(summary["metrics"]).read_text())
        results[split_by] = {"metrics": metrics, "seconds": time.perf_counter() - started}

    print(f"Synthetic cohort: {args.patients} patients x {args.videos} videos x {args.seconds} s, "
          f"{args.size} px samples, {args.epochs} epochs, seed {args.seed}; "
          f"{platform.machine()}, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| split | level | network AUC [95 % CI] | network accuracy | baseline AUC |")
    print("|---|---|---|---|---|")
    for split_by, r in results.items():
        m = r["metrics"]
        for level in ("frame", "video", "patient"):
            base = m.get("baseline") or {}
            print(
                f"| by {split_by} | {level} | {_fmt(m[level]['auc'])} | "
                f"{_fmt(m[level]['accuracy'])} | {_fmt(base.get(level, {}).get('auc'))} |"
            )
    for split_by, r in results.items():
        n = r["metrics"]["n"]
        print(f"\nby {split_by}: evaluated on {n['patients']} patients, {n['videos']} videos, "
              f"{n['frames']} frames; {r['seconds']:.0f} s to train and evaluate")  # fmt: skip
    (out / "leakage_study.json").write_text(
        json.dumps({k: v["metrics"] for k, v in results.items()}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
