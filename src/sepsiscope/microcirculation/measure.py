"""``sepsiscope measure``: automatic consensus microcirculation metrics of videos.

Input is one video or a manifest (CSV/Parquet, see :mod:`sepsiscope.data.manifest`). Each video is
read (at most ``max_seconds``), analysed by :func:`sepsiscope.microcirculation.analyse_video`, and
its figures drawn. Outputs, per :class:`~sepsiscope.layout.MeasurementLayout`::

    OUT/videos.parquet (+ .csv)    one row per video: metrics, quality flags, motion, timing
    OUT/vessels.parquet (+ .csv)   one row per segment: length, diameter, flow, velocity
    OUT/patients.parquet (+ .csv)  per-patient heterogeneity index across sites (manifest input)
    OUT/overlays/<video>.png       centrelines coloured by flow category
    OUT/kymographs/<video>.png     a few space-time diagrams
    OUT/failures.csv               videos that could not be read (the others are measured)
    OUT/measure.json, settings.json

Scale. A video finer than ``finest_um_per_px`` (0.8 µm/px, the finest camera the analysis is
validated on, the simulated CytoCam) is shrunk with area interpolation to that scale as it is
decoded (a 1280x1024 video at 0.6 µm/px is analysed at 960x768), which cuts memory and time by
the square of the factor; the figures are in µm and mean the same. The per-vessel end points are
mapped back to the original pixel grid; the overlay image is drawn in the analysed grid. Frames
stay as decoded (uint8/uint16) until the analysis.

A video that fails quality checks (too short, dark, saturated, blurred) gets a row with its flags
and message and no metrics, never made-up numbers. An unreadable video is listed as a failure and
the stage ends with :class:`~sepsiscope.errors.PartialFailure` (exit status 3).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope._io import is_disk_full, write_json, write_table, write_text
from sepsiscope._lock import writes
from sepsiscope._parallel import each_finished
from sepsiscope._progress import track
from sepsiscope.data.manifest import MANIFEST_SUFFIXES
from sepsiscope.errors import InputError, PartialFailure, SepsiscopeError
from sepsiscope.layout import MeasurementLayout, make_video_id
from sepsiscope.microcirculation import _measure_cache as _cache
from sepsiscope.settings import StageSettings, provenance

if TYPE_CHECKING:
    from sepsiscope.microcirculation.analyse import Analysis

log = logging.getLogger(__name__)

JSON_METRICS = (
    "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "ppv_percent", "pvd_mm_per_mm2", "mfi",
    "n_segments", "n_vessels", "mean_velocity_um_per_s", "total_length_mm", "de_backer_per_mm",
)  # fmt: skip


class MeasureSettings(StageSettings):
    """Settings of ``sepsiscope measure``; physical units throughout (µm, s, µm/s)."""

    um_per_px: float | None = Field(None, gt=0, description="Pixel size; overrides the manifest.")
    fps: float | None = Field(None, gt=0, description="Frame rate; overrides manifest/container.")
    camera: str | None = Field(None, description="Known camera whose µm/px applies (one video).")
    max_seconds: float = Field(10.0, gt=0, description="Analyse at most this much of each video.")
    min_vessel_um: float = Field(4.0, gt=0)
    max_vessel_um: float = Field(50.0, gt=0)
    min_contrast: float = Field(0.03, gt=0, lt=1)
    window_s: float = Field(0.5, gt=0, description="Time window of the flow analysis.")
    sluggish_below_um_per_s: float = Field(300.0, gt=0)
    min_seconds: float = Field(1.0, gt=0, description="Shorter videos are rejected.")
    kymographs: int = Field(4, ge=0, description="Space-time diagrams drawn per video.")
    overlays: bool = True
    workers: int = Field(1, ge=1, description="Videos measured in parallel processes.")
    scheduler: str | None = Field(
        None, description="Dask: 'local' (a LocalCluster of `workers`) or a scheduler address."
    )
    finest_um_per_px: float | None = Field(
        0.8, gt=0, description="Finer videos are shrunk to this scale first; None: never."
    )
    fields: Literal["auto", "progressive", "top_first", "bottom_first"] = Field(
        "auto",
        description="Interlaced video (an analogue capture): each frame's two fields are "
        "measured as frames of their own, at twice the frame rate (data.video.split_fields). "
        "auto: where the first frames' fields are ordered in time as an interlaced capture's "
        "(data.video.infer_field_order), or else the container marks them so.",
    )


# The first frames' fields are compared to tell an interlaced video: 3 s at 25 frames/s, the
# length it was validated on (docs/measurement.md, Interlaced video).
FIELD_TEST_FRAMES = 75
FIELDS_UNCLEAR = (
    "measured as frames: they move, but do not tell whether they hold two fields; if the camera "
    "is interlaced, measure with --fields top_first or bottom_first"
)

UNSCALED_HINT = (
    "give its um_per_px, or a known camera (microscan, cytocam), in the manifest row, or one "
    "scale for every video with --um-per-px or --camera"
)


def _video_table(input_path: Path, settings: MeasureSettings) -> pd.DataFrame:
    """The videos to measure, with patient, site, label, µm/px (NaN where unknown: a manifest's
    such rows are refused one by one) and fps where known."""
    if input_path.is_file() and input_path.suffix.lower() in MANIFEST_SUFFIXES:
        from sepsiscope.data.manifest import read_manifest

        table = read_manifest(input_path, require_files=False, require_scale=False)
    else:
        if not input_path.exists():
            raise InputError(f"{input_path}: no such video or manifest")
        # a folder is read as predict reads it: a folder of frames is one video, a folder of
        # videos (or of frame folders) is many
        videos = [input_path]
        if input_path.is_dir():
            from sepsiscope.data.video import videos_in_folder

            videos, skipped = videos_in_folder(input_path)
            if skipped:
                log.warning("%s: skipped %d entries: %s", input_path, len(skipped),
                            ", ".join(p.name for p in skipped[:10]))  # fmt: skip
            if not videos:
                raise InputError(f"{input_path}: the folder holds no video and no image frames")
        n = len(videos)
        table = pd.DataFrame(
            {"patient_id": [""] * n, "video": [str(v.resolve()) for v in videos],
             "label": [""] * n, "site": [""] * n, "um_per_px": [np.nan] * n,
             "fps": [np.nan] * n, "camera": [""] * n}
        )  # fmt: skip
    if settings.um_per_px is not None:
        table["um_per_px"] = settings.um_per_px
    elif settings.camera:
        from sepsiscope.data.manifest import CAMERA_UM_PER_PX, camera_um_per_px

        known = camera_um_per_px(settings.camera)
        if known is None:
            raise InputError(
                f"unknown camera {settings.camera!r}: give --um-per-px or one of "
                f"{', '.join(CAMERA_UM_PER_PX)}"
            )
        table["um_per_px"] = table["um_per_px"].fillna(known)
    unscaled = table["um_per_px"].isna()
    if unscaled.all() and input_path.suffix.lower() not in MANIFEST_SUFFIXES:
        raise InputError(
            f"no µm/px for {table['video'].iloc[0]}: give --um-per-px (or --camera for a known "
            "camera); lengths and densities cannot be measured without it"
        )
    if unscaled.all():
        raise InputError(
            f"{input_path}: no video has a µm/px: {UNSCALED_HINT}. Lengths and densities cannot "
            "be measured without it"
        )
    if settings.fps is not None:
        table["fps"] = settings.fps

    used: set[str] = set()
    table["video_id"] = [make_video_id(str(v), used) for v in table["video"]]
    return table.reset_index(drop=True)


def _measure_one(row: dict[str, Any], out_dir: str, settings: MeasureSettings) -> dict[str, Any]:
    """Measure one video; returns its per-video row and per-vessel rows (worker entry point)."""
    from sepsiscope.microcirculation import FlowCriteria, QualityCriteria, analyse_video

    started = time.perf_counter()
    decoded = _read_frames(row, settings)
    frames, fps, (scale_y, scale_x) = decoded.frames, decoded.fps, decoded.scale
    um_per_px = float(row["um_per_px"])
    analysed_um_per_px = um_per_px * (scale_x + scale_y) / 2
    analysis = analyse_video(
        frames,
        fps=fps,
        um_per_px=analysed_um_per_px,
        full_scale=float(decoded.white),
        diameters_um=(settings.min_vessel_um, settings.max_vessel_um),
        min_contrast=settings.min_contrast,
        flow=FlowCriteria(
            window_s=settings.window_s, sluggish_below_um_per_s=settings.sluggish_below_um_per_s
        ),
        quality=QualityCriteria(min_seconds=settings.min_seconds),
    )
    files = _save_figures(
        MeasurementLayout(out_dir), row["video_id"], analysis, settings,
        fps=fps, um_per_px=analysed_um_per_px, scale=(scale_y, scale_x),
    )  # fmt: skip
    metrics = {k: v for k, v in analysis.metrics.items() if k != "mfi_quadrants"}
    warnings = list(analysis.warnings) + decoded.warnings
    messages = analysis.quality_messages + list(analysis.warning_messages) + decoded.messages
    video_row = {
        "video_id": row["video_id"],
        "video": row["video"],
        "patient_id": row.get("patient_id", ""),
        "label": row.get("label", ""),
        "site": row.get("site", ""),
        "um_per_px": um_per_px,
        "analysed_um_per_px": analysed_um_per_px,
        "analysed_width": frames.shape[2],
        "analysed_height": frames.shape[1],
        "fps": fps,
        "fields": decoded.fields,
        "n_frames": len(frames),
        "duration_s": len(frames) / fps,
        # the consensus asks which part of a clip was scored: the first max_seconds of it
        "analysed_start_s": 0.0,
        "analysed_end_s": len(frames) / fps,
        "video_duration_s": decoded.total_frames / fps if decoded.total_frames else float("nan"),
        "status": "ok" if analysis.accepted else "rejected",
        "quality_flags": ";".join(analysis.quality_flags),
        "message": "; ".join(messages),
        "warnings": ";".join(warnings),
        **metrics,
        **{f"motion_{k}": v for k, v in analysis.motion.items()},
        **{f"quality_{k}": v for k, v in analysis.quality.items() if k != "duration_s"},
        "seconds": time.perf_counter() - started,
    }
    vessels = _vessel_rows(row["video_id"], analysis, scale_y, scale_x)
    return {"video": video_row, "vessels": vessels, "files": files}


@dataclass
class _Decoded:
    """A video's analysed frames (see :func:`_read_frames`) and how they were read."""

    frames: np.ndarray
    white: int  # the decoded frames' white level
    fps: float  # frames/s, or fields/s where measured as fields
    scale: tuple[float, float]  # original pixels per analysed pixel (y, x)
    total_frames: int  # the whole video's frames (fields); 0 when unknown
    fields: str  # progressive, top_first or bottom_first
    warnings: list[str] = dataclass_field(default_factory=list)
    messages: list[str] = dataclass_field(default_factory=list)


