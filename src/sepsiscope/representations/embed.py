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

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from sepsiscope._io import save_png, write_json, write_text
from sepsiscope._lock import writes
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.representations import _shared as R
from sepsiscope.representations.features import split_features
from sepsiscope.settings import StageSettings

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


@writes("run_dir", "embed", create=False)
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
    store = FrameStore(run.store_dir(settings.store))
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
        R.draw_map(table, by, out.png(by), title=f"{settings.split} frames")
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
    store = FrameStore(run.store_dir(settings.store))
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


# --- figures ------------------------------------------------------------------------------------


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


__all__ = ["EmbedSettings", "embed", "place_frames"]
