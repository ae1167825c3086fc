"""Training data: frame tables of a split, held in memory or read lazily from the store.

A split whose samples fit in ``in_memory_limit_gb`` is read once into one uint8 tensor and batches
are cut from it by index (no per-sample Python work, no workers). A larger one is read lazily, one
batch per DataLoader item, by worker processes that each open the store themselves. The batch order
is a function of (seed, epoch) only, so a run is reproducible and a run resumed mid-epoch skips
exactly the batches it had already trained on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sepsiscope._progress import track
from sepsiscope.data.store import FrameStore


class EpochBatches(Sampler):
    """Index arrays of one epoch: shuffled by (seed, epoch), optionally capped, sharded by rank.

    ``skip`` batches are left out of the next epoch iterated (a resumed, half-done epoch).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        max_items: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.max_items, self.rank, self.world_size = max_items, rank, world_size
        self.drop_last, self.epoch, self.skip = drop_last, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.max_items is not None:
            order = order[: self.max_items]
        per_rank = len(order) // self.world_size if self.world_size > 1 else len(order)
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]  # equal counts: DDP needs

    def __len__(self) -> int:
        m = len(self._indices())
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def __iter__(self):
        order = self._indices()
        skip, self.skip = self.skip, 0
        for b in range(skip, len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]


class MemorySamples(Dataset):
    """Samples held in memory; item = a whole batch ``(x uint8, y float, video index int)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, video: torch.Tensor) -> None:
        self.x, self.y, self.video = x, y, video

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        i = torch.as_tensor(idx, dtype=torch.long)
        return self.x[i], self.y[i], self.video[i]


class LazySamples(Dataset):
    """Samples read from the store batch by batch (for splits larger than memory)."""

    def __init__(self, store: FrameStore, table: pd.DataFrame, video: np.ndarray) -> None:
        self.store, self.table, self.video = store, table.reset_index(drop=True), video
        self.y = torch.tensor(table["y"].to_numpy(np.float32))

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(self.store.read_table(self.table.iloc[idx]))
        return x, self.y[idx], torch.as_tensor(self.video[idx], dtype=torch.long)


def read_samples(store: FrameStore, table: pd.DataFrame, *, quiet: bool = True) -> torch.Tensor:
    """All samples of ``table`` as one ``(n, 3, S, S)`` uint8 tensor, read video by video."""
    out = torch.empty((len(table), 3, store.size, store.size), dtype=torch.uint8)
    groups = table.groupby("video_id", sort=False).indices
    rows = table["row"].to_numpy()
    for video_id, idx in track(list(groups.items()), description="loading frames", quiet=quiet):
        out[torch.as_tensor(idx)] = torch.from_numpy(store.read(str(video_id), rows[idx]))
    return out


def spread_rows(table: pd.DataFrame, max_rows: int, seed: int) -> np.ndarray:
    """Positions (sorted) of up to ``max_rows`` rows of a frame table, spread over its sources.

    Rows are dealt in turns: one per patient per turn, a patient's turns going round its videos,
    and a video's rows taken in a random order seeded by ``seed``; so a cap gives every patient
    and video about the same share instead of favouring long videos.
    """
    n = len(table)
    if n <= max_rows:
        return np.arange(n)
    rows = pd.DataFrame({
        "patient": table["patient_id"].astype(str).to_numpy(),
        "video": table["video_id"].astype(str).to_numpy(),
        "draw": np.random.default_rng(seed).random(n),
    })  # fmt: skip
    rows["in_video"] = rows.sort_values("draw").groupby("video").cumcount()
    by_turn = rows.sort_values(["in_video", "video"], kind="stable")
    rows["in_patient"] = by_turn.groupby("patient").cumcount()
    order = rows.sort_values(["in_patient", "patient"], kind="stable").index.to_numpy()
    return np.sort(order[:max_rows])


class StoreData(L.LightningDataModule):
    """Train and validation loaders over frame tables of one store.

    ``train_table`` / ``val_table`` are store frame rows. Batches carry each sample's video index
    (``video_index``); ``video_patient[i]`` is video i's patient, so that validation scores can be
    averaged per video and then per patient, as ``sepsiscope evaluate`` does.
    """

    def __init__(
        self,
        store: FrameStore,
        train_table: pd.DataFrame,
        val_table: pd.DataFrame,
        *,
        batch_size: int,
        seed: int,
        max_frames_per_epoch: int | None,
        in_memory_limit_gb: float,
        num_workers: int | None,
        quiet: bool,
    ) -> None:
        super().__init__()
        self.store, self.train_table, self.val_table = store, train_table, val_table
        self.batch_size, self.seed, self.max_frames = batch_size, seed, max_frames_per_epoch
        self.quiet = quiet
        both = pd.concat([train_table, val_table])[["video_id", "patient_id"]].drop_duplicates()
        both = both.sort_values("video_id").reset_index(drop=True)
        self.video_index = {v: i for i, v in enumerate(both["video_id"])}
        self.video_patient = both["patient_id"].astype(str).to_numpy()
        n_bytes = (len(train_table) + len(val_table)) * 3 * store.size**2
        self.in_memory = n_bytes <= in_memory_limit_gb * 1e9
        cpus = os.cpu_count() or 1
        self.num_workers = 0 if self.in_memory else (num_workers if num_workers is not None
                                                      else max(1, min(4, cpus - 1)))  # fmt: skip
        self._skip = 0
        self._datasets: dict[str, Dataset] = {}

    def _dataset(self, name: str) -> Dataset:
        if name not in self._datasets:
            table = self.train_table if name == "train" else self.val_table
            video = table["video_id"].map(self.video_index).to_numpy()
            if self.in_memory:
                x = read_samples(self.store, table, quiet=self.quiet)
                y = torch.tensor(table["y"].to_numpy(np.float32))
                self._datasets[name] = MemorySamples(x, y, torch.tensor(video))
            else:
                self._datasets[name] = LazySamples(self.store, table, video)
        return self._datasets[name]

    def _loader(self, dataset: Dataset, sampler: EpochBatches) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            dataset, batch_size=None, sampler=sampler, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = EpochBatches(
            len(self.train_table), self.batch_size, seed=self.seed, shuffle=True,
            max_items=self.max_frames, rank=rank, world_size=world, drop_last=world > 1,
        )  # fmt: skip
        sampler.skip, self._skip = self._skip, 0
        return self._loader(self._dataset("train"), sampler)

    def calibration_batches(self, max_samples: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Unaugmented train samples for BatchNorm statistics, ``(b, 3, S, S)`` uint8 batches.

        Up to ``max_samples`` samples spread over patients and videos (:func:`spread_rows`,
        seeded by the run's seed: every epoch and every DDP rank uses the same ones), in batches
        of near-equal size (a cumulative BatchNorm average weighs every batch alike).
        """
        rows = spread_rows(self.train_table, max_samples, self.seed)
        dataset = self._dataset("train")
        for part in np.array_split(rows, max(1, -(-len(rows) // batch_size))):
            yield dataset[part][0]

    def val_dataloader(self) -> DataLoader:
        # Every rank validates on all validation frames: the patient AUC needs them all, and the
        # validation set is small next to the training set.
        sampler = EpochBatches(len(self.val_table), self.batch_size * 2, shuffle=False)
        return self._loader(self._dataset("val"), sampler)

    def state_dict(self) -> dict[str, Any]:
        """Batches already trained in the current epoch, for a mid-epoch resume."""
        trainer = self.trainer
        if trainer is None:
            return {"batches_done": 0}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        total = trainer.num_training_batches
        return {"batches_done": int(done) if done < total else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._skip = int(state.get("batches_done", 0))