def _read_frames(row: dict[str, Any], settings: MeasureSettings) -> _Decoded:
    """The first ``max_seconds`` of a video as a grey stack (shrunk to ``finest_um_per_px``; an
    interlaced one as its fields, :func:`_choose_fields`). Only those seconds are decoded and
    held, so memory does not grow with the video's length; a video found interlaced (``auto``)
    is decoded a second time, as fields."""
    from sepsiscope.data.video import infer_field_order, probe_video, resolve_fps

    info = probe_video(row["video"])
    fps = resolve_fps(
        row.get("fps"), info.fps, source=str(row["video"]), hint="give --fps or a fps column"
    )
    stop = max(2, int(round(settings.max_seconds * fps)))
    capacity = min(stop, info.n_frames) if info.n_frames > 0 else stop
    shrink = (settings.finest_um_per_px or 0.0) / float(row["um_per_px"])
    read = partial(_decode, row["video"], (info.height, info.width), fps=fps, stop=stop,
                   capacity=capacity, shrink=shrink)  # fmt: skip
    first = "progressive" if settings.fields == "auto" else settings.fields
    differences: list[tuple[float, float, float, float]] = []
    frames, white, scale = read(fields=first, differences=differences)
    fields, warnings, messages = _choose_fields(
        settings.fields, infer_field_order(differences), row["video"]
    )
    if fields != first:
        del frames  # not held while the fields' stack is built
        frames, white, scale = read(fields=fields, differences=None)
    per_frame = 1 if fields == "progressive" else 2
    return _Decoded(frames, white, per_frame * fps, scale, per_frame * max(info.n_frames, 0),
                    fields, warnings, messages)  # fmt: skip


