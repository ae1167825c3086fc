"""What each choice of the product's classifier adds: one cross-validation per choice left out.

Every row is a full ``sepsiscope crossval`` on the same store and folds (pooled out of fold, each
patient called at its own fold's threshold), with one setting changed from the product's:

- ``no time channels``: the study's literal input, one grey frame in three channels;
- ``no augmentation``: no flips, turns, blur, noise or gamma;
- ``no BN recalibration``: BatchNorm keeps the running averages of the augmented training batches;
- ``+ TTA``: the product's fold models again, each sample averaged over its 8 flips and turns
  (no training: the fold models are copied);
- ``calibrated``: the product's out-of-fold probabilities after each fold's temperature (fitted
  on that fold's validation patients): Brier score and ECE, the AUC does not change.

The difference to the product is paired (the same patients, resampled together). The ensemble's
gain cannot be measured out of fold (its members together saw every patient):
benchmarks/ensemble_vs_single.py measures it on new patients. Synthetic cohorts describe the
simulator, not patients.

    python benchmarks/ablation.py --store STORE --product CV --out ABL --epochs 15
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from sepsiscope._io import read_json
from sepsiscope.classifier import scores as M
from sepsiscope.classifier.crossval import CrossvalSettings, crossval
from sepsiscope.classifier.evaluate import EvaluateSettings
from sepsiscope.layout import RunLayout

VARIANTS = {
    "no time channels": {"input_mode": "single"},
    "no augmentation": {"augment": False},
    "no BN recalibration": {"bn_calibration_samples": 0},
}


def copy_fold_models(product: RunLayout, out: RunLayout) -> None:
    """The product's trained fold models (not their evaluations) into ``out``'s folds."""
    for fold in sorted(product.folds.glob("fold_*")):
        target = out.folds / fold.name / "classifier"
        if not target.exists():
            shutil.copytree(fold / "classifier", target, ignore=shutil.ignore_patterns("logs"))


def row(name: str, cv: RunLayout, product: RunLayout, minutes: float | None) -> dict:
    """Pooled out-of-fold figures of ``cv`` and its paired patient-AUC difference to ``product``."""
    pooled = read_json(cv.crossval_metrics)["pooled"]
    frames = pd.read_parquet(cv.oof_frames)
    base = pd.read_parquet(product.oof_frames)
    diff = M.paired_difference(frames[list(M.PREDICTION_COLUMNS)],
                               base[list(M.PREDICTION_COLUMNS)], threshold_a=0.5,
                               threshold_b=0.5, n_bootstrap=500)["patient"]["auc"]  # fmt: skip
    patient = pooled["patient"]
    return {
        "variant": name,
        "patient AUC": _ci(patient["auc"]),
        "video AUC": f"{pooled['video']['auc']['value']:.2f}",
        "frame AUC": f"{pooled['frame']['auc']['value']:.2f}",
        "sens. / spec.": f"{patient['sensitivity']['value']:.2f} / "
        f"{patient['specificity']['value']:.2f}",
        "patient Brier": f"{patient['brier']['value']:.3f}",
        "Δ patient AUC vs product [95 % CI]": "" if cv.root == product.root else _ci(diff, True),
        "minutes": "" if minutes is None else f"{minutes:.1f}",
    }


def calibrated_row(product: RunLayout) -> dict:
    """The product's calibration before and after temperature scaling, patient level."""
    patient = read_json(product.crossval_metrics)["calibration"]["patient"]
    return {
        "variant": "calibrated (temperature per fold)",
        "patient AUC": "unchanged",
        "patient Brier": f"{patient['brier_before']:.3f} → {patient['brier_after']:.3f}",
        "Δ patient AUC vs product [95 % CI]": (
            f"ECE {patient['ece_before']:.3f} → {patient['ece_after']:.3f}"
        ),
    }


def _ci(metric: dict, signed: bool = False) -> str:
    low, high = metric["interval"]
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return f"{fmt.format(metric['value'])} [{fmt.format(low)}, {fmt.format(high)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--product", type=Path, required=True, help="the product's crossval run")
    parser.add_argument("--out", type=Path, required=True, help="one crossval run per variant here")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (default all)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    product = RunLayout(args.product)
    evaluate = EvaluateSettings(n_bootstrap=500)
    rows = [row("the product", product, product, None)]
    for name, change in VARIANTS.items():
        if args.only is not None and name not in args.only:
            continue
        cv = RunLayout(args.out / name.replace(" ", "_"))
        start = time.perf_counter()
        settings = CrossvalSettings(train={"epochs": args.epochs, **change}, evaluate=evaluate)
        crossval(args.store, cv.root, settings, quiet=True)
        rows.append(row(name, cv, product, (time.perf_counter() - start) / 60))
        print(rows[-1], flush=True)
    tta = RunLayout(args.out / "tta")
    copy_fold_models(product, tta)
    start = time.perf_counter()
    settings = CrossvalSettings(train={"epochs": args.epochs},
                                evaluate=evaluate.model_copy(update={"tta": True}))  # fmt: skip
    crossval(args.store, tta.root, settings, quiet=True)
    rows.append(row("+ TTA (8 flips and turns)", tta, product, (time.perf_counter() - start) / 60))
    rows.append(calibrated_row(product))
    table = pd.DataFrame(rows).fillna("")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
