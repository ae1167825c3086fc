"""One video to samples: streaming decode, ring buffer, quality, one atomic array write.

Runs in ingest's worker processes, so it takes and returns plain data. Memory is bounded by the
ring buffer (``2k + 1`` frames; up to 25 frames while a 16-bit video's white level is set) plus
this one video's 224 px samples, whatever the cohort size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sepsiscope._io import is_disk_full
from sepsiscope.data import frame_quality as fq
from sepsiscope.data.store import write_sample_array
from sepsiscope.data.video import VideoError, iter_frames, probe_video, resolve_fps, to_uint8
from sepsiscope.layout import StoreLayout

TRUNCATION_TOLERANCE = 0.9  # decoded / declared frames below this (and > 2 missing) = truncated


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames become samples: every ``every``-th frame, else ``rate_hz`` per second."""

    every: int | None
    rate_hz: float | None
    size: int
    crop: str
    channel_offset_s: float
    optimal_duration_s: float
    min_duration_s: float
    duration_gate: bool = False
    field_um: float | None = None

    def side_px(
        self, um_per_px: float | None, height: int, width: int, *, source: str, hint: str
    ) -> int | None:
        """Crop side in pixels for ``field_um`` (None without one), or a :class:`VideoError`.

        ``hint`` says how to give the scale where ``um_per_px`` is missing. Refused: a field of
        view smaller than ``field_um`` (padding would add a border the training samples never
        had), and a field of fewer pixels than the samples (upsampling would invent detail).
        """
        if self.field_um is None:
            return None
        where = f"{source}: " if source else ""
        if um_per_px is None or not np.isfinite(um_per_px) or um_per_px <= 0:
            raise VideoError(
                f"{where}samples of a fixed {self.field_um:g} µm field (field_um) need the "
                f"video's µm/px; {hint}"
            )
        side = fq.field_side_px(self.field_um, um_per_px)
        if side > min(height, width):
            raise VideoError(
                f"{where}the field of view, {width * um_per_px:.0f}x{height * um_per_px:.0f} "
                f"µm ({width}x{height} px at {um_per_px:g} µm/px), is smaller than the "
                f"{self.field_um:g} µm samples (field_um); ingest with a smaller field_um"
            )
        if side < self.size:
            raise VideoError(
                f"{where}{self.field_um:g} µm is {side} px at {um_per_px:g} µm/px, fewer than "
                f"the {self.size} px samples (upsampling would invent detail); use a larger "
                "field_um or a smaller size"
            )
        return side

    def step(self, fps: float) -> float:
        if self.every:
            return float(self.every)
        return max(1.0, fps / float(self.rate_hz or fps))

    @staticmethod
    def is_sample(t: int, step: float) -> bool:
        """True when frame ``t`` is the frame nearest to one of the times m * step."""
        return int(round(round(t / step) * step)) == t


