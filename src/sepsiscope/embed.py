"""``sepsiscope embed``: what the classifier learned, as a t-SNE map of its 128-d features.

The features are the pooled output of the network's last convolutional layer
(:meth:`SepsisNet.forward_features`) for every usable frame of one split (val by default, as in
the study). openTSNE maps them to 2-D (PCA initialisation, seeded; perplexity 30 by default,
clipped to ``(n - 1) / 3``), and the map is drawn coloured by diagnosis, by patient and by
camera. Separation scores are computed in the 128-d space, not on the map: silhouette and
leave-one-out k-NN accuracy by diagnosis and by patient, and the k-NN diagnosis accuracy with
same-patient neighbours excluded. If frames group by patient far more than by diagnosis, the
network has learned who, not what; only the last figure cannot be earned by recognising patients.

Frames of another split (e.g. test) can be placed into the map without moving it
(``place=...``); the map is stored as plain arrays (``tsne_map.npz``: reference features and
coordinates), never as a pickle, and rebuilt when frames are placed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope import _representation as R
from sepsiscope._io import read_json, save_png, write_json, write_table, write_text
from sepsiscope._progress import track
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.settings import StageSettings, provenance
from sepsiscope.store import FrameStore

INDEX_COLUMNS = ("video_id", "row", "patient_id", "label", "y", "split", "camera")
FEATURE_DIM = 128
Split = Literal["train", "val", "test"]


class EmbedSettings(StageSettings):
    """Settings of ``sepsiscope embed``; ``store`` defaults to the store the run was trained on."""

    split: Split = "val"
    perplexity: float = Field(30.0, gt=0)
    seed: int = 0
    n_jobs: int = Field(2, ge=1)
    gradient: Literal["auto", "fft", "bh"] = "auto"
    n_iter: int = Field(500, ge=50)
    early_exaggeration_iter: int = Field(250, ge=0)
    k_neighbours: int = Field(10, ge=1)
    place: Split | None = None
    batch_size: int = Field(64, ge=1)
    store: Path | None = None


def embed(
    run_dir: str | os.PathLike, settings: EmbedSettings | None = None, *, quiet: bool = False
) -> dict[str, Any]:
    """Map one split's classifier features with t-SNE, score their separation, draw them.

    Returns
    -------
    dict with ``feature_dim`` (128), ``n_frames``, ``perplexity`` (as used), the separation
    scores, ``placed`` (when ``settings.place``) and ``files`` written.

    Example
    -------
    >>> embed("run", EmbedSettings(split="val", place="test"))  # doctest: +SKIP
    """
    settings = settings or EmbedSettings()
    run = RunLayout(run_dir).require_classifier()
    out = run.embedding_of(settings.split)
    store = store_of(run, settings.store)
    features, index = split_features(
        run, store, settings.split, batch_size=settings.batch_size, quiet=quiet
    )
    try:  # fail before the slow steps
        R.usable_perplexity(len(features), settings.perplexity)
    except InputError as exc:
        raise InputError(
            f"the {settings.split} split: {exc}; map a larger split (--split train or test)"
        ) from exc
    scores = R.separation_scores(
        features, index["label"], index["patient_id"], k=settings.k_neighbours, seed=settings.seed
    )
    tsne = R.tsne_map(
        features,
        perplexity=settings.perplexity,
        seed=settings.seed,
        n_jobs=settings.n_jobs,
        gradient=settings.gradient,
        n_iter=settings.n_iter,
        early_exaggeration_iter=settings.early_exaggeration_iter,
    )
    tsne.save(out.map_state)
    table = index.assign(tsne_x=tsne.coordinates[:, 0], tsne_y=tsne.coordinates[:, 1])
    write_text(out.coordinates, table.to_csv(index=False))
    scores["perplexity"] = tsne.perplexity
    write_json(out.scores, scores)
    pngs = [
        draw_map(table, by, out.png(by), title=f"{settings.split} frames")
        for by in ("diagnosis", "patient", "camera")
    ]
    settings.save(out.settings)
    result: dict[str, Any] = {
        "run_dir": str(run.root),
        "split": settings.split,
        "feature_dim": int(features.shape[1]),
        "n_frames": len(features),
        "perplexity": tsne.perplexity,
        "scores": scores,
        "files": [
            str(p)
            for p in (
                out.features,
                out.features_index,
                out.coordinates,
                out.map_state,
                out.scores,
                *pngs,
            )
        ],
    }
    if settings.place is not None:
        result["placed"] = place_frames(run_dir, settings, quiet=quiet)
        result["files"] += result["placed"]["files"]
    return result


def place_frames(
    run_dir: str | os.PathLike, settings: EmbedSettings, *, quiet: bool = False
) -> dict[str, Any]:
    """Place the frames of ``settings.place`` into the existing map of ``settings.split``.

    Writes ``placed_<split>.csv`` (coordinates) and a PNG of the new frames over the map; scores
    how often a placed frame's 10 nearest map frames share its diagnosis (``map_knn_diagnosis``).
    """
    if settings.place is None:
        raise InputError("name the split to place (e.g. --place test)")
    run = RunLayout(run_dir).require_classifier()
    out = run.embedding_of(settings.split)
    if not out.map_state.exists():
        raise InputError(
            f"no t-SNE map of the {settings.split} split in {run.root}: "
            f"run `sepsiscope embed {run.root} --split {settings.split}` first"
        )
    store = store_of(run, settings.store)
    features, index = split_features(
        run, store, settings.place, batch_size=settings.batch_size, quiet=quiet
    )
    if len(features) == 0:
        raise InputError(f"the {settings.place} split has no usable frames to place")
    tsne = R.TSNEMap.load(out.map_state)
    coordinates = R.place_points(tsne, features, n_jobs=settings.n_jobs)
    placed = index.assign(tsne_x=coordinates[:, 0], tsne_y=coordinates[:, 1])
    write_text(out.placed(settings.place), placed.to_csv(index=False))
    reference = pd.read_csv(out.coordinates)
    agreement = _map_knn_agreement(reference, placed)
    _draw_placed(reference, placed, out.placed_png(settings.place), settings)
    return {
        "split": settings.place,
        "n_frames": len(placed),
        "map_knn_diagnosis": agreement,
        "files": [str(out.placed(settings.place)), str(out.placed_png(settings.place))],
    }


# --- features -----------------------------------------------------------------------------------


def store_of(run: RunLayout, store: str | os.PathLike | None) -> FrameStore:
    """The given store, else the one named in the run's classifier settings."""
    if store is not None:
        return FrameStore(store)
    saved = read_json(run.model_settings) if run.model_settings.exists() else {}
    for source in (saved, saved.get("settings", {})):
        for key in ("store", "store_dir"):
            if source.get(key):
                return FrameStore(source[key])
    raise InputError(f"{run.model_settings}: the run does not name its frame store; pass --store")


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
    from sepsiscope.inference import infer, load_classifier

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


