"""The simplest honest alternative: a plain PyTorch loop on the same store and folds.

The same 10-layer network (SepsisNet, random initialisation), the time channels, Adam at 1e-3,
random flips, a fixed number of epochs and no model selection, no validation split, no
threshold tuning beyond 0.5, no calibration, no Lightning. Each fold's model is trained on the
other folds' patients and scores its own; the pooled out-of-fold figures come from the same
function ``crossval`` uses, so the two compare like for like (docs/evaluation.md).

    python benchmarks/plain_loop.py --store sepsiscope-demo/store --epochs 15
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sepsiscope.classifier import scores as M
from sepsiscope.data.store import FrameStore
from sepsiscope.models.classifier import SepsisNet, prepare_batch


def _samples(store: FrameStore, patients: set[str]) -> tuple[pd.DataFrame, np.ndarray]:
    table = store.samples()
    table = table[table["patient_id"].astype(str).isin(patients)].reset_index(drop=True)
    return table, store.read_table(table)


def train_fold(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> SepsisNet:
    """Adam, BCE, batches of 32, random horizontal and vertical flips; the last epoch's model."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SepsisNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    targets = torch.from_numpy(y.astype(np.float32))
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            images = torch.from_numpy(x[batch])
            if rng.random() < 0.5:
                images = images.flip(-1)
            if rng.random() < 0.5:
                images = images.flip(-2)
            logits = model(prepare_batch(images, "time"))
            loss = loss_fn(logits, targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


@torch.no_grad()
def predict(model: SepsisNet, x: np.ndarray) -> np.ndarray:
    out = [torch.sigmoid(model(prepare_batch(torch.from_numpy(x[i : i + 64]), "time")))
           for i in range(0, len(x), 64)]  # fmt: skip
    return torch.cat(out).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the out-of-fold frames here (parquet)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    store = FrameStore(args.store)
    folds = [set(map(str, f)) for f in store.splits["folds"]]
    everyone = set().union(*folds)
    started = time.perf_counter()
    oof = []
    for i, held_out in enumerate(folds):
        train_table, x_train = _samples(store, everyone - held_out)
        model = train_fold(x_train, train_table["y"].to_numpy(), epochs=args.epochs,
                           seed=args.seed + i)  # fmt: skip
        test_table, x_test = _samples(store, held_out)
        oof.append(test_table.assign(probability=predict(model, x_test), fold=i))
        print(f"fold {i}: {len(train_table)} training samples, {len(test_table)} held out, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    frames = pd.concat(oof, ignore_index=True)
    if args.out:
        frames.to_parquet(args.out)
    pooled, _ = M.evaluate_levels(frames[list(M.PREDICTION_COLUMNS)], threshold=0.5,
                                  n_bootstrap=args.bootstrap, seed=args.seed)  # fmt: skip
    summary = {level: {k: pooled[level][k] for k in ("auc", "sensitivity", "specificity")}
               for level in ("frame", "video", "patient")}  # fmt: skip
    print(json.dumps({"machine": platform.node(), "epochs": args.epochs, "folds": len(folds),
                      "seconds": round(time.perf_counter() - started), "pooled": summary},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
