"""Compare the 'time' input mode (frames t, t+k, t+2k) with the study's 'single' grey frame.

Trains the classifier on one frame store in both modes, with the same seeds, settings and patient
split, and prints a markdown table of the validation patients' AUC (best epoch, the model
selection figure) and the held-out test patients' AUC of the selected model. Synthetic data:
these are figures about the simulator, not clinical figures.

    python benchmarks/compare_input_modes.py STORE OUT [--epochs 8] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from sklearn.metrics import roc_auc_score

from sepsiscope.classifier.inference import load_classifier, predict_store
from sepsiscope.classifier.train import TrainSettings, train
from sepsiscope.data.store import FrameStore


def patient_auc(table) -> float:
    by_patient = table.groupby("patient_id")[["probability", "y"]].mean()
    return float(roc_auc_score(by_patient["y"], by_patient["probability"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    store = FrameStore(args.store)
    test = store.samples("test")
    rows = []
    for mode in ("time", "single"):
        for seed in args.seeds:
            run = args.out / f"{mode}_seed{seed}"
            settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                                     input_mode=mode, patience=args.epochs)  # fmt: skip
            result = train(args.store, run, settings, quiet=True, overwrite=True)
            model, saved = load_classifier(run)
            test_auc = patient_auc(predict_store(model, saved, store, test)) if len(test) else None
            rows.append((mode, seed, result["best_val_patient_auc"], result["best_epoch"],
                         test_auc))  # fmt: skip
            print(f"# {mode} seed {seed}: {result}", flush=True)
    videos = store.videos
    print(f"\nStore {args.store}: {videos['patient_id'].nunique()} patients, {len(videos)} videos, "
          f"{len(store.samples(None))} usable {store.size}x{store.size} samples; "
          f"{args.epochs} epochs, batch {args.batch_size}\n")  # fmt: skip
    print("| input mode | seed | best val patient AUC | best epoch | test patient AUC |")
    print("|---|---:|---:|---:|---:|")
    for mode, seed, val_auc, epoch, test_auc in rows:
        test_text = "-" if test_auc is None else f"{test_auc:.3f}"
        print(f"| {mode} | {seed} | {val_auc:.3f} | {epoch} | {test_text} |")
    for mode in ("time", "single"):
        vals = [r[2] for r in rows if r[0] == mode]
        tests = [r[4] for r in rows if r[0] == mode and r[4] is not None]
        mean_test = f"{statistics.mean(tests):.3f}" if tests else "-"
        print(f"| {mode} | mean | {statistics.mean(vals):.3f} | | {mean_test} |")


if __name__ == "__main__":
    main()
