"""Every file name of a cohort, a frame store and a run folder, in one place.

Stages never build these paths themselves, so no stage has to guess another's file names.

Cohort (``sepsiscope simulate``)::

    DIR/manifest.csv  truth.csv  vessels.json  videos/  masks/  settings.json

Store (``sepsiscope ingest``)::

    STORE/store.json       format version, ingest settings and provenance
    STORE/manifest.csv     the manifest as ingested (absolute video paths)
    STORE/videos.parquet   one row per ingested video
    STORE/frames.parquet   one row per stored sample (frame or tile)
    STORE/failures.parquet one row per video that could not be ingested
    STORE/splits.json      patient splits and folds
    STORE/frames.zarr/     one uint8 array (n, 3, size, size) per video

Run (``sepsiscope train`` and the stages after it)::

    RUN/classifier/ evaluation/ embedding/ autoencoder/ clusters/ measurements/
    RUN/predictions/ explanations/ report.html
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from typing import Any

from sepsiscope._io import read_json
from sepsiscope.errors import InputError


def safe_name(name: str) -> str:
    """``name`` as a file or folder name: runs of other characters than letters, digits and
    ``._-`` become ``_``, leading and trailing dots and underscores go ("video" if nothing is
    left)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"


def make_video_id(path: str, used: set[str]) -> str:
    """A file-name-safe id for a video: its stem, made unique within ``used`` (which it updates).

    Every stage that names a video's outputs uses this, so ids agree between the store and the
    measurements (``0001.avi`` in every patient's folder gets distinct ids).
    """
    stem = safe_name(Path(path).stem)
    if stem in used:
        stem = f"{stem}-{sha1(path.encode()).hexdigest()[:8]}"
    used.add(stem)
    return stem


STORE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CohortLayout:
    """Files written by the simulator."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    manifest = property(lambda self: self.root / "manifest.csv")
    truth = property(lambda self: self.root / "truth.csv")
    vessels = property(lambda self: self.root / "vessels.json")
    videos = property(lambda self: self.root / "videos")
    masks = property(lambda self: self.root / "masks")
    settings = property(lambda self: self.root / "settings.json")

    def mask(self, video_id: str) -> Path:
        return self.masks / f"{video_id}.png"


@dataclass(frozen=True)
class StoreLayout:
    """Files of a frame store."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    meta = property(lambda self: self.root / "store.json")
    manifest = property(lambda self: self.root / "manifest.csv")
    videos = property(lambda self: self.root / "videos.parquet")
    frames = property(lambda self: self.root / "frames.parquet")
    failures = property(lambda self: self.root / "failures.parquet")
    splits = property(lambda self: self.root / "splits.json")
    arrays = property(lambda self: self.root / "frames.zarr")

    def array(self, video_id: str) -> Path:
        return self.arrays / video_id

    def require(self) -> StoreLayout:
        """Raise a helpful error when there is no store here."""
        if not self.meta.exists():
            raise InputError(f"no frame store at {self.root}: run `sepsiscope ingest` first")
        return self


