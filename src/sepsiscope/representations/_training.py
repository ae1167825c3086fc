"""Lightning glue of ``sepsiscope autoencode``: data in memory, the training module, the per-epoch
reconstruction figures and history, checkpoints and resume."""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import pandas as pd
import torch

from sepsiscope._checkpoints import load_checkpoint, rebase_checkpoint
from sepsiscope._io import save_png, write_text
from sepsiscope._progress import lightning_progress
from sepsiscope.classifier._train_data import StoreData
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import AutoencoderLayout
from sepsiscope.models.autoencoder import ConvAutoencoder, grid_side, to_unit_range
from sepsiscope.representations._reconstruction_quality import (
    mse_per_image,
    psnr_per_image,
    ssim_per_image,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sepsiscope.representations.autoencode import AutoencodeSettings

HISTORY_COLUMNS = ("epoch", "train_mse", "val_mse", "val_psnr_db", "val_ssim")


@dataclass
class SplitData:
    """The train and val data of a store, the seeded preview frames and the identity-check frames
    (``(n, 3, S, S)`` uint8). Batches come from training's :class:`StoreData`: in memory when
    the splits fit in ``max_memory_gb``, else read lazily by worker processes."""

    data: StoreData
    preview: torch.Tensor
    check_frames: torch.Tensor
    size: int


def load_splits(store: FrameStore, settings: AutoencodeSettings, *, quiet: bool) -> SplitData:
    """Frame tables of the usable train and val frames, and the fixed preview samples."""
    grid_side(store.size)  # a clear error for sizes the network cannot take
    train, val = store.samples("train"), store.samples("val")
    for name, table in (("train", train), ("val", val)):
        if len(table) == 0:
            raise InputError(f"{store.root}: the {name} split has no usable frames")
    rng = np.random.default_rng(settings.seed)
    preview = np.sort(rng.choice(len(val), min(settings.n_preview, len(val)), replace=False))
    data = StoreData(
        store, train, val, batch_size=settings.batch_size, seed=settings.seed,
        max_frames_per_epoch=settings.max_frames_per_epoch,
        in_memory_limit_gb=settings.max_memory_gb, num_workers=None, quiet=quiet,
    )  # fmt: skip
    return SplitData(
        data=data,
        preview=torch.from_numpy(store.read_table(val.iloc[preview])),
        check_frames=torch.from_numpy(store.read_table(val.iloc[:64])),
        size=store.size,
    )


class AutoencoderModule(L.LightningModule):
    """Adam and mean squared error on samples scaled to [0, 1]; validation MSE, PSNR and SSIM."""

    def __init__(
        self,
        model: ConvAutoencoder,
        settings: AutoencodeSettings,
        layout: AutoencoderLayout,
        preview: torch.Tensor,
    ) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.layout = layout
        self.preview = preview
        self._train_sum = self._train_n = 0.0
        self._val: list[torch.Tensor] = []
        self.history: pd.DataFrame = _read_history(layout)

    def _input(self, batch: Any) -> torch.Tensor:
        return to_unit_range(batch[0], self.settings.input_mode)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = self._input(batch)
        loss = torch.nn.functional.mse_loss(self.model(x).float(), x)
        self._train_sum += float(loss.detach()) * len(x)
        self._train_n += len(x)
        self.log("train_mse", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x = self._input(batch)
        # Figures in float32 whatever the training precision, so runs stay comparable.
        with torch.autocast(self.device.type, enabled=False):
            recon = self.model(x).float()
        per_image = [mse_per_image(x, recon), psnr_per_image(x, recon), ssim_per_image(x, recon)]
        self._val.append(torch.stack(per_image, 1).cpu())

    def on_validation_epoch_end(self) -> None:
        values = torch.cat(self._val).mean(0) if self._val else torch.full((3,), float("nan"))
        self._val = []
        mse, psnr, ssim = (float(v) for v in values)
        self.log_dict({"val_mse": mse, "val_psnr_db": psnr, "val_ssim": ssim})
        if self.trainer.sanity_checking:
            return
        self._val_figures = (mse, psnr, ssim)
        self._save_preview(self.current_epoch + 1, mse, psnr, ssim)

    def on_train_epoch_end(self) -> None:
        mse, psnr, ssim = getattr(self, "_val_figures", (np.nan,) * 3)
        epoch = self.current_epoch + 1
        row = {
            "epoch": epoch,
            "train_mse": self._train_sum / max(self._train_n, 1),
            "val_mse": mse,
            "val_psnr_db": psnr,
            "val_ssim": ssim,
        }
        self._train_sum = self._train_n = 0.0
        self.history = pd.concat(
            [self.history[self.history["epoch"] < epoch], pd.DataFrame([row])], ignore_index=True
        )
        write_text(self.layout.history, self.history.to_csv(index=False))

    @torch.no_grad()
    def _save_preview(self, epoch: int, mse: float, psnr: float, ssim: float) -> None:
        import matplotlib.pyplot as plt

        x = self._input((self.preview.to(self.device),))
        with torch.autocast(self.device.type, enabled=False):
            recon = self.model(x).float().clamp(0, 1).cpu().numpy()
        x = x.cpu().numpy()
        n = len(x)
        fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
        for i in range(n):
            for row, image in enumerate((x[i, 0], recon[i, 0])):
                axes[row, i].imshow(image, cmap="gray", vmin=0, vmax=1)
                axes[row, i].set_xticks([])
                axes[row, i].set_yticks([])
        axes[0, 0].set_ylabel("frame")
        axes[1, 0].set_ylabel("reconstruction")
        fig.suptitle(
            f"b{self.model.bottleneck}, epoch {epoch}: validation MSE {mse:.4f}, "
            f"PSNR {psnr:.1f} dB, SSIM {ssim:.3f}",
            fontsize=9,
        )
        save_png(self.layout.reconstruction_png(epoch), fig, dpi=90)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.settings.learning_rate)


def _read_history(layout: AutoencoderLayout) -> pd.DataFrame:
    if layout.history.exists():
        return pd.read_csv(layout.history)
    return pd.DataFrame(columns=list(HISTORY_COLUMNS))


def resolve_precision(precision: str) -> str:
    """Lightning precision: bf16 autocast where the GPU or CPU computes bf16 natively ('auto')."""
    from sepsiscope.models.precision import use_bf16

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16-mixed" if use_bf16(precision, device) else "32-true"


def fit(
    data: SplitData,
    layout: AutoencoderLayout,
    bottleneck: int,
    settings: AutoencodeSettings,
    *,
    resume: bool,
    quiet: bool,
) -> tuple[ConvAutoencoder, pd.DataFrame]:
    """Train one size; returns the best model (lowest val MSE) and the history table."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = layout.last_checkpoint if resume and layout.last_checkpoint.exists() else None
    if resume and ckpt is None:
        log.warning("%s: no checkpoint to resume from: training from the start", layout.root)
    if ckpt is not None:
        rebase_checkpoint(ckpt)  # a copied run resumes from its own files, not the original's
    if ckpt is None:  # a fresh start must not mix with an earlier run's epochs
        for path in (layout.checkpoints, layout.reconstructions):
            shutil.rmtree(path, ignore_errors=True)
        layout.history.unlink(missing_ok=True)
    layout.reconstructions.mkdir(parents=True, exist_ok=True)
    if quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    L.seed_everything(settings.seed, verbose=False)
    model = ConvAutoencoder(bottleneck, size=data.size)
    module = AutoencoderModule(model, settings, layout, data.preview)
    checkpoint = ModelCheckpoint(
        dirpath=layout.checkpoints,
        filename="best",
        monitor="val_mse",
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=settings.epochs,
        precision=resolve_precision(settings.precision),
        callbacks=[checkpoint, *lightning_progress(quiet)],
        logger=False,
        enable_progress_bar=not quiet,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    with warnings.catch_warnings():  # resuming into our own checkpoint folder is the point
        warnings.filterwarnings(
            "ignore", message=r"Checkpoint directory .* exists and is not empty"
        )
        trainer.fit(module, datamodule=data.data, ckpt_path=ckpt, weights_only=True)
    best = layout.checkpoints / "best.ckpt"  # not Lightning's absolute path: the folder may move
    state = load_checkpoint(best)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    history = _read_history(layout)
    return model.cpu().eval(), history
