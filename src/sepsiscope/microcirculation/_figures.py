"""Figures of ``sepsiscope measure``: segment overlay and space-time diagrams of one video."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from sepsiscope._io import atomic_path, save_png
from sepsiscope.microcirculation import Analysis

# Okabe-Ito colours (colour-blind safe), BGR for OpenCV: continuous blue, sluggish bluish
# green, intermittent orange, none vermillion
CATEGORY_BGR = {
    "continuous": (178, 114, 0),
    "sluggish": (115, 158, 0),
    "intermittent": (0, 159, 230),
    "none": (0, 94, 213),
}


def save_overlay(path: str | os.PathLike, analysis: Analysis) -> Path:
    """The registered mean image with every centreline coloured by its flow category (PNG).

    Small vessels are drawn 1 px wide, large ones 2 px; a legend sits in the top-left corner.
    """
    image = analysis.mean_image
    low, high = np.percentile(image, (1, 99))
    grey = np.clip((image - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
    scale = max(1, int(np.ceil(480 / max(grey.shape))))  # tiny test videos drawn legibly
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for segment, flow in zip(analysis.segments, analysis.flows, strict=True):
        points = np.rint(segment.path_px[:, ::-1] * scale + (scale - 1) / 2).astype(np.int32)
        thickness = 1 if segment.small else 2
        cv2.polylines(canvas, [points], False, CATEGORY_BGR[flow.category], thickness * scale)
    for i, (name, colour) in enumerate(CATEGORY_BGR.items()):
        y = 14 + 16 * i
        cv2.rectangle(canvas, (4, y - 10), (14, y), colour, -1)
        cv2.putText(canvas, name, (18, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", canvas)
        if not ok:
            raise OSError(f"cannot encode {path}")
        tmp.write_bytes(data.tobytes())
    return Path(path)


def pick_kymographs(analysis: Analysis, count: int) -> list[int]:
    """Indices of up to ``count`` long segments, one per flow category first, then the longest."""
    order = sorted(range(len(analysis.segments)), key=lambda i: -analysis.kymographs[i].shape[1])
    chosen: list[int] = []
    seen: set[str] = set()
    for i in order:
        if analysis.flows[i].category not in seen and analysis.kymographs[i].shape[1] >= 10:
            chosen.append(i)
            seen.add(analysis.flows[i].category)
    chosen += [i for i in order if i not in chosen]
    return chosen[:count]


def save_kymographs(
    path: str | os.PathLike, analysis: Analysis, *, fps: float, um_per_px: float, count: int = 4
) -> Path | None:
    """Up to ``count`` space-time diagrams side by side (position µm across, time s down)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = pick_kymographs(analysis, count)
    if not chosen:
        return None
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.6), squeeze=False)
    for ax, i in zip(axes[0], chosen, strict=False):
        k = analysis.kymographs[i]
        flow, segment = analysis.flows[i], analysis.segments[i]
        extent = (0, k.shape[1] * um_per_px, k.shape[0] / fps, 0)
        ax.imshow(k, cmap="gray", aspect="auto", extent=extent, interpolation="nearest")
        speed = (
            "v n/a" if not np.isfinite(flow.velocity_um_per_s)
            else f"v {flow.velocity_um_per_s:.0f} µm/s"
        )  # fmt: skip
        ax.set_title(
            f"#{i} {flow.category}, {speed}\n"
            f"{segment.length_um:.0f} µm long, {segment.diameter_um:.0f} µm wide",
            fontsize=8,
        )
        ax.set_xlabel("position along centreline (µm)", fontsize=8)
        ax.set_ylabel("time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return save_png(path, fig)