@dataclass(frozen=True)
class RunLayout:
    """Folders and files of a run; each stage owns one sub-folder."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    classifier = property(lambda self: self.root / "classifier")
    evaluation = property(lambda self: self.root / "evaluation")
    embedding = property(lambda self: self.root / "embedding")
    autoencoder = property(lambda self: self.root / "autoencoder")
    clusters = property(lambda self: self.root / "clusters")
    measurements = property(lambda self: self.root / "measurements")
    predictions = property(lambda self: self.root / "predictions")
    explanations = property(lambda self: self.root / "explanations")
    # explain RUN VIDEO: one folder per video, apart from the split's overlays and table
    video_explanations = property(lambda self: self.explanations / "videos")
    report = property(lambda self: self.root / "report.html")

    # classifier/
    model = property(lambda self: self.classifier / "model.safetensors")
    model_settings = property(lambda self: self.classifier / "settings.json")
    checkpoints = property(lambda self: self.classifier / "checkpoints")
    threshold = property(lambda self: self.classifier / "threshold.json")
    train_log = property(lambda self: self.classifier / "metrics.csv")
    onnx = property(lambda self: self.classifier / "model.onnx")
    onnx_int8 = property(lambda self: self.classifier / "model.int8.onnx")  # export --int8
    train_result = property(lambda self: self.classifier / "train.json")
    train_logs = property(lambda self: self.classifier / "logs")
    frame_split = property(lambda self: self.classifier / "frame_split.csv")  # leaky split only

    def require_classifier(self) -> RunLayout:
        """Raise a helpful error when this run has no trained classifier."""
        if not self.model.exists():
            raise InputError(f"no trained classifier in {self.root}: run `sepsiscope train` first")
        return self

    def saved_training(self) -> dict[str, Any]:
        """What ``train`` recorded in classifier/settings.json ({} when there is none):
        ``settings`` (TrainSettings), ``store`` (the store's path), ``sampling`` (its ingest
        settings) and provenance."""
        if not self.model_settings.exists():
            return {}
        saved = read_json(self.model_settings)
        return saved if isinstance(saved, dict) else {}

    def trained_store(self) -> Path | None:
        """The frame store this run was trained on, as ``train`` recorded it, or that of its
        first cross-validation fold (a crossval-only run); None when neither names one."""
        runs = [self, *(RunLayout(f) for f in sorted(self.folds.glob("fold_*")))]
        for run in runs:
            store = run.saved_training().get("store")
            if isinstance(store, str) and store:
                return Path(store)
        return None

    def store_dir(self, given: str | os.PathLike | None = None) -> Path:
        """``given`` when not None, else :meth:`trained_store`; InputError when neither."""
        if given is not None:
            return Path(given)
        store = self.trained_store()
        if store is None:
            raise InputError(
                f"{self.model_settings}: the run does not name its frame store; pass --store DIR"
            )
        if not StoreLayout(store).meta.exists():
            raise InputError(
                f"{self.root} was trained on the frame store {store}, which is not there now "
                "(a run folder copied from elsewhere?); pass --store DIR"
            )
        return store

    # evaluation/ (sepsiscope evaluate)
    evaluation_metrics = property(lambda self: self.evaluation / "metrics.json")
    evaluation_settings = property(lambda self: self.evaluation / "settings.json")
    evaluation_frames = property(lambda self: self.evaluation / "frames.parquet")
    evaluation_videos = property(lambda self: self.evaluation / "videos.parquet")
    evaluation_patients = property(lambda self: self.evaluation / "patients.parquet")
    roc_figure = property(lambda self: self.evaluation / "roc.png")
    confusion_figure = property(lambda self: self.evaluation / "confusion.png")
    reliability_figure = property(lambda self: self.evaluation / "reliability.png")
    reliability_calibrated_figure = property(
        lambda self: self.evaluation / "reliability_calibrated.png"
    )
    calibration = property(lambda self: self.classifier / "calibration.json")  # temperature

    # folds/ and crossval/ (sepsiscope crossval)
    folds = property(lambda self: self.root / "folds")
    crossval = property(lambda self: self.root / "crossval")
    crossval_metrics = property(lambda self: self.crossval / "metrics.json")
    crossval_settings = property(lambda self: self.crossval / "settings.json")
    oof_frames = property(lambda self: self.crossval / "oof_frames.parquet")
    oof_videos = property(lambda self: self.crossval / "oof_videos.parquet")
    oof_patients = property(lambda self: self.crossval / "oof_patients.parquet")
    # the study's one table (benchmarks/ablation.py): every model and choice left out, out of fold
    study = property(lambda self: self.crossval / "study.csv")

    @property
    def ensemble(self) -> RunLayout:
        """The fold models as one model to apply (a run folder of its own, RUN/ensemble)."""
        return RunLayout(self.root / "ensemble")

    @property
    def refit(self) -> RunLayout:
        """One model trained on every patient (``crossval --refit``; a run folder, RUN/refit)."""
        return RunLayout(self.root / "refit")

    def fold(self, index: int) -> RunLayout:
        """The run of cross-validation fold ``index`` (a run folder of its own)."""
        return RunLayout(self.folds / f"fold_{index}")

    # autoencoder/, embedding/, clusters/ (sepsiscope autoencode, embed, cluster)
    autoencoder_sweep = property(lambda self: self.autoencoder / "sweep.json")
    autoencoder_sweep_table = property(lambda self: self.autoencoder / "sweep.csv")
    autoencoder_sweep_png = property(lambda self: self.autoencoder / "sweep.png")

    def autoencoder_model(self, bottleneck: int) -> AutoencoderLayout:
        """Files of the autoencoder with this bottleneck size (named at 224 px)."""
        return AutoencoderLayout(self.autoencoder / f"b{bottleneck}")

    def embedding_of(self, split: str) -> EmbeddingLayout:
        """Files of the t-SNE map of one split's classifier features."""
        return EmbeddingLayout(self.embedding / split)

    def clusters_of(self, features: str, split: str) -> ClusterLayout:
        """Files of a K-means clustering of ``features`` (autoencoder or classifier)."""
        return ClusterLayout(self.clusters / f"{features}-{split}")