def _decode(
    video: str | os.PathLike,
    shape: tuple[int, int],
    *,
    fps: float,
    stop: int,
    capacity: int,
    shrink: float,
    fields: str,
    differences: list[tuple[float, float, float, float]] | None,
) -> tuple[np.ndarray, int, tuple[float, float]]:
    """A video's first ``stop`` frames as a stack (:func:`_decode_stack`), as fields unless
    ``fields`` is progressive; its white level, and pixels per analysed pixel. On the way, unless
    ``differences`` is None, the differences between the fields of the first
    :data:`FIELD_TEST_FRAMES` frames as decoded are added to it
    (:func:`~sepsiscope.data.video.field_differences`)."""
    from sepsiscope.data.frame_quality import peek_white_level
    from sepsiscope.data.video import (
        field_differences,
        field_sample,
        iter_frames,
        split_fields,
    )

    # the white level of the decoded frames (12-bit in 16-bit, as ingest), before any shrinking
    white, decoded = peek_white_level(iter_frames(video, stop=stop), fps=fps,
                                      frame=lambda item: item[1])  # fmt: skip

    def watched() -> Iterator[np.ndarray]:
        previous = None  # the last frame's fields, each frame's sampled once
        for _, frame in decoded:
            if differences is not None and len(differences) < FIELD_TEST_FRAMES - 1:
                sample = field_sample(frame)
                if previous is not None:
                    differences.append(field_differences(previous, sample))
                previous = sample
            yield frame

    stream: Iterator[np.ndarray] = watched()
    per_frame = 1
    if fields != "progressive":  # fields split before any shrinking mixes them
        top_first = fields == "top_first"
        stream = (f for frame in stream for f in split_fields(frame, top_first=top_first))
        per_frame = 2
    frames, scale = _decode_stack(stream, shape, shrink=shrink, capacity=per_frame * capacity,
                                  source=str(video))  # fmt: skip
    return frames, white, scale


