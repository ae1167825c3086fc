"""Does the selection rule pick a good epoch? The product's training, scored out of fold per epoch.

For each of the store's folds the product's training (``SepsisModule``: time channels,
augmentation, BN recalibration before each validation, cosine schedule) runs for ``--epochs``
epochs with early stopping off. After every epoch this study, and only this study, also scores
the fold's held-out patients: the training never sees those scores. Then, pooled out of fold
(patient = mean of its videos' mean frame probability):

- ``fixed e``: every fold's model after epoch e (what a fixed epoch count gives);
- ``selection + early stopping``: per fold the epoch ``train`` would have kept (best validation
  selection score, stopping after ``patience`` epochs without a better one), as ``crossval`` runs;
- ``selection, no early stopping``: the best validation score over all epochs.

It also prints the epoch count ``crossval --refit`` would choose (the folds' median selected
epoch + 1). Synthetic cohorts: the figures describe the simulator, not patients.

    python benchmarks/model_selection.py --store sepsiscope-demo/store --epochs 15
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd

from sepsiscope.classifier import scores as M
from sepsiscope.classifier._train_data import StoreData
from sepsiscope.classifier.inference import infer
from sepsiscope.classifier.train import SELECTION, SepsisModule, TrainSettings
from sepsiscope.data.splits import split_tables
from sepsiscope.data.store import FrameStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_predict import _machine  # noqa: E402


class ScoreHeldOut(L.Callback):
    """After each validation (BatchNorm just recalibrated), score the held-out test frames."""

    def __init__(self, samples: np.ndarray, input_mode: str) -> None:
        self.samples, self.input_mode = samples, input_mode
        self.epochs: list[dict] = []

    def on_validation_end(self, trainer: L.Trainer, module: SepsisModule) -> None:
        # after the module's own epoch-end hook, which logs the selection score
        probability = infer(module.model, self.samples, input_mode=self.input_mode)
        self.epochs.append({
            "epoch": trainer.current_epoch,
            "selection": float(trainer.callback_metrics[SELECTION]),
            "probability": probability,
        })  # fmt: skip


def run_fold(store: FrameStore, fold: int, settings: TrainSettings) -> pd.DataFrame:
    """One row per (epoch, test frame): the fold's held-out probabilities and the val score."""
    tables = split_tables(store, fold=fold, seed=settings.seed)
    test = tables["test"].reset_index(drop=True)
    train_t = tables["train"]
    n_pos = int(train_t["y"].sum())
    L.seed_everything(settings.seed, workers=True, verbose=False)
    module = SepsisModule(settings, (len(train_t) - n_pos) / max(n_pos, 1))
    data = StoreData(store, train_t, tables["val"], batch_size=settings.batch_size,
                     seed=settings.seed, max_frames_per_epoch=None, in_memory_limit_gb=2.0,
                     num_workers=None, quiet=True)  # fmt: skip
    scorer = ScoreHeldOut(store.read_table(test), settings.input_mode)
    trainer = L.Trainer(max_epochs=settings.epochs, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        precision="bf16-mixed" if _bf16() else "32-true",
                        callbacks=[scorer])  # fmt: skip
    trainer.fit(module, datamodule=data)
    rows = []
    for record in scorer.epochs:
        rows.append(test[list(M.PREDICTION_COLUMNS[:-1])].assign(
            epoch=record["epoch"], selection=record["selection"], fold=fold,
            probability=record["probability"]))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def _bf16() -> bool:
    from sepsiscope.models.precision import use_bf16

    return use_bf16("auto", "cpu")


def selected_epoch(curve: pd.Series, patience: int | None) -> int:
    """The epoch train keeps: best selection score, stopping after ``patience`` without a gain."""
    best_epoch, best, waited = int(curve.index[0]), -np.inf, 0
    for epoch, score in curve.items():
        if score > best:
            best_epoch, best, waited = int(epoch), score, 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    return best_epoch


def pooled_patient_auc(frames: pd.DataFrame) -> tuple[float, float, float]:
    """Pooled out-of-fold patient AUC and a stratified patient-bootstrap 95 % interval."""
    patients = M.level_tables(frames[list(M.PREDICTION_COLUMNS)])["patient"]
    auc = M.auc_interval(patients["y"], patients["probability"], n_bootstrap=500)
    return auc["value"], *auc["interval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--patience", type=int, default=TrainSettings().patience)
    parser.add_argument("--out", type=Path, default=None, help="keep the per-epoch table here")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    store = FrameStore(args.store)
    settings = TrainSettings(epochs=args.epochs)
    start = time.perf_counter()
    frames = pd.concat([run_fold(store, i, settings) for i in range(len(store.splits["folds"]))])
    minutes = (time.perf_counter() - start) / 60
    if args.out:
        frames.to_parquet(args.out)

    curves = frames.groupby(["fold", "epoch"])["selection"].first()
    rows = []
    for epoch in sorted(frames["epoch"].unique()):
        auc = pooled_patient_auc(frames[frames["epoch"] == epoch])
        rows.append({"rule": f"fixed {epoch + 1} epochs", "epochs": str(epoch + 1), "auc": auc})
    for name, patience in (("selection + early stopping (train's rule)", args.patience),
                           ("selection, no early stopping", None)):  # fmt: skip
        chosen = {f: selected_epoch(curves.loc[f], patience) for f in curves.index.levels[0]}
        picked = frames[frames["epoch"] == frames["fold"].map(chosen)]
        epochs = ", ".join(str(chosen[f] + 1) for f in sorted(chosen))
        rows.append({"rule": name, "epochs": epochs, "auc": pooled_patient_auc(picked)})
        if patience is not None:
            refit = int(np.median([e + 1 for e in chosen.values()]))
    print(f"store {args.store}: {store.samples()['patient_id'].nunique()} patients, "
          f"{len(store.splits['folds'])} folds; {_machine('cpu')}, {platform.node()}, "
          f"{minutes:.1f} min")  # fmt: skip
    print("| rule | epochs kept (per fold) | pooled out-of-fold patient AUC [95 % CI] |")
    print("|---|---|---|")
    for row in rows:
        auc, low, high = row["auc"]
        print(f"| {row['rule']} | {row['epochs']} | {auc:.2f} [{low:.2f}, {high:.2f}] |")
    print(f"crossval --refit would train for {refit} epochs (median selected epoch)")
    print(json.dumps({r["rule"]: round(r["auc"][0], 3) for r in rows}))


if __name__ == "__main__":
    main()
