"""Explanations: Grad-CAM on the classifier's last convolutional layer, and overlay figures.

Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2): the channel weights are the spatial means of
the gradient of the target score with respect to ``layer2``'s activations ``A`` (128 channels at
1/8 of the input side); the map is ``ReLU(sum_c w_c A_c)``, upsampled bilinearly to the input and
scaled to [0, 1] per sample. With one logit (septic), the target "septic" is the logit and
"non-septic" its negative; "predicted" takes the class the threshold gives. Written with hooks;
no MONAI dependency.

Sanity checks (:func:`gradcam_sanity`, after Adebayo et al., NeurIPS 2018): the map is
non-negative and input-sized, it changes when the input changes, and it changes when ``layer2``'s
weights are randomised (a map that survives randomisation explains the image, not the model).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sepsiscope._io import save_png, write_table
from sepsiscope._progress import track
from sepsiscope._runinfo import load_run
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout, explanation_png, safe_name
from sepsiscope.models.classifier import prepare_batch
from sepsiscope.settings import StageSettings

log = logging.getLogger(__name__)

TARGETS = ("predicted", "septic", "non-septic")


class GradCAM:
    """Grad-CAM maps for a SepsisNet (or any model with a ``layer2``).

    Example
    -------
    >>> cams, probs = GradCAM(model, input_mode="time")(samples)  # doctest: +SKIP
    >>> cams.shape                                                  # (n, S, S) in [0, 1]
    """

    def __init__(self, model: nn.Module, *, input_mode: str, layer: str = "layer2") -> None:
        self.model = model.eval()
        self.input_mode = input_mode
        self.layer = getattr(model, layer)

    def __call__(
        self,
        samples: np.ndarray,
        *,
        target: str = "predicted",
        threshold: float = 0.5,
        batch_size: int = 32,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps ``(n, S, S)`` float32 in [0, 1] and probabilities ``(n,)`` for uint8 samples
        ``(n, 3, S, S)``."""
        if target not in TARGETS:
            raise InputError(f"unknown target {target!r}: use one of {TARGETS}")
        cams, probs = [], []
        for start in range(0, len(samples), batch_size):
            cam, prob = self._batch(samples[start : start + batch_size], target, threshold)
            cams.append(cam)
            probs.append(prob)
        if not cams:
            side = samples.shape[-1]
            return np.zeros((0, side, side), np.float32), np.zeros(0, np.float32)
        return np.concatenate(cams), np.concatenate(probs)

    def _batch(self, samples: np.ndarray, target: str, threshold: float):
        captured: dict[str, torch.Tensor] = {}

        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            captured["a"] = output

        handle = self.layer.register_forward_hook(hook)
        try:
            device = next(self.model.parameters()).device
            x = prepare_batch(
                torch.from_numpy(np.ascontiguousarray(samples)).to(device), self.input_mode
            ).requires_grad_(True)
            with torch.enable_grad():
                logits = self.model(x).float()
                prob = torch.sigmoid(logits).detach()
                if target == "septic":
                    sign = torch.ones_like(logits)
                elif target == "non-septic":
                    sign = -torch.ones_like(logits)
                else:
                    sign = torch.where(prob >= threshold, 1.0, -1.0)
                (grad,) = torch.autograd.grad((sign * logits).sum(), captured["a"])
        finally:
            handle.remove()
        activation = captured["a"].detach()
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activation).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=samples.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam[:, 0].clamp_min(0)
        top = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        cam = torch.where(top > 1e-12, cam / top, torch.zeros_like(cam))
        return cam.cpu().numpy().astype(np.float32), prob.cpu().numpy().astype(np.float32)