def _choose_fields(
    setting: str, seen: str | None, video: str | os.PathLike
) -> tuple[str, list[str], list[str]]:
    """How to read a video's frames (progressive, top_first or bottom_first), its warnings and
    messages: as asked, or with ``auto`` as its frames show (``seen``, from
    :func:`~sepsiscope.data.video.infer_field_order`), or where they cannot tell (too still, or
    unclear) as its container marks them; a warning where the frames disagree with the setting
    (``interlaced``, ``not_interlaced``) or ``auto`` is left unsure (``fields_unclear``)."""
    from sepsiscope.data.video import field_order

    marked = field_order(video)
    notes: list[str] = []
    if seen in (None, "unclear") and marked is not None:
        found, why = marked, f"its container marks it interlaced ({marked})"
    elif seen == "unclear":
        if setting == "auto":
            return "progressive", ["fields_unclear"], [FIELDS_UNCLEAR]
        found, why = None, ""
    else:
        found, why = seen, f"its frames comb as an interlaced capture's ({seen})"
        if seen == "progressive" and marked is not None:
            notes.append(f"its container marks it interlaced ({marked}), but its frames show "
                         "one moment each")  # fmt: skip
    if setting == "auto":
        if found in (None, "progressive"):
            return "progressive", [], notes
        return found, [], [f"measured as fields at twice the frame rate: {why}"]
    if found not in (None, "progressive", setting):  # combs wherever cells move, or back and forth
        return setting, ["interlaced"], [f"{why}, measured as {setting} as asked"]
    if found == "progressive" and setting != "progressive":  # both fields are one moment
        message = f"its frames show no interlacing, measured as fields ({setting}) as asked"
        return setting, ["not_interlaced"], [*notes, message]
    return setting, [], notes


