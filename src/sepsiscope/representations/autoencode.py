"""``sepsiscope autoencode``: the study's unsupervised convolutional autoencoder, and a size sweep.

Each bottleneck size is trained without labels on the store's train split (Adam, mean squared
error) and validated on its val split. After every epoch a PNG shows the same seeded validation
frames beside their reconstructions with that epoch's validation MSE, PSNR and SSIM, which also go
to ``history.csv``. The best weights (lowest validation MSE) are saved as safetensors, and the
bottleneck features of every usable frame (train, val and test) are written for ``cluster``.

Several sizes (``bottleneck=(288, 576, 1152, 2304)``) make a sweep: ``sweep.csv`` and
``sweep.png`` show reconstruction quality against size and an identity-mapping check, and
``sweep.json`` names the recommended size (see :func:`recommend_bottleneck`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from sepsiscope._io import read_json, save_png, write_json, write_table, write_text
from sepsiscope._lock import writes
from sepsiscope._progress import track
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import AutoencoderLayout, RunLayout
from sepsiscope.models.autoencoder import (
    DEFAULT_BOTTLENECK,
    ConvAutoencoder,
    bottleneck_channels,
    to_unit_range,
)
from sepsiscope.representations import _training as _training
from sepsiscope.representations._reconstruction_quality import (
    mse_per_image,
    psnr_per_image,
    r2_per_image,
    ssim_per_image,
)
from sepsiscope.representations._shared import save_npy
from sepsiscope.representations.features import frame_index
from sepsiscope.settings import StageSettings

log = logging.getLogger(__name__)


class AutoencodeSettings(StageSettings):
    """Settings of ``sepsiscope autoencode``.

    ``bottleneck`` lists the sizes to train (named at 224 px: a multiple of 144). A size is
    recommended when its validation SSIM is within ``ssim_tolerance`` of the best size's and it
    does not pass the identity check (noise explained at least ``identity_ratio`` times as well
    as frames, see :func:`identity_check`).
    """

    bottleneck: tuple[int, ...] = (DEFAULT_BOTTLENECK,)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    input_mode: Literal["single", "time"] = "single"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 0
    n_preview: int = Field(8, ge=1, le=32)
    max_frames_per_epoch: int | None = Field(None, ge=1)
    max_memory_gb: float = Field(8.0, gt=0)
    ssim_tolerance: float = Field(0.02, ge=0)
    identity_ratio: float = Field(0.5, gt=0)

    @field_validator("bottleneck", mode="before")
    @classmethod
    def _parse_sizes(cls, value: Any) -> Any:
        if isinstance(value, int):
            return (value,)
        if isinstance(value, str):
            try:
                return tuple(int(v) for v in value.split(",") if v.strip())
            except ValueError as exc:
                raise ValueError(f"bottleneck must be sizes separated by commas: {value}") from exc
        return value

    @field_validator("bottleneck")
    @classmethod
    def _check_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("give at least one bottleneck size")
        for size in value:
            bottleneck_channels(size)
        return tuple(sorted(set(value)))


@writes("run_dir", "autoencode")
def autoencode(
    store_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    settings: AutoencodeSettings | None = None,
    *,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train one autoencoder per bottleneck size and save models, histories and features.

    Parameters
    ----------
    store_dir : frame store written by ``sepsiscope ingest`` (train and val splits used).
    run_dir : run folder; outputs go to ``RUN/autoencoder/b<size>/`` and ``RUN/autoencoder/``.
    resume : continue each size from its ``checkpoints/last.ckpt`` (e.g. with more epochs).

    Returns
    -------
    dict with ``feature_dim`` and ``recommended_bottleneck``, per-size figures under ``models``
    and the files written under ``files``.

    Example
    -------
    >>> autoencode("store", "run", AutoencodeSettings(epochs=5))  # doctest: +SKIP
    """
    settings = settings or AutoencodeSettings()
    store = FrameStore(store_dir)
    run = RunLayout(run_dir)
    data = _training.load_splits(store, settings, quiet=quiet)
    for bottleneck in settings.bottleneck:
        layout = run.autoencoder_model(bottleneck)
        model, history = _training.fit(
            data, layout, bottleneck, settings, resume=resume, quiet=quiet
        )
        quality = identity_check(model, data.check_frames, settings, seed=settings.seed)
        _save_model(model, layout, settings, store)
        _write_features(model, store, layout, settings, quiet=quiet)
        best = history.loc[history["val_mse"].idxmin()]
        row = {
            "bottleneck": bottleneck,
            "feature_dim": model.feature_dim,
            "epochs": int(history["epoch"].max()),
            "best_epoch": int(best["epoch"]),
            "val_mse": float(best["val_mse"]),
            "val_psnr_db": float(best["val_psnr_db"]),
            "val_ssim": float(best["val_ssim"]),
            **quality,
        }
        write_json(layout.quality, row)
    sweep = _sweep_table(run)
    recommended = recommend_bottleneck(sweep, ssim_tolerance=settings.ssim_tolerance)
    files = _write_sweep(run, sweep, recommended, settings)
    chosen = sweep.set_index("bottleneck").loc[recommended]
    return {
        "run_dir": str(run.root),
        "feature_dim": int(chosen["feature_dim"]),
        "recommended_bottleneck": int(recommended),
        "val_mse": float(chosen["val_mse"]),
        "val_psnr_db": float(chosen["val_psnr_db"]),
        "val_ssim": float(chosen["val_ssim"]),
        "models": {str(r["bottleneck"]): r for r in sweep.to_dict(orient="records")},
        "trained": list(settings.bottleneck),
        "files": files + [str(run.autoencoder_model(b).root) for b in settings.bottleneck],
    }


