"""The annotated prediction video: frame, Grad-CAM overlay and the probability trace.

One output frame per sampled frame (and tile), at the sampling rate: the anchor frame (left), the
sample as the network saw it with its Grad-CAM map (right), and below them the per-sample
probabilities (dots), the rolling video probability with its interval (line and band) and the
threshold (red). Drawn with OpenCV so it keeps up with the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sepsiscope.apply._runinfo import RunInfo
from sepsiscope.apply._streaming import Update
from sepsiscope.data.video import write_video
from sepsiscope.models.gradcam import GradCAM, overlay_rgb

PANEL = 320  # px, side of the image panels
TRACE_H = 140
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fit(grey: np.ndarray, height: int) -> np.ndarray:
    width = max(2, round(grey.shape[1] * height / grey.shape[0]) // 2 * 2)
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def _trace(
    history: list[tuple[float, float, float, float, float]], width: int, threshold: float
) -> np.ndarray:
    """history: (time_s, probability, rolling, low, high) of the usable samples so far."""
    img = np.full((TRACE_H, width, 3), 24, np.uint8)
    top, bottom, left, right = 10, TRACE_H - 24, 36, width - 10
    span = max(10.0, history[-1][0] * 1.1) if history else 10.0

    def xy(t: float, p: float) -> tuple[int, int]:
        return int(left + (right - left) * t / span), int(bottom - (bottom - top) * p)

    cv2.rectangle(img, (left, top), (right, bottom), (80, 80, 80), 1)
    for p in (0.0, 0.5, 1.0):
        cv2.putText(img, f"{p:.1f}", (4, xy(0, p)[1] + 4), _FONT, 0.35, (160, 160, 160), 1)
    cv2.line(img, xy(0, threshold), xy(span, threshold), (220, 60, 60), 1)
    if history:
        band = [xy(t, hi) for t, _, _, _, hi in history] + [
            xy(t, lo) for t, _, _, lo, _ in reversed(history)
        ]
        overlay = img.copy()
        cv2.fillPoly(overlay, [np.array(band, np.int32)], (70, 70, 120))
        img = cv2.addWeighted(overlay, 0.5, img, 0.5, 0)
        for t, p, _, _, _ in history:
            cv2.circle(img, xy(t, p), 2, (90, 200, 230), -1)
        line = np.array([xy(t, r) for t, _, r, _, _ in history], np.int32)
        cv2.polylines(img, [line], False, (255, 255, 255), 2)
    cv2.putText(img, "time (s)", (right - 60, TRACE_H - 6), _FONT, 0.35, (160, 160, 160), 1)
    return img


def annotated_frames(
    updates: Iterable[Update], model: Any, info: RunInfo, threshold: float
) -> Iterator[np.ndarray]:
    """One annotated RGB frame per sampled frame of the stream of ``updates``."""
    cam = GradCAM(model, input_mode=info.input_mode)
    history: list[tuple[float, float, float, float, float]] = []
    for update in updates:
        maps, _ = cam(update.samples, threshold=threshold) if len(update.samples) else ([], [])
        i = 0
        for row, frame in zip(update.rows, update.frames, strict=True):
            left = cv2.cvtColor(_fit(frame, PANEL), cv2.COLOR_GRAY2RGB)
            if np.isfinite(row["probability"]):
                sample = update.samples[i]
                right = cv2.resize(overlay_rgb(sample[0], maps[i]), (PANEL, PANEL))
                i += 1
                history.append(
                    (
                        row["time_s"],
                        row["probability"],
                        row["rolling_probability"],
                        row["rolling_low"],
                        row["rolling_high"],
                    )
                )
                status = f"p={row['probability']:.2f}"
            else:
                right = np.zeros((PANEL, PANEL, 3), np.uint8)
                status = f"skipped: {row['skip_reason'] or 'quality'}"
            top = np.concatenate([left, right], axis=1)
            trace = _trace(history, top.shape[1], threshold)
            rolling = row["rolling_probability"]
            verdict = (
                ("septic" if rolling >= threshold else "non-septic")
                if np.isfinite(rolling)
                else "-"
            )
            text = (
                f"t={row['time_s']:.1f}s {status}  video p={rolling:.2f} "
                f"[{row['rolling_low']:.2f}, {row['rolling_high']:.2f}] {verdict}"
            )
            cv2.putText(top, text, (6, 18), _FONT, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
            cv2.putText(top, "research use only", (6, PANEL - 8), _FONT, 0.4, (200, 200, 200), 1)
            yield np.ascontiguousarray(np.concatenate([top, trace], axis=0))


def write_annotated(
    path: str | Path, updates: Iterable[Update], model: Any, info: RunInfo, *, threshold: float
) -> Path:
    """Consume ``updates`` and write the annotated video (H.264 .mp4, MJPEG .avi)."""
    fps = info.rate_hz or 2.0
    return write_video(path, annotated_frames(updates, model, info, threshold), fps=max(1.0, fps))
