"""Train the classifier on a frame store, choosing the model by its validation patients' AUC.

Example
-------
>>> from sepsiscope.classifier.train import TrainSettings, train
>>> result = train("store", "run", TrainSettings(epochs=10))   # doctest: +SKIP
>>> result["best_val_patient_auc"]                             # doctest: +SKIP

Lightning is the engine (checkpoints, resume, bf16, DDP). See docs/training.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from pydantic import Field
from sklearn.metrics import roc_auc_score
from torch import nn

from sepsiscope._checkpoints import load_checkpoint, rebase_checkpoint
from sepsiscope._io import atomic_path, write_json
from sepsiscope._lock import writes
from sepsiscope._progress import lightning_progress
from sepsiscope.classifier._augment import augment_batch
from sepsiscope.classifier._train_data import StoreData
from sepsiscope.data.splits import split_tables
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError, SepsiscopeError
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import SepsisNet, load_resnet18_trunk, prepare_batch
from sepsiscope.models.precision import precision_reason, use_bf16
from sepsiscope.settings import StageSettings, provenance

log = logging.getLogger(__name__)
MONITOR = "val_patient_auc"
# Model selection and early stopping: the validation patients' AUC, ties broken by the frame
# log-loss (see _selection_score).
SELECTION = "val_selection_score"


class TrainSettings(StageSettings):
    """Settings of ``sepsiscope train`` (defaults documented in docs/training.md)."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["cosine", "plateau", "none"] = "cosine"
    patience: int = Field(6, ge=1, description="epochs without a better val patient AUC")
    # single since session 7: it generalised to another renderer's cameras, time did not
    # (docs/training.md, "Input modes")
    input_mode: Literal["time", "single"] = "single"
    augment: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    init: str | None = None
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    max_frames_per_epoch: int | None = Field(None, ge=1)
    checkpoint_every_n_steps: int = Field(50, ge=1)
    bn_calibration_samples: int = Field(
        1024,
        ge=0,
        description="train samples that set BatchNorm's statistics before each "
        "validation (0: keep the running averages of training)",
    )
    in_memory_limit_gb: float = Field(2.0, ge=0)
    num_workers: int | None = Field(None, ge=0)
    deterministic: bool = False
    split_by: Literal["patient", "frame", "all"] = Field(
        "patient",
        description="patient: the store's split or fold; frame: LEAKY, for study; all: every "
        "patient trains for exactly `epochs`, no validation, no selection (crossval --refit)",
    )
    fold: int | None = Field(None, ge=0)