def _sweep_table(run: RunLayout) -> pd.DataFrame:
    """One row per size trained in this run folder (this call's and earlier calls')."""
    rows = [read_json(q) for q in sorted(run.autoencoder.glob("b*/quality.json"))]
    rows = [r for r in rows if "bottleneck" in r]
    return pd.DataFrame(rows).sort_values("bottleneck").reset_index(drop=True)


def recommend_bottleneck(sweep: pd.DataFrame, *, ssim_tolerance: float = 0.02) -> int:
    """The smallest size whose val SSIM is within ``ssim_tolerance`` of the best size's.

    Sizes flagged ``identity_like`` are passed over unless every size is flagged.
    """
    candidates = sweep[~sweep["identity_like"]] if (~sweep["identity_like"]).any() else sweep
    good = candidates[candidates["val_ssim"] >= sweep["val_ssim"].max() - ssim_tolerance]
    if good.empty:  # the best sizes are all identity-like: take the best of the rest
        good = candidates[candidates["val_ssim"] == candidates["val_ssim"].max()]
    return int(good["bottleneck"].min())


def probe_images(size: int, *, seed: int = 0, n_noise: int = 8) -> dict[str, torch.Tensor]:
    """Inputs unlike any vessel frame, ``(n, 3, size, size)`` in [0, 1]: uniform noise and
    checkerboards with squares of 2, 4, 8 and 16 px."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n_noise, 3, size, size, generator=generator)
    yy, xx = np.mgrid[:size, :size]
    boards = [((yy // p + xx // p) % 2).astype(np.float32) for p in (2, 4, 8, 16)]
    checker = torch.from_numpy(np.stack(boards))[:, None].expand(-1, 3, -1, -1).contiguous()
    return {"noise": noise, "checkerboard": checker}


@torch.no_grad()
def identity_check(
    model: ConvAutoencoder, frames: torch.Tensor, settings: AutoencodeSettings, *, seed: int = 0
) -> dict[str, Any]:
    """Reconstruction quality of frames against inputs unlike any frame.

    A bottleneck that explains noise (R², the share of pixel variance reconstructed) at least
    ``settings.identity_ratio`` times as well as it explains frames is large enough to learn the
    identity rather than what frames share; it is flagged ``identity_like``.
    """
    model.eval()
    device = next(model.parameters()).device
    x = to_unit_range(frames.to(device), settings.input_mode)
    result: dict[str, Any] = {}
    inputs = {"frame": x} | {
        k: v.to(device) for k, v in probe_images(model.size, seed=seed).items()
    }
    for name, batch in inputs.items():
        recon = model(batch).float()
        result[f"{name}_mse"] = float(mse_per_image(batch, recon).mean())
        result[f"{name}_psnr_db"] = float(psnr_per_image(batch, recon).mean())
        result[f"{name}_ssim"] = float(ssim_per_image(batch, recon).mean())
        result[f"{name}_r2"] = float(r2_per_image(batch, recon).mean())
    frame_r2, noise_r2 = result["frame_r2"], result["noise_r2"]
    # A model that explains no frame variance (R² <= 0) has no meaningful ratio; it is identity-
    # like only if it still explains some of the noise.
    result["identity_ratio"] = noise_r2 / frame_r2 if frame_r2 > 0 else None
    result["identity_like"] = bool(noise_r2 > 0 and noise_r2 >= settings.identity_ratio * frame_r2)
    return result


def _save_model(
    model: ConvAutoencoder, layout: AutoencoderLayout, settings: AutoencodeSettings, store
) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = layout.model.with_suffix(".tmp")
    save_file(
        state, str(tmp), metadata={"bottleneck": str(model.bottleneck), "size": str(model.size)}
    )
    os.replace(tmp, layout.model)
    settings.save(layout.settings)


def load_autoencoder(
    run_dir: str | os.PathLike, bottleneck: int | None = None
) -> tuple[ConvAutoencoder, AutoencodeSettings]:
    """The trained autoencoder of a run (the recommended size when ``bottleneck`` is None)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    run = RunLayout(run_dir)
    bottleneck = bottleneck or trained_bottleneck(run)
    layout = run.autoencoder_model(bottleneck)
    if not layout.model.exists():
        raise InputError(f"no autoencoder b{bottleneck} in {run.root}: run `sepsiscope autoencode`")
    with safe_open(str(layout.model), "pt") as f:
        size = int(f.metadata()["size"])
    model = ConvAutoencoder(bottleneck, size=size)
    model.load_state_dict(load_file(str(layout.model)))
    return model.eval(), AutoencodeSettings.load(layout.settings)