@dataclass(frozen=True)
class AutoencoderLayout:
    """Files of one trained autoencoder: RUN/autoencoder/b<bottleneck>/."""

    root: Path

    model = property(lambda self: self.root / "model.safetensors")
    settings = property(lambda self: self.root / "settings.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    last_checkpoint = property(lambda self: self.root / "checkpoints" / "last.ckpt")
    history = property(lambda self: self.root / "history.csv")
    reconstructions = property(lambda self: self.root / "reconstructions")
    features = property(lambda self: self.root / "features.npy")
    features_index = property(lambda self: self.root / "features.parquet")
    quality = property(lambda self: self.root / "quality.json")

    def reconstruction_png(self, epoch: int) -> Path:
        return self.reconstructions / f"epoch_{epoch:03d}.png"


@dataclass(frozen=True)
class EmbeddingLayout:
    """Files of one split's t-SNE map: RUN/embedding/<split>/."""

    root: Path

    features = property(lambda self: self.root / "features.npy")
    features_index = property(lambda self: self.root / "features.parquet")
    features_meta = property(lambda self: self.root / "features.json")
    coordinates = property(lambda self: self.root / "tsne.csv")
    map_state = property(lambda self: self.root / "tsne_map.npz")
    scores = property(lambda self: self.root / "scores.json")
    settings = property(lambda self: self.root / "settings.json")

    def png(self, colour_by: str) -> Path:
        return self.root / f"tsne_by_{colour_by}.png"

    def placed(self, split: str) -> Path:
        return self.root / f"placed_{split}.csv"

    def placed_png(self, split: str) -> Path:
        return self.root / f"placed_{split}.png"


@dataclass(frozen=True)
class ClusterLayout:
    """Files of one clustering: RUN/clusters/<features>-<split>/."""

    root: Path

    assignments = property(lambda self: self.root / "assignments.parquet")
    k_sweep = property(lambda self: self.root / "k_sweep.csv")
    k_sweep_png = property(lambda self: self.root / "k_sweep.png")
    metrics = property(lambda self: self.root / "metrics.json")
    patients = property(lambda self: self.root / "patients_by_cluster.csv")
    png = property(lambda self: self.root / "clusters_tsne.png")
    settings = property(lambda self: self.root / "settings.json")


@dataclass(frozen=True)
class DemoLayout:
    """Folders of ``sepsiscope demo``: a cohort, its store and one run, plus the demo's state."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    cohort = property(lambda self: CohortLayout(self.root / "cohort"))
    store = property(lambda self: StoreLayout(self.root / "store"))
    run = property(lambda self: RunLayout(self.root / "run"))
    state = property(lambda self: self.root / "demo.json")


@dataclass(frozen=True)
class PredictionLayout:
    """Files of one video's prediction: RUN/predictions/<name>/ (or --out DIR/<name>/)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    frames = property(lambda self: self.root / "frames.parquet")  # and a frames.csv twin
    frames_csv = property(lambda self: self.root / "frames.csv")
    result = property(lambda self: self.root / "prediction.json")
    annotated = property(lambda self: self.root / "annotated.mp4")


def prediction_summary(out_dir: str | os.PathLike) -> Path:
    """One row per video when several videos are predicted: OUT/summary.csv."""
    return Path(out_dir) / "summary.csv"


def explanation_png(out_dir: str | os.PathLike, rank: int, video_id: str, row: int) -> Path:
    """A Grad-CAM overlay: RUN/explanations/<rank>_<video>_<row>.png (of a store split), or
    RUN/explanations/videos/<video>/<rank>_<video>_<row>.png (of one video)."""
    return Path(out_dir) / f"{rank:02d}_{video_id}_{row:05d}.png"


@dataclass(frozen=True)
class MeasurementLayout:
    """Files of ``sepsiscope measure``: OUT/ (RUN/measurements/ by convention)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    videos = property(lambda self: self.root / "videos.parquet")  # and a videos.csv twin
    vessels = property(lambda self: self.root / "vessels.parquet")  # and a vessels.csv twin
    patients = property(lambda self: self.root / "patients.parquet")  # HI across sites
    failures = property(lambda self: self.root / "failures.csv")
    summary = property(lambda self: self.root / "measure.json")
    settings = property(lambda self: self.root / "settings.json")
    overlays = property(lambda self: self.root / "overlays")
    kymographs = property(lambda self: self.root / "kymographs")
    interpret = property(lambda self: InterpretLayout(self.root / "interpret"))

    per_video = property(lambda self: self.root / "per_video")  # finished videos, for resuming
    geometries = property(lambda self: self.root / "geometry")  # what a review needs
    edits = property(lambda self: self.root / "edits")  # a reviewer's corrections (sidecars)

    def geometry(self, video_id: str) -> Path:
        return self.geometries / f"{video_id}.npz"

    def edits_of(self, video_id: str) -> Path:
        return self.edits / f"{video_id}.json"

    def overlay(self, video_id: str) -> Path:
        return self.overlays / f"{video_id}.png"

    def per_video_meta(self, video_id: str) -> Path:
        return self.per_video / f"{video_id}.json"

    def per_video_row(self, video_id: str) -> Path:
        return self.per_video / f"{video_id}.video.parquet"

    def per_video_vessels(self, video_id: str) -> Path:
        return self.per_video / f"{video_id}.vessels.parquet"

    def kymograph(self, video_id: str) -> Path:
        return self.kymographs / f"{video_id}.png"


@dataclass(frozen=True)
class InterpretLayout:
    """Files of ``sepsiscope interpret``: MEASUREMENTS/interpret/."""

    root: Path

    auc = property(lambda self: self.root / "auc.csv")
    coefficients = property(lambda self: self.root / "coefficients.csv")
    patients = property(lambda self: self.root / "patients.csv")
    result = property(lambda self: self.root / "interpret.json")