def gradcam_sanity(model: nn.Module, samples: np.ndarray, *, input_mode: str) -> dict[str, Any]:
    """Property checks of Grad-CAM on ``samples`` (see module notes); all booleans should hold.

    ``input_change``: mean |Δmap| when each sample is flipped left-right (maps compared after
    flipping back); ``randomisation_correlation``: mean correlation between the maps of the model
    and of a copy whose ``layer2`` weights are re-drawn (low = the map depends on the model).
    """
    cams, _ = GradCAM(model, input_mode=input_mode)(samples, target="septic")
    flipped, _ = GradCAM(model, input_mode=input_mode)(
        np.ascontiguousarray(samples[..., ::-1]), target="septic"
    )
    input_change = float(np.abs(flipped[..., ::-1] - cams).mean())
    random_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in random_model.layer2.modules():
            if isinstance(module, nn.Conv2d):
                std = module.weight.std().item() or 0.05
                noise = torch.randn(module.weight.shape, generator=generator)
                module.weight.copy_(noise * std)
    random_cams, _ = GradCAM(random_model, input_mode=input_mode)(samples, target="septic")
    corr = [_correlation(a, b) for a, b in zip(cams, random_cams, strict=True)]
    return {
        "non_negative": bool((cams >= 0).all()),
        "in_unit_range": bool((cams <= 1 + 1e-6).all()),
        "input_sized": cams.shape[1:] == samples.shape[2:],
        "input_change": input_change,
        "changes_with_input": input_change > 1e-4,
        "randomisation_correlation": float(np.nanmean(corr)) if corr else float("nan"),
    }


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def overlay_rgb(grey: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """A heat map (``cam`` in [0, 1], jet) blended over a grey ``(S, S)`` uint8 image; RGB uint8."""
    import cv2

    heat = cv2.applyColorMap(np.clip(cam * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = heat[..., ::-1].astype(np.float32)
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    return np.clip((1 - alpha) * base + alpha * heat, 0, 255).astype(np.uint8)


class ExplainSettings(StageSettings):
    """Which samples to explain and how."""

    store: Path | None = Field(None, description="frame store; default: the run's own")
    split: Literal["train", "val", "test"] = "test"
    n: int = Field(8, ge=1, description="half highest, half lowest probability")
    indices: list[int] | None = Field(None, description="explain these rows instead")
    target: Literal["predicted", "septic", "non-septic"] = "predicted"
    out: Path | None = Field(
        None, description="output folder; default RUN/explanations (a VIDEO: .../videos/NAME)"
    )
    fps: float | None = Field(None, gt=0, description="frame rate of a VIDEO that has none")
    um_per_px: float | None = Field(
        None, gt=0, description="scale of a VIDEO (runs ingested with field_um need one)"
    )


def _figure(sample: np.ndarray, cam: np.ndarray, title: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    axes[0].imshow(sample[0], cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("frame (channel t)", fontsize=9)
    axes[1].imshow(overlay_rgb(sample[0], cam))
    axes[1].set_title("Grad-CAM (layer2)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def _store_samples(run_dir: Path, settings: ExplainSettings) -> tuple[pd.DataFrame, np.ndarray]:
    from sepsiscope._io import read_json
    from sepsiscope.store import FrameStore

    store_dir = settings.store
    layout = RunLayout(run_dir)
    if store_dir is None and layout.model_settings.exists():
        saved = read_json(layout.model_settings)
        store_dir = saved.get("store") or saved.get("settings", {}).get("store")
    if store_dir is None:
        raise InputError(f"{run_dir}: the run does not name its frame store; pass --store DIR")
    store = FrameStore(store_dir)
    table = store.samples(settings.split)
    if table.empty:
        raise InputError(f"{store_dir}: the {settings.split} split holds no usable samples")
    return table, store.read_table(table)


def _video_samples(
    run_dir: Path, video: Path, fps: float | None, um_per_px: float | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    from sepsiscope.predict import PredictSettings, predict_stream
    from sepsiscope.sources import file_frames
    from sepsiscope.video import probe_video, resolve_fps

    model, info = load_run(run_dir)
    fps = resolve_fps(fps, lambda: probe_video(video).fps, source=str(video), hint="give --fps")
    rows, chunks = [], []

    def keep(samples: np.ndarray) -> np.ndarray:
        chunks.append(samples)
        return np.zeros(len(samples), np.float32)

    for update in predict_stream(
        file_frames(video, fps),
        keep,
        info,
        fps=fps,
        settings=PredictSettings(um_per_px=um_per_px),
        live=False,
    ):
        rows.extend(r for r in update.rows if r["usable"])
    table = pd.DataFrame(rows)
    if table.empty:
        raise InputError(f"{video}: no frame passed the quality gate")
    table["video_id"] = Path(video).stem
    table["row"] = table["frame_index"]
    return table, np.concatenate(chunks)


def _folder_name(video: Path) -> str:
    """A video's name as a folder name: its stem (a frame folder's own name), safe characters."""
    return safe_name(video.name if video.is_dir() else video.stem)


def explain(
    run_dir: str | os.PathLike,
    settings: ExplainSettings | None = None,
    *,
    video: str | os.PathLike | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Grad-CAM overlays of chosen samples of a store split, or of one video.

    Returns ``{"out", "pngs", "table", "sanity"}``: the overlay PNGs (highest then lowest
    probability, or ``indices``), a table of what each shows, and :func:`gradcam_sanity`.
    """
    settings = settings or ExplainSettings()
    run_dir = Path(run_dir)
    model, info = load_run(run_dir)
    if video is not None:
        table, samples = _video_samples(run_dir, Path(video), settings.fps, settings.um_per_px)
    else:
        table, samples = _store_samples(run_dir, settings)
    cam = GradCAM(model, input_mode=info.input_mode)
    if settings.indices:
        bad = [i for i in settings.indices if not 0 <= i < len(table)]
        if bad:
            raise InputError(f"indices {bad} out of range: there are {len(table)} samples")
        chosen = list(dict.fromkeys(settings.indices))
    else:
        _, probs = cam(samples, target="septic")
        order = np.argsort(-probs, kind="stable")
        high, low = order[: (settings.n + 1) // 2], order[::-1][: settings.n // 2]
        chosen = list(dict.fromkeys([*high.tolist(), *low.tolist()]))
    maps, probs = cam(samples[chosen], target=settings.target, threshold=info.threshold)
    if settings.out:
        out = Path(settings.out)
    elif video is not None:  # apart from the split's table and overlays, one folder per video
        out = RunLayout(run_dir).video_explanations / _folder_name(Path(video))
    else:
        out = RunLayout(run_dir).explanations
    records = []
    for rank, (index, heat, p) in enumerate(
        track(list(zip(chosen, maps, probs, strict=True)), description="explain", quiet=quiet)
    ):
        row = table.iloc[index]
        verdict = "septic" if p >= info.threshold else "non-septic"
        title = f"{row['video_id']} row {int(row['row'])}: p(septic) = {p:.2f} -> {verdict}"
        if "label" in row and isinstance(row["label"], str):
            title += f" (label {row['label']})"
        png = explanation_png(out, rank, str(row["video_id"]), int(row["row"]))
        save_png(png, _figure(samples[index], heat, title))
        records.append(
            {
                "rank": rank,
                "index": int(index),
                "video_id": str(row["video_id"]),
                "row": int(row["row"]),
                "probability": float(p),
                "png": str(png),
            }
        )
    index_table = write_table(out / "explanations.parquet", pd.DataFrame(records), csv=True)
    sanity = gradcam_sanity(
        model, samples[chosen[: min(4, len(chosen))]], input_mode=info.input_mode
    )
    return {
        "out": str(out),
        "pngs": [r["png"] for r in records],
        "table": str(index_table),
        "n": len(records),
        "target": settings.target,
        "sanity": sanity,
    }