# --- figures ------------------------------------------------------------------------------------

DIAGNOSIS_COLOURS = {"non-septic": "tab:blue", "septic": "tab:red"}
_COLUMN = {"diagnosis": "label", "patient": "patient_id", "camera": "camera", "cluster": "cluster"}


def draw_map(table: pd.DataFrame, by: str, path: Path, *, title: str, ax: Any = None) -> Path:
    """Scatter of ``table``'s tsne_x/tsne_y coloured by diagnosis, patient, camera or cluster."""
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.5, 5))
    values = table[_COLUMN[by]].astype(str)
    groups = sorted(values.unique())
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    size = max(2.0, min(12.0, 3000 / max(len(table), 1)))
    for i, group in enumerate(groups):
        mask = (values == group).to_numpy()
        ax.scatter(
            table["tsne_x"][mask],
            table["tsne_y"][mask],
            s=size,
            alpha=0.7,
            color=DIAGNOSIS_COLOURS.get(group, cmap(i % cmap.N))
            if by == "diagnosis"
            else cmap(i % cmap.N),
            label=group,
            linewidths=0,
        )
    if len(groups) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", title=by, title_fontsize=7)
    ax.set(xticks=[], yticks=[], title=f"{title}, by {by} (n={len(table)})")
    if own:
        save_png(path, fig)
    return path


def _draw_placed(reference: pd.DataFrame, placed: pd.DataFrame, path: Path, settings) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(reference["tsne_x"], reference["tsne_y"], s=3, color="0.8", label=settings.split)
    for label, colour in (("non-septic", "tab:blue"), ("septic", "tab:red")):
        mask = placed["label"] == label
        ax.scatter(
            placed["tsne_x"][mask],
            placed["tsne_y"][mask],
            s=8,
            color=colour,
            label=f"{settings.place}: {label}",
        )
    ax.legend(fontsize=7)
    ax.set(
        xticks=[], yticks=[], title=f"{settings.place} frames placed into the {settings.split} map"
    )
    save_png(path, fig)


def _map_knn_agreement(reference: pd.DataFrame, placed: pd.DataFrame, k: int = 10) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    k = min(k, len(reference))
    knn = KNeighborsClassifier(n_neighbors=k).fit(
        reference[["tsne_x", "tsne_y"]].to_numpy(), reference["label"].astype(str)
    )
    predicted = knn.predict(placed[["tsne_x", "tsne_y"]].to_numpy())
    return float((predicted == placed["label"].astype(str).to_numpy()).mean())


__all__ = ["EmbedSettings", "embed", "place_frames", "save_split_features", "split_features"]