def trained_bottleneck(run: RunLayout) -> int:
    """The recommended size of a run's sweep; InputError when there is no autoencoder."""
    if not run.autoencoder_sweep.exists():
        raise InputError(f"no autoencoder in {run.root}: run `sepsiscope autoencode` first")
    return int(read_json(run.autoencoder_sweep)["recommended_bottleneck"])


@torch.no_grad()
def _write_features(
    model: ConvAutoencoder,
    store: FrameStore,
    layout: AutoencoderLayout,
    settings: AutoencodeSettings,
    *,
    quiet: bool,
) -> None:
    model.eval()
    device = next(model.parameters()).device

    tables = [frame_index(store, split) for split in ("train", "val", "test")]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True)
    features = np.empty((len(table), model.feature_dim), np.float32)
    chunk = 256
    starts = range(0, len(table), chunk)
    for start in track(starts, description=f"features b{model.bottleneck}", quiet=quiet):
        x = torch.from_numpy(store.read_table(table.iloc[start : start + chunk]))
        codes = model.encode(to_unit_range(x.to(device), settings.input_mode)).float()
        features[start : start + chunk] = codes.cpu().numpy()
    save_npy(layout.features, features)
    write_table(layout.features_index, table)


def _write_sweep(
    run: RunLayout, sweep: pd.DataFrame, recommended: int, settings: AutoencodeSettings
) -> list[str]:
    write_text(run.autoencoder_sweep_table, sweep.to_csv(index=False))
    criterion = (
        f"smallest bottleneck with val SSIM >= best - {settings.ssim_tolerance} and noise R² < "
        f"{settings.identity_ratio} x frame R²"
    )
    write_json(
        run.autoencoder_sweep,
        {
            "recommended_bottleneck": recommended,
            "criterion": criterion,
            "sizes": sweep.to_dict(orient="records"),
        },
    )
    import matplotlib.pyplot as plt

    fig, (ax_ssim, ax_r2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_ssim.plot(sweep["bottleneck"], sweep["val_ssim"], "o-", label="validation frames")
    ax_ssim.plot(sweep["bottleneck"], sweep["noise_ssim"], "s--", label="uniform noise")
    ax_ssim.plot(sweep["bottleneck"], sweep["checkerboard_ssim"], "^:", label="checkerboards")
    ax_ssim.set(xlabel="bottleneck features (224 px)", ylabel="SSIM", xscale="log")
    ax_r2.plot(sweep["bottleneck"], sweep["frame_r2"], "o-", label="validation frames")
    ax_r2.plot(sweep["bottleneck"], sweep["noise_r2"], "s--", label="uniform noise")
    ax_r2.set(xlabel="bottleneck features (224 px)", ylabel="variance explained (R²)", xscale="log")
    for ax in (ax_ssim, ax_r2):
        ax.set_xticks(sweep["bottleneck"], [str(b) for b in sweep["bottleneck"]])
        ax.minorticks_off()
        ax.axvline(recommended, color="grey", lw=0.8)
        ax.legend(fontsize=7)
    fig.suptitle(f"Reconstruction against bottleneck size; recommended {recommended}")
    save_png(run.autoencoder_sweep_png, fig)
    return [
        str(run.autoencoder_sweep),
        str(run.autoencoder_sweep_table),
        str(run.autoencoder_sweep_png),
    ]
