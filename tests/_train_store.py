"""A tiny frame store written directly (no video decoding), for the classifier tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sepsiscope._io import write_json, write_table
from sepsiscope.data.store import write_sample_array
from sepsiscope.layout import STORE_FORMAT_VERSION, StoreLayout


def septic_like_samples(n: int, size: int, septic: bool, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, size, size) uint8: dark vessel lines on a grey background; septic ones change
    between the time channels (stopped and restarting flow), non-septic ones are steady."""
    base = rng.normal(150, 12, (n, 1, size, size))
    yy = np.arange(size)[:, None]
    out = np.repeat(base, 3, axis=1)
    for i in range(n):
        for c in range(3):
            rows = (yy + 3 * i + (c * 2 if septic else 0)) % 8 < 2
            out[i, c][np.broadcast_to(rows, (size, size))] -= 60
    return np.clip(out, 0, 255).astype(np.uint8)


def write_tiny_store(
    root,
    *,
    per_class: int = 5,
    frames: int = 8,
    size: int = 32,
    splits: dict | None = None,
    only_label: int | None = None,
    seed: int = 0,
) -> StoreLayout:
    """``per_class`` septic and non-septic patients, one video of ``frames`` samples each.

    Default split per class: 2 train, 2 val, 1 test (for 5 per class); folds: 3.
    """
    rng = np.random.default_rng(seed)
    layout = StoreLayout(root)
    rows, videos, patients = [], [], {0: [], 1: []}
    labels = (only_label,) if only_label is not None else (0, 1)
    for y in labels:
        for j in range(per_class):
            patient, video = f"{'sep' if y else 'non'}{j}", f"{'sep' if y else 'non'}{j}_v0"
            patients[y].append(patient)
            write_sample_array(layout, video, septic_like_samples(frames, size, bool(y), rng))
            videos.append(dict(video_id=video, patient_id=patient, y=y))
            for r in range(frames):
                rows.append(dict(
                    video_id=video, row=r, patient_id=patient,
                    label="septic" if y else "non-septic", y=y, frame_index=r * 10,
                    time_s=r / 2, tile=0, um_per_px=1.0, usable=True,
                ))  # fmt: skip
    write_table(layout.frames, pd.DataFrame(rows))
    write_table(layout.videos, pd.DataFrame(videos))
    if splits is None:
        both = [patients[y] for y in labels]
        splits = {
            "train": [p for ps in both for p in ps[:2]] + [p for ps in both for p in ps[5:]],
            "val": [p for ps in both for p in ps[2:4]],
            "test": [p for ps in both for p in ps[4:5]],
            "folds": [[p for ps in both for p in ps[k::3]] for k in range(3)],
        }
    write_json(layout.splits, splits)
    write_json(layout.meta, {"format_version": STORE_FORMAT_VERSION, "settings": {"size": size}})
    return layout