def _strip_path(message: str, path: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def ingest_video(job: dict[str, Any]) -> dict[str, Any]:
    """Ingest one video; returns ``{"video": row, "frames": rows}`` or ``{"reason": text}``.

    ``job`` holds root, video_id, video (path), patient_id, label, y, site, camera, um_per_px,
    fps (NaN = from the container) and plan (a :class:`SamplingPlan`).
    """
    path = job["video"]
    try:
        return _ingest(job)
    except VideoError as exc:
        return {"reason": _strip_path(str(exc), path)}
    except MemoryError:
        return {"reason": "out of memory while decoding"}
    except Exception as exc:  # one odd file must never cost the other videos
        if is_disk_full(exc):
            raise  # not this video's fault: every one after it would fail too
        return {"reason": f"cannot be ingested ({type(exc).__name__}: {exc})"}


def _ingest(job: dict[str, Any]) -> dict[str, Any]:
    plan: SamplingPlan = job["plan"]
    path = Path(job["video"])
    info = probe_video(path)
    fps = resolve_fps(job["fps"], info.fps, source=str(path), hint="give fps in the manifest")
    if min(info.width, info.height) < plan.size:
        raise VideoError(
            f"{path}: frames of {info.width}x{info.height} px are smaller than the {plan.size} px "
            "samples (upsampling would invent detail); use a smaller --size"
        )
    k = round(plan.channel_offset_s * fps)
    span = 2 * k
    step = plan.step(fps)
    ring: deque[np.ndarray] = deque(maxlen=span + 1)
    # before decoding: a video without a usable scale is refused at once
    side_px = plan.side_px(
        job["um_per_px"], info.height, info.width, source=str(path),
        hint="give its um_per_px, or a known camera (microscan, cytocam), in the manifest row",
    )  # fmt: skip
    boxes = fq.crop_boxes(info.height, info.width, size=plan.size, crop=plan.crop, side_px=side_px)
    white, decoded = fq.peek_white_level(iter_frames(path), fps=fps, frame=lambda item: item[1])
    chunks: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    short = min(info.height, info.width)
    n_decoded = 0
    for index, frame in decoded:
        n_decoded = index + 1
        if frame.shape != (info.height, info.width):
            raise VideoError(f"{path}: frame {index} is {frame.shape}, the first frames were "
                             f"{(info.height, info.width)}")  # fmt: skip
        ring.append(frame)
        t = index - span
        if t < 0 or not plan.is_sample(t, step):
            continue
        stack = np.stack([to_uint8(ring[i], max_value=white) for i in (0, k, span)])
        quality = fq.frame_quality(stack[0])
        shift_px = fq.frame_shift_px(stack[0], stack[2]) if span else 0.0
        motion = shift_px / short / (span / fps) if span else 0.0
        samples = fq.make_samples(stack, size=plan.size, crop=plan.crop, side_px=side_px)
        chunks.append(samples)
        for tile, (y0, x0, side) in enumerate(boxes):
            rows.append(
                {
                    "frame_index": t,
                    "time_s": t / fps,
                    "tile": tile,
                    "crop_y": y0,
                    "crop_x": x0,
                    "crop_px": side,
                    "um_per_px": job["um_per_px"] * side / plan.size,
                    **quality,
                    "shift_px": shift_px,
                    "motion_field_per_s": motion,
                }
            )
    declared = info.n_frames if info.kind == "container" else 0
    if declared and n_decoded < TRUNCATION_TOLERANCE * declared and declared - n_decoded > 2:
        raise VideoError(
            f"{path}: truncated: decoded {n_decoded} of the {declared} frames its header declares"
        )
    if not chunks:
        raise VideoError(
            f"{path}: {n_decoded} frame(s) is too short for one sample "
            f"(needs {span + 1}: frames t, t+{k}, t+{span} at {fps:g} fps)"
        )
    samples = np.concatenate(chunks)
    write_sample_array(StoreLayout(job["root"]), job["video_id"], samples)
    frames, video = _score(job, rows, n_decoded / fps, plan)
    video.update(
        width=info.width, height=info.height, n_frames=n_decoded, fps=float(fps),
        codec=info.codec, bit_depth=info.bit_depth, white_level=int(white),
        channel_offset_frames=k, n_samples=len(samples),
    )  # fmt: skip
    return {"video": video, "frames": frames}


def _score(
    job: dict[str, Any], rows: list[dict[str, Any]], duration_s: float, plan: SamplingPlan
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Frame rows with final scores, and the video's quality summary."""
    frames = pd.DataFrame(rows)
    median_focus = float(frames["focus"].median())
    frames["focus_score"] = [fq.focus_score(f, video_median=median_focus) for f in frames["focus"]]
    frames["stability_score"] = [fq.stability_score(m) for m in frames["motion_field_per_s"]]
    frames["quality_score"] = (
        frames["illumination_score"] + frames["focus_score"] + frames["stability_score"]
    )
    motion = float(frames["motion_field_per_s"].median())
    scores = {
        "illumination_score": int(frames["illumination_score"].median()),
        "focus_score": fq.focus_score(median_focus),
        "stability_score": fq.stability_score(motion),
        "duration_score": fq.duration_score(
            duration_s, optimal_s=plan.optimal_duration_s, min_s=plan.min_duration_s
        ),
    }
    quality_score = sum(scores.values())
    gating = quality_score - (0 if plan.duration_gate else scores["duration_score"])
    video_usable = gating < fq.REJECT_SCORE
    frames["usable"] = (frames["quality_score"] < fq.REJECT_SCORE) & video_usable
    frames.insert(0, "row", np.arange(len(frames), dtype=np.int64))
    for column in ("label", "y", "patient_id", "video_id"):
        frames.insert(0, column, job[column])
    video = {
        "video_id": job["video_id"],
        "patient_id": job["patient_id"],
        "label": job["label"],
        "y": job["y"],
        "site": job["site"],
        "camera": job["camera"],
        "path": job["video"],
        "um_per_px": job["um_per_px"],
        "scale_known": bool(np.isfinite(job["um_per_px"]) and job["um_per_px"] > 0),
        "duration_s": duration_s,
        "mean_intensity": float(frames["mean_intensity"].median()),
        "focus": median_focus,
        "motion_field_per_s": motion,
        **scores,
        "quality_score": quality_score,
        "usable": bool(video_usable),
        "usable_samples": int(frames["usable"].sum()),
        "source_key": job["source_key"],
    }
    return frames, video
