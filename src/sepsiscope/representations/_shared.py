"""Pure functions on feature arrays shared by ``embed`` and ``cluster``: t-SNE maps, placing new
points into a map, how well labels (diagnosis, patient) separate in feature space, and the map
figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sepsiscope._io import save_png
from sepsiscope.errors import InputError

MIN_PERPLEXITY = 5.0  # below this a t-SNE map shows little but its noise
BH_BELOW = 10_000  # "auto" gradient: Barnes-Hut below this many points, FFT from here on
PARALLEL_FROM = 2_000  # fewer points: one thread, as synchronising threads costs more than it saves


def check_features(
    features: np.ndarray, *, n: int | None = None, dim: int | None = None, what: str = "features"
) -> np.ndarray:
    """``features`` as a finite float ``(n, dim)`` array; InputError naming the shape otherwise."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise InputError(f"{what} must be a 2-D (frames, features) array, got {features.shape}")
    if n is not None and features.shape[0] != n:
        raise InputError(f"{what} have {features.shape[0]} rows but there are {n} frames")
    if dim is not None and features.shape[1] != dim:
        raise InputError(f"{what} have {features.shape[1]} columns; expected {dim}")
    if not np.isfinite(features).all():
        raise InputError(f"{what} hold NaN or infinite values")
    return features.astype(np.float32, copy=False)


def usable_perplexity(n: int, perplexity: float) -> float:
    """``perplexity`` clipped to ``(n - 1) / 3``; InputError below :data:`MIN_PERPLEXITY`."""
    used = min(float(perplexity), (n - 1) / 3)
    if used < MIN_PERPLEXITY:
        minimum = int(3 * MIN_PERPLEXITY + 1)
        raise InputError(
            f"{n} frames are too few for a t-SNE map: at least {minimum} are needed "
            f"(3 x perplexity {MIN_PERPLEXITY:g} + 1)"
        )
    return used


def save_npy(path: Any, array: np.ndarray) -> Any:
    """Write ``array`` as ``.npy`` atomically."""
    from sepsiscope._io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)  # a file object: np.save would append ".npy" to a bare path
    return path


@dataclass
class TSNEMap:
    """A fitted t-SNE map: what :func:`place_points` needs, storable without pickle (npz)."""

    reference: np.ndarray  # (n, d) float32 features of the mapped frames
    coordinates: np.ndarray  # (n, 2) float64
    perplexity: float
    seed: int

    def save(self, path: Any) -> None:
        from sepsiscope._io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                reference=self.reference,
                coordinates=self.coordinates,
                perplexity=self.perplexity,
                seed=self.seed,
            )

    @classmethod
    def load(cls, path: Any) -> TSNEMap:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                reference=z["reference"],
                coordinates=z["coordinates"],
                perplexity=float(z["perplexity"]),
                seed=int(z["seed"]),
            )


def tsne_map(
    features: np.ndarray,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    n_jobs: int = 2,
    gradient: str = "auto",
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
) -> TSNEMap:
    """Fit a 2-D t-SNE map of ``features (n, d)`` with openTSNE, PCA-initialised and seeded.

    ``perplexity`` is clipped to ``(n - 1) / 3`` (the neighbours it needs must exist);
    ``gradient`` is openTSNE's negative-gradient method: "fft" (interpolation, fast for many
    points), "bh" (Barnes-Hut) or "auto" (bh below 10,000 points).
    """
    import openTSNE

    features = check_features(features)
    used = usable_perplexity(len(features), perplexity)
    if gradient == "auto":  # FFT's fixed cost per iteration dominates below ~10k points
        gradient = "bh" if len(features) < BH_BELOW else "fft"
    tsne = openTSNE.TSNE(
        perplexity=used,
        initialization="pca",
        metric="euclidean",
        n_jobs=n_jobs if len(features) >= PARALLEL_FROM else 1,
        random_state=seed,
        negative_gradient_method=gradient,
        n_iter=n_iter,
        early_exaggeration_iter=early_exaggeration_iter,
    )
    embedding = tsne.fit(features)
    return TSNEMap(features, np.asarray(embedding, dtype=np.float64), used, seed)


