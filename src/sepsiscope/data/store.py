"""The frame store: what ingest writes and every training stage reads.

A store is one folder (names in :mod:`sepsiscope.layout`). Each video's samples live in their own
zarr array ``frames.zarr/<video_id>`` of shape ``(n, 3, size, size)``, uint8, one chunk per sample
(grouped into shard files) so that DataLoader workers read single samples lazily. The three
channels are the grey frame at times ``t``, ``t + k`` and ``t + 2k`` (``k`` = the store's
``channel_offset_s``, about 150 ms): the "time" input mode feeds them as they are, the study's
"single" mode repeats channel 0 three times. An array is written under a temporary name and renamed
when complete, so a killed ingest never leaves a half-written video behind.

Tables (Parquet):

``videos``
    video_id, patient_id, label, y, site, camera, path, um_per_px, fps, width, height,
    n_frames, duration_s, n_samples, quality columns, usable, split
``frames``
    video_id, row (index into the video's array), patient_id, label, y, frame_index, time_s,
    tile, um_per_px (after resizing), quality columns, usable, split
``failures``
    video (path), patient_id, reason

``y`` is 1 for septic and 0 for non-septic. ``split`` comes from ``splits.json`` (patient-level).
"""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from sepsiscope._io import read_json
from sepsiscope.errors import InputError
from sepsiscope.layout import STORE_FORMAT_VERSION, StoreLayout

FRAME_COLUMNS = (
    "video_id", "row", "patient_id", "label", "y", "frame_index", "time_s", "tile",
    "um_per_px", "usable", "split",
)  # fmt: skip
SHARD_SAMPLES = 64


def write_sample_array(layout: StoreLayout, video_id: str, samples: np.ndarray) -> Path:
    """Write one video's samples ``(n, 3, size, size)`` uint8 atomically; replaces an old array."""
    if samples.ndim != 4 or samples.shape[1] != 3 or samples.dtype != np.uint8:
        raise ValueError(f"samples must be (n, 3, size, size) uint8, got {samples.shape}")
    layout.arrays.mkdir(parents=True, exist_ok=True)
    final = layout.array(video_id)
    tmp = layout.arrays / f".tmp-{video_id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    n = samples.shape[0]
    array = zarr.create_array(
        store=str(tmp),
        shape=samples.shape,
        dtype="uint8",
        chunks=(1, *samples.shape[1:]),
        shards=(min(SHARD_SAMPLES, n), *samples.shape[1:]),
        compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
        zarr_format=3,
    )
    try:
        array[:] = samples
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed write (a full disk) leaves nothing
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


class FrameStore:
    """Read access to a frame store; tables load on first use.

    Example
    -------
    >>> store = FrameStore("store")                       # doctest: +SKIP
    >>> train = store.samples("train")                    # doctest: +SKIP
    >>> x = store.read(train.video_id[0], [0, 1])         # doctest: +SKIP  (2, 3, 224, 224) uint8
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.layout = StoreLayout(root).require()
        self.root = self.layout.root
        version = self.meta.get("format_version")
        if version != STORE_FORMAT_VERSION:
            raise InputError(
                f"{self.root}: store format {version} is not supported by this version of "
                f"sepsiscope (expects {STORE_FORMAT_VERSION}); ingest the videos again"
            )
        self._arrays: dict[str, Any] = {}

    @cached_property
    def meta(self) -> dict[str, Any]:
        return read_json(self.layout.meta)

    @property
    def size(self) -> int:
        """Side of the square samples, px."""
        return int(self.meta["settings"]["size"])

    @cached_property
    def splits(self) -> dict[str, Any]:
        """``{"train": [patient_id, ...], "val": [...], "test": [...], "folds": [[...], ...]}``."""
        if not self.layout.splits.exists():
            return {}
        return read_json(self.layout.splits)

    def split_of(self) -> dict[str, str]:
        """patient_id -> split name (train, val or test)."""
        return {
            str(p): name for name in ("train", "val", "test") for p in self.splits.get(name, [])
        }

    def _with_split(self, table: pd.DataFrame) -> pd.DataFrame:
        table = table.copy()
        table["patient_id"] = table["patient_id"].astype(str)
        table["split"] = table["patient_id"].map(self.split_of()).fillna("none")
        return table

    @cached_property
    def videos(self) -> pd.DataFrame:
        return self._with_split(pd.read_parquet(self.layout.videos))

    @cached_property
    def frames(self) -> pd.DataFrame:
        return self._with_split(pd.read_parquet(self.layout.frames))

    @cached_property
    def failures(self) -> pd.DataFrame:
        if not self.layout.failures.exists():
            return pd.DataFrame(columns=["video", "patient_id", "reason"])
        return pd.read_parquet(self.layout.failures)

    def samples(self, split: str | None = None, *, usable_only: bool = True) -> pd.DataFrame:
        """Frame rows of one split (all when None), by default only those that passed quality."""
        table = self.frames
        if split is not None:
            if split not in ("train", "val", "test"):
                raise InputError(f"unknown split {split!r}: use train, val or test")
            table = table[table["split"] == split]
        if usable_only:
            table = table[table["usable"]]
        return table.reset_index(drop=True)

    def array(self, video_id: str) -> Any:
        """The zarr array of one video, opened once per process."""
        if video_id not in self._arrays:
            self._arrays[video_id] = zarr.open_array(str(self.layout.array(video_id)), mode="r")
        return self._arrays[video_id]

    def read(self, video_id: str, rows: Any) -> np.ndarray:
        """Samples ``rows`` of one video as ``(n, 3, size, size)`` uint8."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.array(video_id).get_orthogonal_selection((rows,))

    def read_table(self, table: pd.DataFrame) -> np.ndarray:
        """The samples of frame rows ``table`` (any order), as ``(len(table), 3, size, size)``."""
        out = np.empty((len(table), 3, self.size, self.size), np.uint8)
        positions = np.arange(len(table))
        for video_id, idx in table.groupby("video_id", sort=False).indices.items():
            out[positions[idx]] = self.read(str(video_id), table["row"].to_numpy()[idx])
        return out

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy without open arrays and reopen them lazily.
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state
