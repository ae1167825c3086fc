"""Tiny stores, runs and features with known structure for the representation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sepsiscope._io import write_json, write_table
from sepsiscope.data.store import write_sample_array
from sepsiscope.layout import STORE_FORMAT_VERSION, RunLayout, StoreLayout

SPLITS = {"train": ["p0", "p1", "p2", "p3"], "val": ["p4", "p5"], "test": ["p6", "p7"]}


def vessel_frames(n: int, size: int, *, wide: bool, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3, size, size)`` uint8: dark straight vessels on a grey, noisy background."""
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        image = np.full((size, size), 170.0)
        for _ in range(3):
            angle, offset = rng.uniform(0, np.pi), rng.uniform(0, size)
            distance = np.abs(np.cos(angle) * xx + np.sin(angle) * yy - offset)
            image -= 80 * np.exp(-((distance / (4.0 if wide else 1.5)) ** 2))
        image += rng.normal(0, 4, image.shape)
        out[i] = np.clip(image, 0, 255).astype(np.uint8)[None]
    return out


def make_store(
    root: Path, *, size: int = 64, per_patient: int = 12, seed: int = 0, splits: dict | None = None
) -> Path:
    """Eight patients (even: non-septic, odd: septic with wider vessels), one video each."""
    rng = np.random.default_rng(seed)
    layout = StoreLayout(root)
    frames, videos = [], []
    for p in range(8):
        y = p % 2
        label = ("non-septic", "septic")[y]
        video_id = f"v{p}"
        write_sample_array(
            layout, video_id, vessel_frames(per_patient, size, wide=bool(y), rng=rng)
        )
        camera = "microscan" if p < 4 else "cytocam"
        videos.append(dict(video_id=video_id, patient_id=f"p{p}", label=label, y=y, camera=camera))
        for r in range(per_patient):
            frames.append(dict(video_id=video_id, row=r, patient_id=f"p{p}", label=label, y=y,
                               frame_index=r, usable=True))  # fmt: skip
    write_table(layout.frames, pd.DataFrame(frames))
    write_table(layout.videos, pd.DataFrame(videos))
    write_json(layout.splits, {**(splits or SPLITS), "folds": []})
    write_json(layout.meta, {"format_version": STORE_FORMAT_VERSION, "settings": {"size": size}})
    return root


def make_classifier_run(run_dir: Path, store_dir: Path, *, seed: int = 0) -> RunLayout:
    """A run holding a randomly initialised SepsisNet saved as training saves it."""
    import torch
    from safetensors.torch import save_file

    from sepsiscope.models.classifier import SepsisNet

    torch.manual_seed(seed)
    run = RunLayout(run_dir)
    run.classifier.mkdir(parents=True, exist_ok=True)
    save_file(SepsisNet().state_dict(), str(run.model))
    write_json(run.model_settings, {"settings": {"input_mode": "time"}, "store": str(store_dir)})
    return run


def structured_features(index: pd.DataFrame, *, by: str, seed: int = 0, dim: int = 128):
    """Features ``(n, dim)`` grouped by ``by`` ("label" or "patient_id"), tight groups."""
    rng = np.random.default_rng(seed)
    groups = sorted(index[by].astype(str).unique())
    centres = {g: rng.normal(0, 6, dim) for g in groups}
    base = np.stack([centres[g] for g in index[by].astype(str)])
    return (base + rng.normal(0, 0.5, base.shape)).astype(np.float32)
