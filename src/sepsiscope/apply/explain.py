"""``explain``: Grad-CAM overlays of a run's most confident frames, of a store split or a video.

The maps and their sanity checks are :mod:`sepsiscope.models.gradcam`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope._io import save_png, write_table
from sepsiscope._progress import track
from sepsiscope.apply._runinfo import load_run
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout, explanation_png, safe_name
from sepsiscope.models.gradcam import GradCAM, gradcam_sanity, overlay_rgb
from sepsiscope.settings import StageSettings

log = logging.getLogger(__name__)


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
    from sepsiscope.data.store import FrameStore

    store = FrameStore(RunLayout(run_dir).store_dir(settings.store))
    table = store.samples(settings.split)
    if table.empty:
        raise InputError(f"{store.root}: the {settings.split} split holds no usable samples")
    return table, store.read_table(table)


def _video_samples(
    run_dir: Path, video: Path, fps: float | None, um_per_px: float | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    from sepsiscope.apply.predict import PredictSettings, predict_stream
    from sepsiscope.apply.sources import file_frames
    from sepsiscope.data.video import probe_video, resolve_fps

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
