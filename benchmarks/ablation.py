"""What each choice of the product's classifier adds: one cross-validation per choice left out.

Every row is a full ``sepsiscope crossval`` on the same store and folds (pooled out of fold, each
patient called at its own fold's threshold), with the product's input mode (read from its folds)
and one setting changed:

- ``other input``: the other input mode: three time channels for a product on one grey frame
  (the study's literal input, the default since session 7), or the reverse;
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

The table (every row whose run exists under ABL, so variants can be trained in several goes)
also lists the ensemble against its single models on new patients (when
benchmarks/ensemble_vs_single.py was run on CV), the plain PyTorch loop (``--plain``: its
``--out`` parquet), crossval's logistic baseline and interpret's metrics and combined models
(``--interpret``: ``interpret --run CV``'s auc.csv). It is written to CV/crossval/study.csv,
which the report of CV shows in its cross-validation section.

    python benchmarks/ablation.py --store STORE --product CV --out ABL --epochs 15 \
        --plain PLAIN.parquet --interpret MEASUREMENTS/interpret/auc.csv
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

OTHER_INPUT = "other input"
VARIANTS = {  # besides OTHER_INPUT, the input mode the product was not trained on
    "no augmentation": {"augment": False},
    "no BN recalibration": {"bn_calibration_samples": 0},
}
TTA = "tta"
INPUTS = {
    "single": "one grey frame in three channels (the study's literal input)",
    "time": "three time channels (frames t, t+k, t+2k)",
}
LABELS = {
    "no augmentation": "no augmentation (no flips, turns, blur, noise or gamma)",
    "no BN recalibration": "no BN recalibration (running averages of augmented batches)",
    TTA: "+ TTA (each sample averaged over its 8 flips and turns; the product's folds)",
}
PLAIN_LOOP = "the plain PyTorch loop (benchmarks/plain_loop.py: fixed epochs, flips, threshold 0.5)"
ENSEMBLE_VS_SINGLE = "ensemble_vs_single.csv"


def product_input(product: RunLayout) -> str:
    """The input mode the product's fold models were trained with."""
    return read_json(product.fold(0).model_settings)["settings"]["input_mode"]


def _other(mode: str) -> str:
    return "time" if mode == "single" else "single"


def copy_fold_models(product: RunLayout, out: RunLayout) -> None:
    """The product's trained fold models (not their evaluations) into ``out``'s folds."""
    for fold in sorted(product.folds.glob("fold_*")):
        target = out.folds / fold.name / "classifier"
        if not target.exists():
            shutil.copytree(fold / "classifier", target, ignore=shutil.ignore_patterns("logs"))


def row(name: str, frames: pd.DataFrame, pooled: dict, base: pd.DataFrame | None) -> dict:
    """Pooled out-of-fold figures and, unless ``base`` is None (the product's own row), the paired
    patient-AUC difference to the product's out-of-fold ``base`` frames."""
    patient = pooled["patient"]
    diff = None
    if base is not None:
        diff = M.paired_difference(frames[list(M.PREDICTION_COLUMNS)],
                                   base[list(M.PREDICTION_COLUMNS)], threshold_a=0.5,
                                   threshold_b=0.5, n_bootstrap=500)["patient"]["auc"]  # fmt: skip
    return {
        "model": name,
        "evaluated on": f"{patient['n']['patients']} patients, out of fold",
        "patient AUC [95 % CI]": _ci(patient["auc"]),
        "video AUC": f"{pooled['video']['auc']['value']:.2f}",
        "frame AUC": f"{pooled['frame']['auc']['value']:.2f}",
        "patient sens. / spec.": f"{patient['sensitivity']['value']:.2f} / "
        f"{patient['specificity']['value']:.2f}",
        "patient Brier": f"{patient['brier']['value']:.3f}",
        "Δ patient AUC vs product [95 % CI]": "" if diff is None else _ci(diff, True),
    }


def crossval_row(name: str, cv: RunLayout, product: RunLayout) -> dict:
    """A finished ``crossval`` run's row (each patient at its own fold's threshold)."""
    base = None if cv.root == product.root else pd.read_parquet(product.oof_frames)
    pooled = read_json(cv.crossval_metrics)["pooled"]
    return row(name, pd.read_parquet(cv.oof_frames), pooled, base)


def plain_loop_row(oof_frames: Path, product: RunLayout) -> dict:
    """benchmarks/plain_loop.py's out-of-fold frames (``--out``), called at 0.5 as it does."""
    frames = pd.read_parquet(oof_frames)[list(M.PREDICTION_COLUMNS)]
    pooled, _ = M.evaluate_levels(frames, threshold=0.5, n_bootstrap=500)
    return row(PLAIN_LOOP, frames, pooled, pd.read_parquet(product.oof_frames))


def calibrated_row(product: RunLayout) -> dict:
    """The product's calibration before and after temperature scaling, patient level."""
    patient = read_json(product.crossval_metrics)["calibration"]["patient"]
    return {
        "model": "calibrated (temperature per fold, fitted on its validation patients)",
        "evaluated on": f"{patient['n']} patients, out of fold",
        "patient AUC [95 % CI]": "unchanged",
        "patient Brier": f"{patient['brier_before']:.3f} → {patient['brier_after']:.3f}",
        "Δ patient AUC vs product [95 % CI]": (
            f"ECE {patient['ece_before']:.3f} → {patient['ece_after']:.3f}"
        ),
    }


