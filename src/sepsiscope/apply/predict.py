"""Predict: a trained run on a video file, a folder or manifest of videos, or a live camera.

Every input goes through the same streaming path (:mod:`sepsiscope.apply._streaming`): frames are
decoded one at a time, sampled as ingest sampled the training videos, quality-gated, inferred in
batches, and a rolling video-level probability (the mean of the sample probabilities so far) with
a batch-means interval is updated as they arrive. The verdict compares the final probability with
the threshold fixed on the validation split (RUN/classifier/threshold.json; 0.5 with a warning
when there is none). For research only; not a diagnosis.

Per video, in ``OUT/<name>/`` (OUT = ``--out`` or RUN/predictions): ``frames.parquet`` (and
``frames.csv``): one row per sampled frame (and tile), skipped ones with their quality reason;
``prediction.json``: the result; ``annotated.mp4`` with ``annotate``.

Live mode (a camera, a stream URL, or a file with ``realtime=True``, which replays it at its frame
rate as a camera would deliver it) infers each sample as soon as its last frame arrives and
reports the latency from that frame's arrival to the updated probability.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from sepsiscope._io import write_json, write_table, write_text
from sepsiscope._progress import track
from sepsiscope.apply._runinfo import RunInfo, load_run
from sepsiscope.apply._streaming import Update, stream_predictions
from sepsiscope.apply.backends import BACKENDS, TTABackend, load_backend
from sepsiscope.apply.sources import LiveSource, camera_frames, file_frames, is_live_spec
from sepsiscope.data._sampling import SamplingPlan
from sepsiscope.data.manifest import MANIFEST_SUFFIXES
from sepsiscope.data.video import (
    CONTAINER_SUFFIXES,
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    VideoError,
    probe_video,
    resolve_fps,
    videos_in_folder,
)
from sepsiscope.errors import InputError, PartialFailure
from sepsiscope.layout import PredictionLayout, RunLayout, prediction_summary, safe_name
from sepsiscope.settings import StageSettings, provenance

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (*CONTAINER_SUFFIXES, *TIFF_SUFFIXES)
LATENCY_GOAL_MS = 100.0


class PredictSettings(StageSettings):
    """How a trained run is applied to new videos."""

    backend: Literal[BACKENDS] = "auto"  # type: ignore[valid-type]
    device: str = Field("cpu", description="cpu, cuda or cuda:N")
    rate_hz: float | None = Field(None, gt=0, description="samples per s; default: the run's")
    fps: float | None = Field(None, gt=0, description="frame rate when the file has none")
    um_per_px: float | None = Field(
        None, gt=0, description="scale of every input (runs ingested with field_um need one)"
    )
    batch_size: int = Field(32, ge=1, description="samples per inference batch (files)")
    live_batch_size: int = Field(1, ge=1, description="samples per batch in live mode")
    realtime: bool = Field(False, description="replay files at their frame rate, as a camera")
    max_seconds: float | None = Field(None, gt=0, description="stop a live source after this")
    block_s: float = Field(2.0, gt=0, description="block length of the interval, s of video")
    confidence: float = Field(0.95, gt=0, lt=1)
    threshold: float | None = Field(None, ge=0, le=1, description="override the run's threshold")
    quality_gate: bool = True
    tta: bool = Field(False, description="average each sample over its 8 flips and turns (8x)")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: 1 live, else all)")
    annotate: Path | None = Field(None, description="annotated .mp4 (a folder for many videos)")
    out: Path | None = Field(None, description="output folder; default RUN/predictions")


def _is_manifest(source: str | os.PathLike) -> bool:
    path = Path(source)
    return path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES


def _resolve(source: str) -> list[dict[str, Any]]:
    """The videos an INPUT names: ``[{"kind", "spec", "name", **manifest columns}]``."""
    path = Path(source).expanduser()
    if not path.exists():
        if is_live_spec(source):
            name = "camera" + source if source.isdigit() else "stream"
            return [{"kind": "live", "spec": source, "name": name}]
        raise InputError(f"{source}: no such file or folder (nor a camera index or stream URL)")
    if _is_manifest(path):
        from sepsiscope.data.manifest import read_manifest

        table = read_manifest(path, require_files=False, require_scale=False)
        return [
            {
                "kind": "file",
                "spec": row.video,
                "name": Path(row.video).stem,
                "patient_id": row.patient_id,
                "label": row.label,
                "fps": row.fps if np.isfinite(row.fps) else None,
                "um_per_px": row.um_per_px if np.isfinite(row.um_per_px) else None,
            }
            for row in table.itertuples()
        ]
    if path.is_dir():
        videos, skipped = videos_in_folder(path)
        if not videos:
            raise InputError(
                f"{path}: holds no videos ({', '.join(VIDEO_SUFFIXES)}), image frames "
                f"({', '.join(IMAGE_SUFFIXES)}) nor sub-folders of frames"
            )
        if skipped:
            names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            what = "a folder of frames" if videos == [path] else "a folder of videos"
            log.warning("%s: %s; skipped %d entries: %s%s", path, what, len(skipped), names, more)
        return [
            {"kind": "file", "spec": str(p), "name": p.stem if p.is_file() else p.name}
            for p in videos
        ]
    return [{"kind": "file", "spec": str(path), "name": path.stem}]


def _unique_names(items: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for item in items:
        base = safe_name(item["name"])
        seen[base] = seen.get(base, 0) + 1
        item["name"] = base if seen[base] == 1 else f"{base}_{seen[base]}"


def _verdict(probability: float, threshold: float) -> str:
    if not np.isfinite(probability):
        return "inconclusive"
    return "septic" if probability >= threshold else "non-septic"


def _latency(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    a = np.asarray(values)
    return {
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
        "n": len(a),
        "goal_ms": LATENCY_GOAL_MS,
        "goal_met": bool(np.percentile(a, 95) <= LATENCY_GOAL_MS),
    }


def predict_stream(
    events: Any,
    backend: Any,
    info: RunInfo,
    *,
    fps: float,
    settings: PredictSettings,
    live: bool,
    um_per_px: float | None = None,
) -> Any:
    """The streaming generator for one source (see :func:`sepsiscope.apply._streaming`).

    ``um_per_px`` (the source's scale; ``settings.um_per_px`` overrides it) sizes the crops of a
    run ingested with ``field_um``.
    """
    plan = SamplingPlan(
        every=None if settings.rate_hz else info.every,
        rate_hz=settings.rate_hz or info.rate_hz,
        size=info.size,
        crop=info.crop,
        channel_offset_s=info.channel_offset_s,
        optimal_duration_s=5.0,
        min_duration_s=3.0,
        field_um=info.field_um,
    )
    return stream_predictions(
        events,
        backend,
        plan,
        fps=fps,
        um_per_px=settings.um_per_px or um_per_px,
        batch_size=settings.live_batch_size if live else settings.batch_size,
        block_s=settings.block_s,
        confidence=settings.confidence,
        quality_gate=settings.quality_gate,
    )


def _predict_one(
    item: dict[str, Any],
    backend: Any,
    model: Any,
    info: RunInfo,
    settings: PredictSettings,
    out: PredictionLayout,
    annotate: Path | None,
) -> dict[str, Any]:
    threshold = settings.threshold if settings.threshold is not None else info.threshold
    live = item["kind"] == "live" or settings.realtime
    events, fps = _frame_events(item, settings)
    if live:  # first calls build kernels; a camera's first frame should not pay for that
        for n in {1, settings.live_batch_size}:
            for _ in range(3):  # TorchScript optimises a graph over its first runs
                backend(np.zeros((n, 3, info.size, info.size), np.uint8))
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    last: list[Update] = []

    def collect(updates: Any) -> Any:
        for update in updates:
            rows.extend(update.rows)
            latencies.extend(update.latencies_ms)
            last[:] = [update]
            yield update

    if getattr(backend, "n_members", 0):
        backend.reset_members()
    start = time.perf_counter()
    try:
        updates = collect(
            predict_stream(
                events,
                backend,
                info,
                fps=fps,
                settings=settings,
                live=live,
                um_per_px=item.get("um_per_px"),
            )
        )
        if annotate is not None:
            from sepsiscope.apply._annotate import write_annotated

            write_annotated(annotate, updates, model, info, threshold=threshold)
        else:
            for _ in updates:
                pass
    except VideoError as exc:
        raise VideoError(f"{item['spec']}: {exc}") from exc
    elapsed = time.perf_counter() - start
    table = pd.DataFrame(rows)
    if table.empty:
        raise VideoError(f"{item['spec']}: too short for one sample")
    table.insert(0, "video", item["name"])
    out.root.mkdir(parents=True, exist_ok=True)
    write_table(out.frames, table, csv=True)
    interval = last[0].interval if last else (float("nan"), float("nan"))
    result = _video_result(item, table, interval, threshold, settings, info)
    result.update(
        elapsed_s=elapsed,
        mode="live" if live else "file",
        backend=getattr(backend, "name", "?"),
        table=str(out.frames),
        annotated=str(annotate) if annotate else None,
        latency=_latency(latencies) if live else None,
    )
    if info.n_members:
        result["members"] = _member_spread(backend, info.n_members, table, threshold)
    # flagged in every prediction: without a scale, samples were sized by pixels (as the study's
    # crop and resize), so the field they show depends on the camera
    scale = settings.um_per_px or item.get("um_per_px")
    result.update(um_per_px=scale, scale_known=scale is not None)
    for key in ("patient_id", "label"):
        if key in item:
            result[key] = item[key]
    if result["frames_used"] == 0:
        log.warning("%s: no frame passed the quality gate: verdict inconclusive", item["spec"])
    write_json(out.result, {**result, **provenance()})
    return result


def _member_spread(
    backend: Any, n_members: int, table: pd.DataFrame, threshold: float
) -> dict[str, Any]:
    """An ensemble's members' video probabilities and their spread (the uncertainty of the
    ensemble); only where the back end keeps them (torch fp32/bf16 without TTA)."""
    kept = getattr(backend, "member_logits", None)
    n_used = int(table["probability"].notna().sum())
    if not kept or sum(len(k) for k in kept) != n_used:
        note = "the members' spread needs --backend fp32 or bf16, without --tta"
        return {"n": n_members, "probabilities": None, "note": note}
    logits = np.concatenate(kept)
    per_member = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).mean(axis=0)
    return {
        "n": n_members,
        "probabilities": [float(p) for p in per_member],
        "sd": float(per_member.std(ddof=1)) if n_members > 1 else 0.0,
        "range": [float(per_member.min()), float(per_member.max())],
        "agree": bool(np.all(per_member >= threshold) or np.all(per_member < threshold)),
        "note": "each member's video probability (mean over the samples); sd and range across "
        "members are the ensemble's uncertainty",
    }


def _frame_events(item: dict[str, Any], settings: PredictSettings) -> tuple[Any, float]:
    """The frames of one source (a camera, a file replayed live, or a file read at full speed)
    and its frame rate, frames/s."""
    if item["kind"] == "live":
        return camera_frames(item["spec"], fps=settings.fps, max_seconds=settings.max_seconds)
    fps = resolve_fps(
        settings.fps if settings.fps is not None else item.get("fps"),
        lambda: probe_video(item["spec"]).fps,
        source=str(item["spec"]),
        hint="give --fps",
    )
    if settings.realtime:
        return LiveSource(item["spec"], fps, max_seconds=settings.max_seconds), fps
    return file_frames(item["spec"], fps), fps


def _video_result(
    item: dict[str, Any],
    table: pd.DataFrame,
    interval: tuple[float, float],
    threshold: float,
    settings: PredictSettings,
    info: RunInfo,
) -> dict[str, Any]:
    """Probability, interval, verdict and frame counts of one video's per-frame table."""
    used = table.drop_duplicates("frame_index")
    frames_used = int(used["usable"].sum())
    probability = float(table["probability"].mean()) if frames_used else float("nan")
    low, high = interval
    reasons = used.loc[~used["usable"], "skip_reason"].str.split("+").explode()
    return {
        "video": str(item["spec"]),
        "name": item["name"],
        "probability": probability,
        "interval": [low, high],
        "interval_method": f"batch means over {settings.block_s:g} s blocks, "
        f"{settings.confidence:.0%} t interval",
        "verdict": _verdict(probability, threshold),
        "decided": bool(frames_used and not low <= threshold <= high),
        "threshold": threshold,
        "threshold_source": "--threshold"
        if settings.threshold is not None
        else info.threshold_source,
        "frames_sampled": len(used),
        "frames_used": frames_used,
        "frames_skipped": int(len(used) - frames_used),
        "skipped_by": {k: int(v) for k, v in reasons[reasons != ""].value_counts().items()},
        "samples_used": int(table["probability"].notna().sum()),
        "video_seconds": float(table["time_s"].max()),
    }


def predict(
    run_dir: str | os.PathLike,
    source: str | os.PathLike,
    settings: PredictSettings | None = None,
    *,
    quiet: bool = False,
) -> dict[str, Any]:
    """Apply a trained run to a video, a folder or manifest of videos, or a live source.

    Parameters
    ----------
    run_dir : a run with a trained classifier (``sepsiscope train``).
    source : a video file (or image folder / TIFF stack), a folder of videos, a manifest
        (.csv/.parquet), a camera index (``"0"``), a V4L2 device or a stream URL.

    Returns
    -------
    One video: ``{"probability", "interval", "verdict", "frames_used", "frames_skipped",
    "table", ...}``. Several: ``{"videos": [...], "failures": [...], "summary": {...}}``; when
    some videos fail, :class:`~sepsiscope.errors.PartialFailure` carries that result.

    Example
    -------
    >>> predict("run", "video.avi")["verdict"]  # doctest: +SKIP
    'non-septic'
    """
    settings = settings or PredictSettings()
    items = _resolve(str(source))
    _unique_names(items)
    threads = torch.get_num_threads()
    live = settings.realtime or any(item["kind"] == "live" for item in items)
    # Live: one thread by default. Batch-1 inference gains little from a second thread, and on a
    # busy machine OpenMP's barrier waits made a 2-thread call take ~0.7 s instead of ~5 ms.
    wanted = settings.threads or (1 if live else None)
    if wanted:
        torch.set_num_threads(wanted)
    try:
        return _predict_all(run_dir, source, items, settings, quiet=quiet)
    finally:
        torch.set_num_threads(threads)


def live_annotated(
    run_dir: str | os.PathLike, source: str, settings: PredictSettings | None = None
) -> Iterator[np.ndarray]:
    """Annotated RGB frames of a live source as it streams: the camera's picture, the sample the
    network saw with its Grad-CAM, and the rolling probability with its interval and threshold.

    ``source``: a camera index, a V4L2 device, a stream URL, or a file replayed at its frame rate
    (as a camera would send it). One frame per sample (``rate_hz``); the latency is
    :func:`predict`'s in live mode plus one Grad-CAM per sample.
    """
    from sepsiscope.apply._annotate import annotated_frames

    settings = (settings or PredictSettings()).model_copy(update={"realtime": True})
    items = _resolve(str(source))
    if len(items) != 1:
        raise InputError(f"{source}: a live view needs one source, not {len(items)} videos")
    model, info = load_run(run_dir)
    backend = load_backend(run_dir, settings.backend, device=settings.device, batch_size=1)
    threshold = settings.threshold if settings.threshold is not None else info.threshold
    events, fps = _frame_events(items[0], settings)
    updates = predict_stream(events, backend, info, fps=fps, settings=settings, live=True,
                             um_per_px=items[0].get("um_per_px"))  # fmt: skip
    yield from annotated_frames(updates, model, info, threshold)


def _predict_all(
    run_dir: str | os.PathLike,
    source: str | os.PathLike,
    items: list[dict[str, Any]],
    settings: PredictSettings,
    *,
    quiet: bool,
) -> dict[str, Any]:
    model, info = load_run(run_dir)
    backend = load_backend(
        run_dir, settings.backend, device=settings.device, batch_size=settings.batch_size
    )
    if settings.tta:
        backend = TTABackend(backend)
    out_root = Path(settings.out) if settings.out else RunLayout(run_dir).predictions
    # A file or a camera gives one result; a folder or manifest always the list form, even of one.
    single = len(items) == 1 and not (Path(source).is_dir() or _is_manifest(source))
    if len(items) == 1 and not single and Path(items[0]["spec"]) == Path(source):
        single = True  # a folder of image frames is one video
    results, failures = [], []
    for item in track(items, description="predict", quiet=quiet or single):
        annotate = settings.annotate
        if annotate is not None and not single:
            annotate = Path(annotate) / f"{item['name']}.mp4"
        try:
            results.append(
                _predict_one(
                    item,
                    backend,
                    model,
                    info,
                    settings,
                    PredictionLayout(out_root / item["name"]),
                    annotate,
                )
            )
        except (VideoError, InputError) as exc:
            if single:
                raise
            log.warning("%s", exc)
            failures.append({"video": item["spec"], "reason": str(exc)})
    if single:
        return results[0]
    summary = {
        "n_videos": len(items),
        "n_predicted": len(results),
        "n_failed": len(failures),
        "septic": sum(r["verdict"] == "septic" for r in results),
        "non_septic": sum(r["verdict"] == "non-septic" for r in results),
        "inconclusive": sum(r["verdict"] == "inconclusive" for r in results),
    }
    columns = ["name", "video", "probability", "verdict", "frames_used", "frames_skipped", "table"]
    out_root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([{k: r.get(k) for k in columns} for r in results], columns=columns)
    with_table = prediction_summary(out_root)
    write_text(with_table, table.to_csv(index=False))
    result = {"videos": results, "failures": failures, "summary": summary, "table": str(with_table)}
    if not results:
        error = InputError(f"{source}: no video could be predicted ({failures[0]['reason']})")
        error.result = result  # the failures, printed by --json as a partial failure's are
        raise error
    if failures:
        error = PartialFailure(f"{len(failures)} of {len(items)} videos failed")
        error.result = result
        raise error
    return result


def summary_text(result: dict[str, Any]) -> str:
    """One line per video for the terminal."""
    videos = result.get("videos", [result])
    lines = []
    for r in videos:
        low, high = r["interval"]
        line = (
            f"{r['name']}: p(septic) = {r['probability']:.2f} [{low:.2f}, {high:.2f}] -> "
            f"{r['verdict']} (threshold {r['threshold']:.2f}; {r['frames_used']} frames used, "
            f"{r['frames_skipped']} skipped; table {r['table']})"
        )
        if r.get("decided") is False:
            line += "; UNDECIDED: the interval straddles the threshold"
        if r.get("latency"):
            line += f"; latency median {r['latency']['median_ms']:.0f} ms"
        lines.append(line)
    for f in result.get("failures", []):
        lines.append(f"FAILED {f['video']}: {f['reason']}")
    return "\n".join(lines) + "\nResearch use only; not a diagnosis."