def _save_figures(
    layout: MeasurementLayout,
    video_id: str,
    analysis: Analysis,
    settings: MeasureSettings,
    *,
    fps: float,
    um_per_px: float,
    scale: tuple[float, float],
) -> dict[str, str]:
    """The overlay and space-time diagrams of an accepted video, as settings ask, and its
    geometry for a review (:mod:`.review`); their paths."""
    from sepsiscope.microcirculation._figures import save_kymographs, save_overlay
    from sepsiscope.microcirculation.review import save_geometry

    files: dict[str, str] = {}
    if analysis.accepted:
        geometry = layout.geometry(video_id)
        files["geometry"] = str(
            save_geometry(geometry, analysis, um_per_px=um_per_px, scale=scale, fps=fps)
        )
    if analysis.accepted and settings.overlays:
        files["overlay"] = str(save_overlay(layout.overlay(video_id), analysis))
    if analysis.accepted and settings.kymographs:
        path = save_kymographs(
            layout.kymograph(video_id), analysis, fps=fps, um_per_px=um_per_px,
            count=settings.kymographs,
        )  # fmt: skip
        if path is not None:
            files["kymographs"] = str(path)
    return files


def _vessel_rows(
    video_id: str, analysis: Analysis, scale_y: float, scale_x: float
) -> list[dict[str, Any]]:
    """One row per segment: length and diameter (µm), flow, velocity (µm/s), end points in the
    original pixel grid."""
    return [
        {
            "video_id": video_id,
            "segment": i,
            "length_um": s.length_um,
            "diameter_um": s.diameter_um,
            "small": s.small,
            "flow": f.category,
            "velocity_um_per_s": f.velocity_um_per_s,
            "moving_fraction": f.moving_fraction,
            "blurred_fraction": f.blurred_fraction,
            "perfused_by_blur": f.perfused_by_blur,
            "contrast": c,
            # in the original pixel grid: a shrunk pixel's centre, (i + 0.5) x scale - 0.5
            "start_row_px": (float(s.path_px[0, 0]) + 0.5) * scale_y - 0.5,
            "start_col_px": (float(s.path_px[0, 1]) + 0.5) * scale_x - 0.5,
            "end_row_px": (float(s.path_px[-1, 0]) + 0.5) * scale_y - 0.5,
            "end_col_px": (float(s.path_px[-1, 1]) + 0.5) * scale_x - 0.5,
        }
        for i, (s, f, c) in enumerate(
            zip(analysis.segments, analysis.flows, analysis.contrasts, strict=True)
        )
    ]


