"""``sepsiscope cluster``: do frames group by themselves? K-means on learned features.

Features are the autoencoder's bottleneck (``features="autoencoder"``, the study's analysis: no
label ever reached them) or the classifier's 128-d features (``features="classifier"``), each
standardised (zero mean, unit variance per feature) so that no feature dominates by its scale.
A k sweep (2..``k_max``) records inertia and silhouette; the chosen ``k`` is compared with the
diagnosis (adjusted Rand index, normalised mutual information, purity) and with the patient
(ARI, NMI): clusters that follow patients rather than diagnosis show identity, not disease.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope._io import save_png, write_json, write_table, write_text
from sepsiscope._lock import writes
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.representations import _shared as R
from sepsiscope.representations.features import split_features
from sepsiscope.settings import StageSettings


class ClusterSettings(StageSettings):
    """Settings of ``sepsiscope cluster``.

    ``features="auto"`` takes the autoencoder's features when the run has an autoencoder, else
    the classifier's. ``bottleneck`` picks an autoencoder size (default: the sweep's
    recommendation). ``split="all"`` clusters train, val and test frames together.
    """

    k: int = Field(2, ge=2)
    k_max: int = Field(8, ge=2)
    features: Literal["auto", "autoencoder", "classifier"] = "auto"
    split: Literal["train", "val", "test", "all"] = "val"
    bottleneck: int | None = None
    seed: int = 0
    n_init: int = Field(10, ge=1)
    perplexity: float = Field(30.0, gt=0)
    store: Path | None = None


@writes("run_dir", "cluster", create=False)
def cluster(
    run_dir: str | os.PathLike, settings: ClusterSettings | None = None, *, quiet: bool = False
) -> dict[str, Any]:
    """K-means of a run's learned features; agreement with diagnosis and patient; figures.

    Returns
    -------
    dict with ``ari`` and ``nmi`` (clusters against diagnosis), ``purity``, ``ari_patient``,
    ``nmi_patient``, the k sweep and the ``files`` written.

    Example
    -------
    >>> cluster("run", ClusterSettings(k=2, features="autoencoder"))  # doctest: +SKIP
    """
    settings = settings or ClusterSettings()
    run = RunLayout(run_dir)
    source = _source(run, settings)
    features, index = load_features(run, source, settings, quiet=quiet)
    n = len(features)
    if settings.k > n:
        raise InputError(f"k={settings.k} clusters is more than the {n} frames to cluster")
    standardised = standardise(features)
    sweep = k_sweep(
        standardised, k_max=min(settings.k_max, n - 1), seed=settings.seed, n_init=settings.n_init
    )
    labels = kmeans(standardised, settings.k, seed=settings.seed, n_init=settings.n_init)
    scores = agreement(labels, index["label"].astype(str), index["patient_id"].astype(str))
    out = run.clusters_of(source, settings.split)
    table = index.assign(cluster=labels)
    coordinates, method = _map(standardised, settings)
    table["tsne_x"], table["tsne_y"] = coordinates[:, 0], coordinates[:, 1]
    write_table(out.assignments, table)
    write_text(out.k_sweep, sweep.to_csv(index=False))
    per_patient = pd.crosstab([table["patient_id"], table["label"]], table["cluster"])
    per_patient.columns = [f"cluster_{c}" for c in per_patient.columns]
    write_text(out.patients, per_patient.reset_index().to_csv(index=False))
    _draw(table, method, out.png, title=f"{source} features, {settings.split}, k={settings.k}")
    _draw_sweep(sweep, out.k_sweep_png)
    result = {
        "run_dir": str(run.root),
        "features": source,
        "split": settings.split,
        "k": settings.k,
        "n_frames": n,
        "feature_dim": int(features.shape[1]),
        "bottleneck": _bottleneck(run, settings) if source == "autoencoder" else None,
        **scores,
        "map": method,
        "k_sweep": sweep.to_dict(orient="records"),
    }
    write_json(out.metrics, result)
    settings.save(out.settings)
    files = [out.assignments, out.k_sweep, out.k_sweep_png, out.metrics, out.patients, out.png]
    return {**result, "files": [str(p) for p in files]}


def standardise(features: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per feature; constant features stay 0."""
    mean = features.mean(0)
    std = features.std(0)
    return ((features - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def kmeans(features: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """K-means labels ``(n,)``, seeded."""
    from sklearn.cluster import KMeans

    if k > len(features):
        raise InputError(f"k={k} clusters is more than the {len(features)} frames to cluster")
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(features)


def k_sweep(features: np.ndarray, *, k_max: int = 8, seed: int = 0, n_init: int = 10):
    """Inertia and silhouette of K-means for k = 2..k_max, as a table."""
    from sklearn.cluster import KMeans

    rows = []
    for k in range(2, max(k_max, 1) + 1):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(features)
        rows.append(
            {
                "k": k,
                "inertia": float(model.inertia_),
                "silhouette": R.silhouette(features, model.labels_, seed=seed),
            }
        )
    return pd.DataFrame(rows, columns=["k", "inertia", "silhouette"])


def agreement(clusters: np.ndarray, diagnosis: np.ndarray, patient: np.ndarray) -> dict[str, float]:
    """ARI, NMI and purity of clusters against diagnosis; ARI and NMI against patient.

    Purity: the share of frames whose cluster's majority diagnosis is their own.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    clusters = np.asarray(clusters)
    diagnosis = np.asarray(diagnosis)
    counts = pd.crosstab(clusters, diagnosis)
    return {
        "ari": float(adjusted_rand_score(diagnosis, clusters)),
        "nmi": float(normalized_mutual_info_score(diagnosis, clusters)),
        "purity": float(counts.max(axis=1).sum() / len(clusters)),
        "ari_patient": float(adjusted_rand_score(patient, clusters)),
        "nmi_patient": float(normalized_mutual_info_score(patient, clusters)),
    }


def _source(run: RunLayout, settings: ClusterSettings) -> str:
    if settings.features != "auto":
        return settings.features
    if run.autoencoder_sweep.exists():
        return "autoencoder"
    if run.model.exists():
        return "classifier"
    raise InputError(
        f"{run.root} has neither an autoencoder nor a classifier: run "
        "`sepsiscope autoencode` or `sepsiscope train` first"
    )


def _bottleneck(run: RunLayout, settings: ClusterSettings) -> int:
    from sepsiscope.representations.autoencode import trained_bottleneck

    return settings.bottleneck or trained_bottleneck(run)


def load_features(
    run: RunLayout, source: str, settings: ClusterSettings, *, quiet: bool = False
) -> tuple[np.ndarray, pd.DataFrame]:
    """Features ``(n, d)`` and their frame index for ``settings.split`` from ``source``."""
    splits = ["train", "val", "test"] if settings.split == "all" else [settings.split]
    if source == "autoencoder":
        layout = run.autoencoder_model(_bottleneck(run, settings))
        if not layout.features.exists():
            raise InputError(
                f"no autoencoder features at {layout.features}: run "
                "`sepsiscope autoencode` (with this --bottleneck) first"
            )
        index = pd.read_parquet(layout.features_index)
        features = R.check_features(
            np.load(layout.features, allow_pickle=False), n=len(index), what=str(layout.features)
        )
        keep = index["split"].isin(splits).to_numpy()
        features, index = features[keep], index[keep].reset_index(drop=True)
    else:
        store = FrameStore(run.require_classifier().store_dir(settings.store))
        parts = [split_features(run, store, s, quiet=quiet) for s in splits]
        features = np.concatenate([p[0] for p in parts])
        index = pd.concat([p[1] for p in parts], ignore_index=True)
    if len(features) < 2:
        raise InputError(
            f"the {settings.split} split has {len(features)} frames; clustering needs at least 2"
        )
    return R.check_features(features), index


def _map(features: np.ndarray, settings: ClusterSettings) -> tuple[np.ndarray, str]:
    """2-D coordinates for drawing: t-SNE when there are enough frames, else PCA."""
    try:
        R.usable_perplexity(len(features), settings.perplexity)
    except InputError:
        from sklearn.decomposition import PCA

        coordinates = np.zeros((len(features), 2))
        dims = min(2, *features.shape)
        coordinates[:, :dims] = PCA(dims, random_state=settings.seed).fit_transform(features)
        return coordinates, "pca"
    tsne = R.tsne_map(features, perplexity=settings.perplexity, seed=settings.seed)
    return tsne.coordinates, "tsne"


def _draw(table: pd.DataFrame, method: str, path: Path, *, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    R.draw_map(table, "cluster", path, title=f"K-means ({method})", ax=axes[0])
    R.draw_map(table, "diagnosis", path, title=f"diagnosis ({method})", ax=axes[1])
    fig.suptitle(title)
    save_png(path, fig)


def _draw_sweep(sweep: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(sweep["k"], sweep["inertia"], "o-", color="tab:blue")
    ax.set(xlabel="k", ylabel="inertia")
    twin = ax.twinx()
    twin.plot(sweep["k"], sweep["silhouette"], "s--", color="tab:orange")
    twin.set_ylabel("silhouette", color="tab:orange")
    ax.set_title("K-means: inertia and silhouette against k")
    save_png(path, fig)
