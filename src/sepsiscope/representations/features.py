"""The classifier's 128-d features of a store split, cached in the run, and the frame index that
goes with them. Shared by ``embed`` (t-SNE), ``cluster`` (K-means on classifier features) and
``autoencode`` (the same index for the bottleneck features)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from sepsiscope._io import read_json, write_json, write_table
from sepsiscope._progress import track
from sepsiscope.data.store import FrameStore
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import FEATURE_DIM
from sepsiscope.representations import _shared as R
from sepsiscope.settings import provenance

INDEX_COLUMNS = ("video_id", "row", "patient_id", "label", "y", "split", "camera")


def frame_index(store: FrameStore, split: str) -> pd.DataFrame:
    """The usable frames of ``split`` with the columns of :data:`INDEX_COLUMNS` (camera added)."""
    table = store.samples(split)
    videos = store.videos
    cameras = videos.set_index("video_id")["camera"] if "camera" in videos else pd.Series()
    camera = table["video_id"].map(cameras).fillna("").astype(str).str.strip()
    table["camera"] = camera.where(camera != "", "unknown")  # a manifest may leave it empty
    if "label" not in table:
        table["label"] = np.where(table["y"] == 1, "septic", "non-septic")
    return table.reindex(columns=list(INDEX_COLUMNS)).reset_index(drop=True)


def split_features(
    run: RunLayout, store: FrameStore, split: str, *, batch_size: int = 64, quiet: bool = False
) -> tuple[np.ndarray, pd.DataFrame]:
    """The classifier's 128-d features ``(n, 128)`` of a split's usable frames, and their index.

    Cached in ``RUN/embedding/<split>/``; recomputed when the model file or frames change.
    """
    out = run.embedding_of(split)
    index = frame_index(store, split)
    key = _cache_key(run, index)
    meta = out.features_meta
    if out.features.exists() and meta.exists() and read_json(meta).get("key") == key:
        return np.load(out.features, allow_pickle=False), index
    from sepsiscope.classifier.inference import infer, load_classifier

    model, train_settings = load_classifier(run.root)
    features = np.empty((len(index), FEATURE_DIM), np.float32)
    chunk = max(batch_size, 256)
    for start in track(range(0, len(index), chunk), description=f"features {split}", quiet=quiet):
        samples = store.read_table(index.iloc[start : start + chunk])
        _, feats = infer(
            model,
            samples,
            input_mode=train_settings.input_mode,
            batch_size=batch_size,
            with_features=True,
        )
        features[start : start + chunk] = np.asarray(feats, dtype=np.float32)
    save_split_features(run, split, features, index)
    return features, index


def save_split_features(
    run: RunLayout, split: str, features: np.ndarray, index: pd.DataFrame
) -> None:
    """Cache a split's classifier features ``(n, 128)`` and index for the run's current model
    (also how features computed elsewhere, e.g. on another machine, enter a run)."""
    out = run.embedding_of(split)
    features = R.check_features(features, n=len(index), dim=FEATURE_DIM, what="classifier features")
    R.save_npy(out.features, features)
    write_table(out.features_index, index)
    write_json(out.features_meta, {"key": _cache_key(run, index), **provenance()})


def _cache_key(run: RunLayout, index: pd.DataFrame) -> str:
    digest = hashlib.sha256(run.model.read_bytes())
    digest.update(pd.util.hash_pandas_object(index[["video_id", "row"]], index=False).values)
    return digest.hexdigest()