def _decode_stack(
    frames: Iterable[np.ndarray],
    shape: tuple[int, int],
    *,
    shrink: float,
    capacity: int,
    source: str,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Decoded grey frames as one ``(T, h, w)`` stack of their own dtype (uint8/uint16).

    With ``shrink`` > 1 every frame is shrunk by that factor with area interpolation as it
    arrives, so the full-size video is never held. Returns the stack and the original pixels per
    analysed pixel ``(rows, columns)`` (1, 1 without shrinking). ``capacity`` is the expected
    frame count (the stack grows if more arrive).
    """
    import cv2

    from sepsiscope.data.video import VideoError

    height, width = shape
    size = (width, height)
    if shrink > 1:
        size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    stack: np.ndarray | None = None
    n = 0
    for index, frame in enumerate(frames):
        if frame.shape != shape:
            raise VideoError(f"{source}: frame {index} is {frame.shape}, the first frames were "
                             f"{shape}")  # fmt: skip
        if size != (width, height):
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if stack is None:
            stack = np.empty((max(1, capacity), size[1], size[0]), frame.dtype)
        elif n == len(stack):  # more frames than the header declared
            stack = np.concatenate([stack, np.empty_like(stack)])
        stack[n] = frame
        n += 1
    if stack is None:
        raise VideoError(f"{source}: no frames")
    return stack[:n], (height / size[1], width / size[0])


def _safe_measure(row: dict[str, Any], out_dir: str, settings: MeasureSettings):
    try:
        return _measure_one(row, out_dir, settings)
    except SepsiscopeError as exc:
        return {"error": str(exc), "video": row}
    except (MemoryError, ValueError, OSError) as exc:
        if is_disk_full(exc):
            raise  # not this video's fault: every one after it would fail too
        return {"error": f"{row['video']}: {type(exc).__name__}: {exc}", "video": row}


@writes("out_dir", "measure")
def measure(
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    settings: MeasureSettings | None = None,
    *,
    quiet: bool = False,
) -> dict[str, Any]:
    """Measure the consensus metrics of one video or of every video of a manifest.

    Parameters
    ----------
    input_path : a video (file or folder of frames) or a manifest (.csv/.parquet).
    out_dir : folder for the tables and figures (created).
    settings : MeasureSettings, optional
    quiet : no progress bar.

    Returns
    -------
    dict
        ``videos``: per video its id, status, quality flags, warnings, message, the frame rate
        and fields it was analysed at, the metrics of ``JSON_METRICS`` and its figure paths;
        ``files``: the tables written; ``failures``: unreadable videos.

    Raises
    ------
    InputError : no µm/px, a bad manifest or a missing input.
    PartialFailure : some videos could not be read (the result is attached as ``.result``).

    Examples
    --------
    >>> result = measure("cohort/manifest.csv", "run/measurements")  # doctest: +SKIP
    >>> result["videos"][0]["tvd_mm_per_mm2"]  # doctest: +SKIP
    """
    settings = settings or MeasureSettings()
    input_path = Path(input_path).expanduser()
    layout = MeasurementLayout(out_dir)
    table = _video_table(input_path, settings)
    unscaled = table["um_per_px"].isna()
    refused = [{"video": v, "reason": f"{v}: no µm/px: {UNSCALED_HINT}"}
               for v in table.loc[unscaled, "video"]]  # fmt: skip
    layout.root.mkdir(parents=True, exist_ok=True)
    settings.save(layout.settings)
    rows = table[~unscaled].to_dict("records")
    started = time.perf_counter()
    gone = _cache.prune(layout, set(table["video_id"]))
    if gone:
        log.info("%s: removed the results of %d videos not in this input", layout.root, len(gone))
    keys = {r["video_id"]: _cache.video_key(r, settings) for r in rows}
    done = {}
    for r in rows:
        previous = _cache.load_done(layout, r, keys[r["video_id"]])
        if previous is not None:
            done[r["video_id"]] = previous
    todo = [r for r in rows if r["video_id"] not in done]
    if done:
        log.info("%s: %d videos already measured, %d to do", layout.root, len(done), len(todo))
    failures = list(refused)
    for row, result in track(_measure_all(todo, layout, settings), description="measure",
                             total=len(todo), quiet=quiet):  # fmt: skip
        if "error" in result:
            failures.append({"video": row["video"], "reason": result["error"]})
        else:
            _cache.save_done(layout, result, keys[row["video_id"]])
            done[row["video_id"]] = result
    ordered = [done[r["video_id"]] for r in rows if r["video_id"] in done]
    return _write_outputs(layout, ordered, failures, settings, time.perf_counter() - started)


def _measure_all(rows: list[dict[str, Any]], layout: MeasurementLayout, settings: MeasureSettings):
    """Yield ``(row, result)`` as each video finishes, here, in processes or on Dask."""
    measure_one = partial(_safe_measure, out_dir=str(layout.root), settings=settings)
    return each_finished(measure_one, rows, workers=settings.workers, scheduler=settings.scheduler)


def _write_outputs(layout, done, failures, settings, seconds) -> dict[str, Any]:
    from sepsiscope.microcirculation import patient_heterogeneity

    files: dict[str, str] = {}
    videos = pd.DataFrame([r["video"] for r in done])
    vessels = pd.DataFrame([v for r in done for v in r["vessels"]])
    if len(videos):
        files["videos"] = str(write_table(layout.videos, videos, csv=True))
    if len(vessels):
        files["vessels"] = str(write_table(layout.vessels, vessels, csv=True))
    has_sites = len(videos) and (videos["site"].astype(str) != "").any()
    patients = None
    if has_sites and (videos["patient_id"].astype(str) != "").any():
        patients = patient_heterogeneity(videos[videos["status"] == "ok"])
        if len(patients):
            files["patients"] = str(write_table(layout.patients, patients, csv=True))
    if failures:
        write_text(layout.failures, pd.DataFrame(failures).to_csv(index=False))
        files["failures"] = str(layout.failures)
    # every table is this input's alone: one that has no rows now is removed, not left from before
    written = {Path(f).with_suffix("") for f in files.values()}
    for path in (layout.videos, layout.vessels, layout.patients, layout.failures):
        if path.with_suffix("") not in written:
            for stale in (path.with_suffix(".parquet"), path.with_suffix(".csv")):
                stale.unlink(missing_ok=True)
    per_video = []
    for r in done:
        v = r["video"]
        keys = ("video_id", "video", "status", "quality_flags", "warnings", "message")
        entry = {k: v[k] for k in keys}
        entry.update({k: v.get(k) for k in ("fps", "fields")})  # older caches: no fields
        entry.update({k: v.get(k) for k in JSON_METRICS})
        entry["files"] = r["files"]
        per_video.append(entry)
    result = {
        "out_dir": str(layout.root),
        "n_videos": len(done) + len(failures),
        "n_measured": int(sum(r["video"]["status"] == "ok" for r in done)),
        "n_rejected": int(sum(r["video"]["status"] != "ok" for r in done)),
        "n_failed": len(failures),
        "seconds": seconds,
        "videos": per_video,
        "patients": patients.to_dict("records") if patients is not None else [],
        "failures": failures,
        "files": files,
    }
    write_json(layout.summary, {**result, **provenance()})
    if failures:
        error = PartialFailure(
            f"{len(failures)} of {result['n_videos']} videos could not be measured: "
            + "; ".join(f["reason"] for f in failures[:3])
        )
        error.result = result
        raise error
    return result


def summary_text(result: dict[str, Any]) -> str:
    """A few lines for the terminal: one per video, then the totals."""
    lines = []
    for v in result["videos"][:20]:
        if v["status"] != "ok":
            lines.append(f"{v['video_id']}: rejected ({v['message']})")
            continue
        lines.append(
            f"{v['video_id']}: TVD {v['tvd_mm_per_mm2']:.1f} mm/mm² "
            f"(small {v['tvd_small_mm_per_mm2']:.1f}), PPV {v['ppv_percent']:.0f} %, "
            f"PVD {v['pvd_mm_per_mm2']:.1f}, MFI {v['mfi']:.2f}, {v['n_segments']} segments"
            + (f" (warning: {v['message']})" if v["warnings"] else "")
        )
    if len(result["videos"]) > 20:
        lines.append(f"... {len(result['videos']) - 20} more in {result['files'].get('videos')}")
    lines.append(
        f"measured {result['n_measured']}, rejected {result['n_rejected']}, "
        f"failed {result['n_failed']} in {result['seconds']:.1f} s -> {result['out_dir']}"
    )
    return "\n".join(lines)