def baseline_row(product: RunLayout) -> dict:
    """crossval's logistic baseline on frame statistics: mean ± SD of its folds' patient AUC."""
    auc = read_json(product.crossval_metrics)["baseline_folds"]["patient"]["auc"]
    return {
        "model": "logistic baseline on frame statistics (mean ± SD over folds)",
        "evaluated on": f"{auc['n_folds']} folds",
        "patient AUC [95 % CI]": f"{auc['mean']:.2f} ± {auc['std']:.2f}",
    }


def interpret_rows(auc_csv: Path) -> list[dict]:
    """``interpret --run PRODUCT``'s metrics model and combined model (its auc.csv), on the
    patients that have both measurements and an out-of-fold probability."""
    table = pd.read_csv(auc_csv)
    table = table[table["patients"].str.contains("out-of-fold") & (table["model"] != "network")]
    return [
        {
            "model": f"{r.model} (interpret, cross-validated over patients)",
            "evaluated on": f"{r.n_patients} patients, out of fold",
            "patient AUC [95 % CI]": f"{r.auc:.2f} [{r.auc_low:.2f}, {r.auc_high:.2f}]",
        }
        for r in table.itertuples()
    ]


def ensemble_row(product: RunLayout) -> dict | None:
    """benchmarks/ensemble_vs_single.py's result on new patients, when it was run on ``product``."""
    path = product.crossval / ENSEMBLE_VS_SINGLE
    if not path.exists():
        return None
    table = pd.read_csv(path)
    singles = table.loc[table["model"].str.startswith("fold_"), "auc"]
    ensemble = float(table.loc[table["model"] == "ensemble", "auc"].iloc[0])
    return {
        "model": f"ensemble of the {len(singles)} fold models (its gain cannot be measured out "
        "of fold)",
        "evaluated on": f"{int(table['n_patients'].iloc[0])} new simulated patients",
        "patient AUC [95 % CI]": f"{ensemble:.2f}",
        "Δ patient AUC vs product [95 % CI]": f"single models {singles.mean():.2f} ± "
        f"{singles.std(ddof=1):.2f}; ensemble − single {ensemble - singles.mean():+.2f}"
        + "".join(f"; refit {auc:.2f}" for auc in table.loc[table["model"] == "refit", "auc"]),
    }


def study_table(
    product: RunLayout, out: Path, plain: Path | None, interpretation: Path | None
) -> pd.DataFrame:
    """One row per model and per choice left out, from every finished run there is."""
    mode = product_input(product)
    labels = {**LABELS, OTHER_INPUT: f"{INPUTS[_other(mode)]} instead"}
    product_label = (
        f"the network, single fold models (the product: {INPUTS[mode]}, augmentation, BN "
        "recalibration, selection)"
    )
    rows = [crossval_row(product_label, product, product)]
    for name in (OTHER_INPUT, *VARIANTS, TTA):
        cv = RunLayout(out / name.replace(" ", "_"))
        if cv.crossval_metrics.exists():
            rows.append(crossval_row(labels[name], cv, product))
    rows.append(calibrated_row(product))
    if (ensemble := ensemble_row(product)) is not None:
        rows.append(ensemble)
    if plain is not None:
        rows.append(plain_loop_row(plain, product))
    rows.append(baseline_row(product))
    if interpretation is not None:
        rows += interpret_rows(interpretation)
    return pd.DataFrame(rows).fillna("")


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
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="variants to train (default all; [] trains none, only tabulates)",
    )
    parser.add_argument("--plain", type=Path, help="benchmarks/plain_loop.py --out's parquet")
    parser.add_argument("--interpret", type=Path, help="interpret --run PRODUCT's auc.csv")
    args = parser.parse_args()  # fmt: skip
    logging.disable(logging.WARNING)
    product = RunLayout(args.product)
    evaluate = EvaluateSettings(n_bootstrap=500)
    mode = product_input(product)
    pinned = {"epochs": args.epochs, "input_mode": mode}  # the product's, whatever the default
    runs = {OTHER_INPUT: ({**pinned, "input_mode": _other(mode)}, evaluate)}
    runs |= {name: ({**pinned, **change}, evaluate) for name, change in VARIANTS.items()}
    runs[TTA] = (pinned, evaluate.model_copy(update={"tta": True}))
    for name, (train, evaluation) in runs.items():
        if args.only is not None and name not in args.only:
            continue
        cv = RunLayout(args.out / name.replace(" ", "_"))
        if name == TTA:
            copy_fold_models(product, cv)  # no training: the product's folds, scored with TTA
        start = time.perf_counter()
        crossval(args.store, cv.root, CrossvalSettings(train=train, evaluate=evaluation),
                 quiet=True)  # fmt: skip
        print(f"{name}: {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    table = study_table(product, args.out, args.plain, args.interpret)
    table.to_csv(product.study, index=False)
    print(f"written to {product.study} (the report of {product.root} shows it)")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