def place_points(tsne: TSNEMap, features: np.ndarray, *, n_jobs: int = 2) -> np.ndarray:
    """Coordinates ``(m, 2)`` of new frames placed into an existing map, the map held fixed.

    The map's affinities are rebuilt from its reference features (deterministic for a seed),
    then openTSNE optimises only the new points (``TSNEEmbedding.transform``).
    """
    import openTSNE

    features = check_features(features, dim=tsne.reference.shape[1], what="new features")
    if len(tsne.reference) + len(features) < PARALLEL_FROM:
        n_jobs = 1
    affinities = openTSNE.affinity.PerplexityBasedNN(
        tsne.reference, perplexity=tsne.perplexity, n_jobs=n_jobs, random_state=tsne.seed
    )
    gradient = "bh" if len(tsne.reference) + len(features) < BH_BELOW else "fft"
    embedding = openTSNE.TSNEEmbedding(
        tsne.coordinates,
        affinities,
        random_state=tsne.seed,
        n_jobs=n_jobs,
        negative_gradient_method=gradient,
    )
    perplexity = min(5.0, max((len(tsne.reference) - 1) / 3, 1.0))
    return np.asarray(embedding.transform(features, perplexity=perplexity), dtype=np.float64)


def knn_accuracy(
    features: np.ndarray, labels: np.ndarray, *, k: int = 10, groups: np.ndarray | None = None
) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (majority vote) of ``labels``.

    With ``groups`` (e.g. patient ids) a frame's neighbours come only from other groups, so
    frames of the same patient cannot vote for each other. NaN when no neighbour is available.
    """
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    codes, labels = np.unique(labels, return_inverse=True)
    n = len(features)
    votes = np.full(n, -1)
    if groups is None:
        k_used = min(k, n - 1)
        if k_used < 1:
            return float("nan")
        index = NearestNeighbors(n_neighbors=k_used + 1).fit(features)
        neighbours = index.kneighbors(features, return_distance=False)
        neighbours = _drop_self(neighbours, k_used)
        votes = _majority(labels[neighbours], len(codes))
    else:
        groups = np.asarray(groups)
        for group in np.unique(groups):
            inside = groups == group
            others = np.flatnonzero(~inside)
            k_used = min(k, len(others))
            if k_used < 1:
                continue
            index = NearestNeighbors(n_neighbors=k_used).fit(features[others])
            neighbours = others[index.kneighbors(features[inside], return_distance=False)]
            votes[inside] = _majority(labels[neighbours], len(codes))
    scored = votes >= 0
    return float((votes[scored] == labels[scored]).mean()) if scored.any() else float("nan")


def _drop_self(neighbours: np.ndarray, k: int) -> np.ndarray:
    # Each row's own index is usually first, but duplicates may put it elsewhere.
    own = np.arange(len(neighbours))[:, None]
    keep = neighbours != own
    return np.array([row[mask][:k] for row, mask in zip(neighbours, keep, strict=True)])


def _majority(neighbour_labels: np.ndarray, n_codes: int) -> np.ndarray:
    counts = np.zeros((len(neighbour_labels), n_codes), np.int64)
    for j in range(neighbour_labels.shape[1]):
        np.add.at(counts, (np.arange(len(neighbour_labels)), neighbour_labels[:, j]), 1)
    return counts.argmax(1)  # ties go to the lower code, the same for every run


def silhouette(features: np.ndarray, labels: np.ndarray, *, seed: int = 0, sample: int = 5000):
    """Silhouette of ``labels`` in feature space (-1..1); NaN unless 2 <= groups < frames.

    Above ``sample`` frames a seeded random subset is scored (the exact score is O(n²)).
    """
    from sklearn.metrics import silhouette_score

    n_groups = len(np.unique(labels))
    if not 2 <= n_groups < len(features):
        return float("nan")
    size = min(sample, len(features)) if len(features) > sample else None
    return float(silhouette_score(features, labels, sample_size=size, random_state=seed))


def separation_scores(
    features: np.ndarray,
    diagnosis: np.ndarray,
    patient: np.ndarray,
    *,
    k: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Does diagnosis or patient identity drive the grouping of ``features (n, d)``?

    Silhouette and leave-one-out k-NN accuracy by diagnosis and by patient, the k-NN diagnosis
    accuracy with same-patient neighbours excluded (the honest figure: it cannot be earned by
    recognising the patient), and the chance levels (majority share) to read them against.
    """
    features = check_features(features)
    diagnosis, patient = np.asarray(diagnosis).astype(str), np.asarray(patient).astype(str)
    _, diagnosis_counts = np.unique(diagnosis, return_counts=True)
    _, patient_counts = np.unique(patient, return_counts=True)
    return {
        "n_frames": len(features),
        "n_patients": len(patient_counts),
        "k": k,
        "silhouette_diagnosis": silhouette(features, diagnosis, seed=seed),
        "silhouette_patient": silhouette(features, patient, seed=seed),
        "knn_diagnosis": knn_accuracy(features, diagnosis, k=k),
        "knn_diagnosis_other_patients": knn_accuracy(features, diagnosis, k=k, groups=patient),
        "knn_patient": knn_accuracy(features, patient, k=k),
        "chance_diagnosis": float(diagnosis_counts.max() / len(diagnosis)),
        "chance_patient": float(patient_counts.max() / len(patient)),
    }


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
