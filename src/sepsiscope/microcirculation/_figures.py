"""Figures of ``sepsiscope measure``: segment overlay and space-time diagrams of one video."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from sepsiscope._io import atomic_path, save_png
from sepsiscope.microcirculation import Analysis

# Okabe-Ito colours (Wong 2011, Nat Methods 8:441; told apart with every common colour-vision
# deficiency), the light ones chosen so that a line stays visible on a dark vessel: continuous sky
# blue, sluggish yellow, intermittent orange, none reddish purple (vermillion is too close to the
# orange in lightness). BGR for OpenCV. Every line has a black outline, which separates it from
# light tissue and from its neighbours.
CATEGORY_BGR = {
    "continuous": (233, 180, 86),
    "sluggish": (66, 228, 240),
    "intermittent": (0, 159, 230),
    "none": (167, 121, 204),
}
OUTLINE_BGR = (0, 0, 0)


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` as uint8, its 1st-99th percentile spread over 0-255."""
    low, high = np.percentile(image, (1, 99)) if image.size else (0.0, 1.0)
    return np.clip((image - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)


def save_overlay(path: str | os.PathLike, analysis: Analysis) -> Path:
    """The registered mean image with every centreline coloured by its flow category (PNG).

    At the video's own resolution (tiny videos are enlarged to at least 480 px); small vessels
    are drawn 1 px wide, large ones 2 px, each over a black outline 2 px wider. A legend in the
    top-left corner names each category with its count of segments.
    """
    grey = stretch_to_uint8(analysis.mean_image)
    scale = max(1, int(np.ceil(480 / max(grey.shape))))  # tiny test videos drawn legibly
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    lines = []
    for segment, flow in zip(analysis.segments, analysis.flows, strict=True):
        points = np.rint(segment.path_px[:, ::-1] * scale + (scale - 1) / 2).astype(np.int32)
        lines.append((points, (1 if segment.small else 2) * scale, flow.category))
    for points, thickness, _ in lines:  # all outlines first, so none covers a coloured line
        cv2.polylines(canvas, [points], False, OUTLINE_BGR, thickness + 2, cv2.LINE_AA)
    for points, thickness, category in lines:
        cv2.polylines(canvas, [points], False, CATEGORY_BGR[category], thickness, cv2.LINE_AA)
    counts = {name: 0 for name in CATEGORY_BGR}
    for flow in analysis.flows:
        counts[flow.category] += 1
    _legend(canvas, counts)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", canvas)
        if not ok:
            raise OSError(f"cannot encode {path}")
        tmp.write_bytes(data.tobytes())
    return Path(path)


def _legend(canvas: np.ndarray, counts: dict[str, int]) -> None:
    """Category swatches with their segment counts on a dark box in the top-left corner."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    labels = [f"{name} ({counts[name]})" for name in CATEGORY_BGR]
    width = max(cv2.getTextSize(label, font, size, 1)[0][0] for label in labels) + 26
    cv2.rectangle(canvas, (0, 0), (width, 8 + 16 * len(labels)), (40, 40, 40), -1)
    for i, (label, colour) in enumerate(zip(labels, CATEGORY_BGR.values(), strict=True)):
        y = 18 + 16 * i
        cv2.rectangle(canvas, (4, y - 10), (14, y), colour, -1)
        cv2.putText(canvas, label, (18, y), font, size, (255, 255, 255), 1, cv2.LINE_AA)


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