class NonFiniteError(SepsiscopeError):
    """The loss or the weights became NaN or infinite."""


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class SepsisModule(L.LightningModule):
    """SepsisNet with its loss (BCE, positive class weighted), augmentation and patient AUC."""

    def __init__(self, settings: TrainSettings, pos_weight: float) -> None:
        super().__init__()
        self.settings = settings
        self.model = SepsisNet(dropout=settings.dropout).to(memory_format=torch.channels_last)
        self.register_buffer("pos_weight", torch.tensor([pos_weight]), persistent=False)
        self._val: list[tuple[torch.Tensor, ...]] = []

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return prepare_batch(x, self.settings.input_mode).contiguous(
            memory_format=torch.channels_last
        )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        if self.settings.augment:
            g = torch.Generator(device=x.device)
            g.manual_seed(self.settings.seed * 1_000_003 + self.global_step * 97 + self.global_rank)
            x = augment_batch(x, g)
        logits = self.model(self._input(x)).float()
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)
        if not torch.isfinite(loss):
            raise NonFiniteError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}: stopped; the last good checkpoint is kept. Lower the "
                f"learning rate (now {self.settings.lr:g}) or use --precision fp32"
            )
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)  # fmt: skip
        return loss

    def on_validation_epoch_start(self) -> None:
        # BatchNorm's running statistics are set afresh on unaugmented train samples before each
        # validation, so validation, model selection and the checkpoints (saved after
        # validation) use statistics of these very weights. With momentum 0.1 the running
        # averages are those of the last ~10-20 steps (0.9**22 = 10 %), of augmented batches
        # and of earlier weights: on a store of 84 train frames (3 steps per epoch) val loss rose
        # 0.64 -> 2.14 over 4 epochs as the weights improved, selection kept epoch 0 and test
        # patient AUC was 0.50; recalibrated, val loss fell 0.50 -> 0.24 and test AUC was 1.0.
        # Not skipped on long epochs: the lag is smaller there, but augmentation (blur, noise,
        # gamma) still shifts the statistics from those of the unaugmented inputs that
        # validation and prediction see, and the cost is bounded: a sample costs 0.3-0.4 of a
        # training frame (forward only), so at most ~400 training frames' worth per epoch, about
        # +35 % on epochs under 1,024 frames, 4 % at 10,000, 1 % at 40,000.
        n = self.settings.bn_calibration_samples
        if n == 0 or self.trainer.sanity_checking:
            return
        batches = self.trainer.datamodule.calibration_batches(n, 2 * self.settings.batch_size)
        with self.trainer.precision_plugin.forward_context():  # the training step's autocast
            recalibrate_batchnorm(self.model, (self._input(x.to(self.device)) for x in batches))

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, video = batch
        logits = self.model(self._input(x)).float()
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=self.pos_weight)
        self.log("val_loss", loss, on_epoch=True, batch_size=len(y), sync_dist=True)
        self._val.append((torch.sigmoid(logits).cpu(), y.cpu(), video.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        prob, y, video = (torch.cat(t).double().numpy() for t in zip(*self._val, strict=True))
        self._val.clear()
        frame_auc = roc_auc_score(y, prob) if len(set(y)) == 2 else float("nan")
        # as `sepsiscope evaluate` scores patients: the mean of each video, then of the videos
        video = video.astype(np.int64)
        by_video = pd.DataFrame({"v": video, "prob": prob, "y": y}).groupby("v").mean()
        by_video["p"] = self.trainer.datamodule.video_patient[by_video.index.to_numpy()]
        by_patient = by_video.groupby("p")[["prob", "y"]].mean()
        two_classes = by_patient["y"].nunique() == 2
        auc = roc_auc_score(by_patient["y"], by_patient["prob"]) if two_classes else float("nan")
        # every rank saw all validation frames, so the values agree; sync_dist only averages them
        self.log(MONITOR, float(auc), prog_bar=True, sync_dist=True)
        self.log("val_frame_auc", float(frame_auc), sync_dist=True)
        self.log(SELECTION, _selection_score(auc, by_patient["y"], prob, y), sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        bad = [k for k, v in checkpoint["state_dict"].items()
               if v.is_floating_point() and not torch.isfinite(v).all()]  # fmt: skip
        if bad:
            raise NonFiniteError(
                f"the weights became non-finite ({bad[0]}) at step {self.global_step}: stopped "
                "without saving them; the last good checkpoint is kept. Lower the learning rate"
            )

    def configure_optimizers(self):
        s = self.settings
        opt = torch.optim.Adam(self.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        if s.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.epochs, eta_min=s.lr * 0.01)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if s.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "max", factor=0.5, patience=2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": MONITOR}}
        return opt


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's running mean and variance to their average over ``batches``.

    ``batches`` are network inputs (already prepared). The running statistics are reset and
    accumulated as a cumulative average (momentum ``None``) in one forward pass in train mode
    without gradients; each layer's momentum, mode and step counter are restored, and the
    weights are untouched. Returns the number of samples seen (0 leaves the statistics as they
    were).
    """
    kind = nn.modules.batchnorm._BatchNorm
    norms = [m for m in model.modules() if isinstance(m, kind) and m.track_running_stats]
    saved = [(m.momentum, m.training, {k: v.clone() for k, v in m.named_buffers()})
             for m in norms]  # fmt: skip
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                seen += len(x)
    finally:
        for m, (momentum, training, buffers) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.train(training)
            keep = buffers if seen == 0 else {"num_batches_tracked": buffers["num_batches_tracked"]}
            for name, value in keep.items():
                getattr(m, name).copy_(value)
    return seen


def _selection_score(
    patient_auc: float, patient_y: pd.Series, prob: np.ndarray, y: np.ndarray
) -> float:
    """Validation patient AUC minus a tie-breaker smaller than half its resolution.

    With few validation patients the AUC takes few values (steps of 1 / (n_septic x
    n_non_septic)) and often reaches 1.0 after an epoch or two; among epochs of equal AUC the one
    with the lower frame log-loss (capped at 1) wins, and no loss can outweigh a real AUC step.
    """
    n_pos = int(patient_y.sum())
    step = 1.0 / max(n_pos * (len(patient_y) - n_pos), 1)
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(patient_auc) - 0.5 * step * min(log_loss, 1.0)


def _check_tables(tables: dict[str, pd.DataFrame], store: FrameStore, *, val: bool = True) -> None:
    for name in ("train", "val") if val else ("train",):
        t = tables[name]
        if t.empty:
            raise InputError(
                f"{store.root}: the {name} split has no usable frames: no patient is assigned to "
                "it, or ingest's quality gate flagged all its samples (`sepsiscope store info` "
                "lists the exclusions by reason, e.g. videos under min_duration_s)"
            )
        labels = set(t["y"].astype(int))
        level = "frames" if name == "train" else "patients"
        if len(labels) < 2:
            only = "septic" if 1 in labels else "non-septic"
            raise InputError(
                f"{store.root}: the {name} split holds only {only} {level}; the classifier needs "
                "septic and non-septic patients in both train and validation"
            )


def _check_resume(layout: RunLayout, settings: TrainSettings, resume: bool, overwrite: bool):
    last = layout.checkpoints / "last.ckpt"
    if resume and not last.exists():
        # killed before its first checkpoint: nothing to continue, so say so and start over
        log.warning("%s: no checkpoint to resume from: training from the start", layout.root)
        resume, overwrite = False, True
    if resume:
        try:
            rebase_checkpoint(last)  # a copied run resumes from its own files, not the original's
        except InputError as exc:
            raise InputError(
                f"{exc}; to go on, delete it and resume from best.ckpt renamed to last.ckpt, or "
                "train again with --overwrite"
            ) from exc
        if layout.model_settings.exists():
            old = TrainSettings.load(layout.model_settings)
            if old.input_mode != settings.input_mode:
                raise InputError(
                    f"{layout.root} was trained with input_mode={old.input_mode}; resume with "
                    f"--input-mode {old.input_mode}"
                )
        return last
    if layout.checkpoints.exists() and any(layout.checkpoints.iterdir()):
        if not overwrite:
            raise InputError(
                f"{layout.root} already holds a training run: pass --resume to continue it or "
                "--overwrite to start again"
            )
        shutil.rmtree(layout.checkpoints)
        shutil.rmtree(layout.train_logs, ignore_errors=True)
    return None


def _flatten_logs(log_dir: Path) -> pd.DataFrame:
    """One row per epoch from Lightning's CSV logs (all versions, for resumed runs)."""
    parts = [pd.read_csv(p) for p in sorted(log_dir.glob("version_*/metrics.csv"))]
    if not parts:
        return pd.DataFrame()
    logs = pd.concat(parts, ignore_index=True)
    return logs.groupby("epoch", as_index=False).last().drop(columns=["step"], errors="ignore")


@writes("run_dir", "train")
def train(
    store_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    settings: TrainSettings | None = None,
    *,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train SepsisNet on a store's train split, selecting by the val patients' AUC.

    Writes RUN/classifier/: model.safetensors (best-by-val weights), settings.json,
    checkpoints/{last,best}.ckpt, metrics.csv (one row per epoch), train.json (this result).
    Returns a JSON-able dict: paths, frame and patient counts, best epoch and val patient AUC.
    """
    settings = settings or TrainSettings()
    store = FrameStore(store_dir)
    layout = RunLayout(run_dir)
    if resume and "input_mode" not in settings.model_fields_set and layout.model_settings.exists():
        # a run resumes with the input it was trained on unless told otherwise (the default
        # changed in session 7; runs from before were trained on time channels)
        old = TrainSettings.load(layout.model_settings).input_mode
        settings = settings.model_copy(update={"input_mode": old})
    tables = split_tables(store, split_by=settings.split_by, fold=settings.fold, seed=settings.seed)
    refit = settings.split_by == "all"  # no validation: no selection, no early stopping
    _check_tables(tables, store, val=not refit)
    ckpt_path = _check_resume(layout, settings, resume, overwrite)
    if settings.split_by == "frame":
        log.warning(
            "LEAKY SPLIT: split_by='frame' puts frames of the same patient in train, validation "
            "and test. Its figures are inflated; use it only to measure that inflation."
        )
    train_t, val_t = tables["train"], tables["val"]
    n_pos = int(train_t["y"].sum())
    pos_weight = (len(train_t) - n_pos) / max(n_pos, 1)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    module = SepsisModule(settings, pos_weight)
    if settings.init and ckpt_path is None:
        load_resnet18_trunk(module.model, settings.init)
    data = StoreData(
        store, train_t, val_t, batch_size=settings.batch_size, seed=settings.seed,
        max_frames_per_epoch=settings.max_frames_per_epoch,
        in_memory_limit_gb=settings.in_memory_limit_gb, num_workers=settings.num_workers,
        quiet=quiet,
    )  # fmt: skip
    accelerator = settings.accelerator
    device = "cuda" if accelerator in ("gpu", "cuda") or (
        accelerator == "auto" and torch.cuda.is_available()) else "cpu"  # fmt: skip
    bf16 = use_bf16(settings.precision, device)
    ckpts = layout.checkpoints
    selection = [
        ModelCheckpoint(ckpts, "best", monitor=SELECTION, mode="max", save_top_k=1,
                        enable_version_counter=False, auto_insert_metric_name=False),
        EarlyStopping(SELECTION, mode="max", patience=settings.patience),
    ]  # fmt: skip
    callbacks = [
        *([] if refit else selection),
        ModelCheckpoint(ckpts, "last", monitor=None, save_top_k=1, every_n_epochs=1,
                        enable_version_counter=False),
        ModelCheckpoint(ckpts, "last", monitor=None, save_top_k=1,
                        every_n_train_steps=settings.checkpoint_every_n_steps,
                        enable_version_counter=False),
        *lightning_progress(quiet),
    ]  # fmt: skip
    if quiet:
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_epochs=settings.epochs, accelerator=accelerator, devices=settings.devices,
        num_nodes=settings.num_nodes, strategy=settings.strategy,
        precision="bf16-mixed" if bf16 else "32-true", callbacks=callbacks,
        logger=CSVLogger(layout.classifier, name="logs"), default_root_dir=layout.classifier,
        enable_progress_bar=not quiet, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, deterministic=settings.deterministic,
        log_every_n_steps=1, plugins=[_AtomicCheckpointIO()],
        limit_val_batches=0 if refit else None,
    )  # fmt: skip
    with warnings.catch_warnings():
        for noise in ("dataloader is not resumable", "does not have many workers",
                      "exists and is not empty", "LeafSpec"):  # fmt: skip
            warnings.filterwarnings("ignore", message=f".*{noise}.*")
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    if trainer.interrupted:
        raise SepsiscopeError(
            f"training was interrupted; continue with `sepsiscope train --resume --out {run_dir}`"
        )
    if not trainer.is_global_zero:
        return {}
    reason = precision_reason(settings.precision, device)
    return _finish(layout, settings, store, tables, bf16, pos_weight, data, reason)


def _refit_weights(
    layout: RunLayout, settings: TrainSettings, data: StoreData, bf16: bool
) -> dict[str, torch.Tensor]:
    """The last epoch's weights, BatchNorm statistics set on unaugmented train samples (what a
    selecting run's validation does before every checkpoint it keeps)."""
    state = load_checkpoint(layout.checkpoints / "last.ckpt")["state_dict"]
    model = SepsisNet(dropout=settings.dropout)
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    if settings.bn_calibration_samples:
        batches = data.calibration_batches(settings.bn_calibration_samples, 2 * settings.batch_size)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            recalibrate_batchnorm(model, (prepare_batch(x, settings.input_mode) for x in batches))
    return model.state_dict()


def _finish(layout, settings, store, tables, bf16, pos_weight, data, precision_why) -> dict:
    """Write the best weights (a refit: the last, BatchNorm recalibrated) as safetensors, the
    settings, the flat log and the result."""
    from safetensors.torch import save_file

    if settings.split_by == "all":
        weights = {
            k: v.contiguous() for k, v in _refit_weights(layout, settings, data, bf16).items()
        }
    else:
        # Always this run's own best.ckpt: the path Lightning keeps in a checkpoint is absolute,
        # so in a run folder copied from elsewhere it names the original folder's file.
        best_path = layout.checkpoints / "best.ckpt"
        if not best_path.exists():
            raise SepsiscopeError(f"training produced no best checkpoint in {layout.checkpoints}")
        state = load_checkpoint(best_path)["state_dict"]
        weights = {k.removeprefix("model."): v.contiguous() for k, v in state.items()}
    with atomic_path(layout.model) as tmp:
        save_file(weights, str(tmp))
    # The store is named beside the settings so evaluation finds the frames it was trained on.
    # sampling: the store's ingest settings, so predict samples new videos the same way
    # without the store (edit by helper F1 for predict).
    write_json(
        layout.model_settings,
        {
            "settings": settings.model_dump(mode="json"),
            "store": str(store.root.resolve()),
            "sampling": store.meta.get("settings", {}),
            **provenance(),
        },
    )
    logs = _flatten_logs(layout.train_logs)
    if not logs.empty:
        with atomic_path(layout.train_log) as tmp:
            logs.to_csv(tmp, index=False)
    if settings.split_by == "frame":
        split = pd.concat(tables.values())[["video_id", "row", "patient_id", "split"]]
        with atomic_path(layout.frame_split) as tmp:
            split.to_csv(tmp, index=False)
    best_auc = None
    last = load_checkpoint(layout.checkpoints / "last.ckpt")
    best_epoch = None
    if not logs.empty and SELECTION in logs:
        best_row = logs.loc[logs[SELECTION].idxmax()]
        best_epoch, best_auc = int(best_row["epoch"]), best_row[MONITOR]
    result = {
        "run": str(layout.root),
        "model": str(layout.model),
        "settings": str(layout.model_settings),
        "checkpoints": str(layout.checkpoints),
        "log": str(layout.train_log),
        "input_mode": settings.input_mode,
        "split_by": settings.split_by,
        "fold": settings.fold,
        "precision": "bf16" if bf16 else "fp32",
        "precision_reason": precision_why,
        # from the checkpoint: a spawned DDP run leaves this process's trainer at step 0
        "epochs_run": int(last.get("epoch", 0)) + 1,
        "global_step": int(last.get("global_step", 0)),
        "best_epoch": best_epoch,
        "best_val_patient_auc": None if best_auc is None else float(best_auc),
        "pos_weight": float(pos_weight),
        "in_memory": bool(data.in_memory),
        "train_frames": len(tables["train"]),
        "val_frames": len(tables["val"]),
        "train_patients": int(tables["train"]["patient_id"].nunique()),
        "val_patients": int(tables["val"]["patient_id"].nunique()),
        "stopped_early": int(last.get("epoch", 0)) + 1 < settings.epochs,
        "refit": settings.split_by == "all",
    }
    if settings.split_by == "frame":
        result["frame_split"] = str(layout.frame_split)
        result["warning"] = (
            "LEAKY SPLIT (split_by='frame'): patients are on both sides; these figures are "
            "inflated and must not be reported as performance"
        )
    write_json(layout.train_result, result)
    return result
