"""Ingest: a manifest of videos to a patient-split frame store (format in
:mod:`sepsiscope.data.store`).

Sampling. Neighbouring frames at 25-30 fps are near duplicates, so by default a video gives
``rate_hz`` = 2 samples per second (the frame nearest each 0.5 s); ``every`` = N takes every N-th
frame instead. Each sample stacks the grey frames ``t``, ``t + k``, ``t + 2k`` (``k`` =
round(``channel_offset_s`` x fps), 150 ms by default) and is cropped and resized by
:func:`sepsiscope.data.frame_quality.make_samples`. 16-bit input is scaled to 8 bits from the
white level of the video's first second (at most 25 frames;
:func:`sepsiscope.data.frame_quality.peek_white_level`), the same for every frame.

Quality. The computable parts of the Massey score (:mod:`sepsiscope.data.frame_quality`) flag
frames and videos ``usable = False``; :meth:`FrameStore.samples` leaves them out by default.

Resuming. The store is a function of the manifest and the sampling settings. A rerun keeps every
video already complete (its array exists and it has rows in the videos table) with unchanged
manifest entries, ingests new or changed ones, retries failures, and drops videos no longer in
the manifest. Tables are rewritten atomically after each video and arrays are renamed into place
when complete, so a killed run leaves a readable store. Splits are recomputed from all the
manifest's patients on every run (deterministic for a seed), so adding patients may move
patients between splits: retrain after adding patients. ``overwrite`` starts again.

Failures. A video that cannot be ingested gets a row in the failures table and a warning naming
the file and the reason; the others are ingested and :class:`~sepsiscope.errors.PartialFailure`
(exit status 3) is raised at the end with the result attached.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from sepsiscope._io import read_json, write_json, write_table, write_text
from sepsiscope._lock import writes
from sepsiscope._parallel import each_finished
from sepsiscope._progress import track
from sepsiscope.data import frame_quality as fq
from sepsiscope.data._sampling import SamplingPlan, ingest_video
from sepsiscope.data.manifest import read_manifest
from sepsiscope.data.splits import make_splits, split_of
from sepsiscope.data.store import FRAME_COLUMNS
from sepsiscope.errors import InputError, PartialFailure
from sepsiscope.layout import STORE_FORMAT_VERSION, StoreLayout, make_video_id
from sepsiscope.settings import StageSettings, provenance

log = logging.getLogger(__name__)

# Settings that change what is stored; the others (splits, workers) may change between runs.
SAMPLE_SETTINGS = (
    "rate_hz", "every", "size", "crop", "channel_offset_s", "optimal_duration_s", "min_duration_s",
    "field_um",
)  # fmt: skip
WRITE_EVERY_S = 2.0
_WARN_FAILURES = 20  # failures listed one by one; beyond, counted by reason
_PAUSE_ENV = "SEPSISCOPE_INGEST_PAUSE_S"  # test hook: seconds to wait after each video


class IngestSettings(StageSettings):
    """How videos become samples, and how patients are split."""

    rate_hz: float | None = Field(2.0, gt=0, description="samples per second of video")
    every: int | None = Field(None, ge=1, description="every N-th frame (overrides rate_hz)")
    size: int = Field(224, ge=16, description="side of the square samples, px")
    crop: Literal["center", "tiles"] = "center"
    # Off by default: the short side makes cameras of other µm/px give samples of other scales
    # (720x576 at 1 µm/px: 2.6 µm per sample pixel; 512x512 at 1.4: 3.2), a cue a network can
    # learn when camera and label go together. A fixed field gives every camera the same scale.
    field_um: float | None = Field(
        None, gt=0, description="side of every crop in µm (fixed physical scale); default: px"
    )
    channel_offset_s: float = Field(0.15, ge=0, description="time between the channels, s")
    val: float = Field(0.2, ge=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)
    folds: int = Field(5, ge=0)
    seed: int = 0
    workers: int = Field(1, ge=1)
    scheduler: str | None = Field(
        None, description="Dask: 'local' (a LocalCluster of `workers`) or a scheduler address"
    )
    optimal_duration_s: float = Field(5.0, ge=0, description="Massey duration score 0 from here")
    min_duration_s: float = Field(3.0, ge=0, description="Massey duration: shorter scores 10")
    # Massey's duration rule judges a recording for flow scoring (MFI needs seconds of video); a
    # frame of a 2-s clip is as good an input to the frame classifier as one of a 10-s clip. So
    # the duration score is recorded, and excludes a video from training only when asked.
    duration_gate: bool = Field(False, description="leave videos under min_duration_s out")

    def plan(self) -> SamplingPlan:
        return SamplingPlan(
            every=self.every,
            rate_hz=None if self.every else self.rate_hz,
            size=self.size,
            crop=self.crop,
            channel_offset_s=self.channel_offset_s,
            optimal_duration_s=self.optimal_duration_s,
            min_duration_s=self.min_duration_s,
            duration_gate=self.duration_gate,
            field_um=self.field_um,
        )

    def sampling(self) -> dict[str, Any]:
        values = self.model_dump(include=set(SAMPLE_SETTINGS))
        if self.every:
            values["rate_hz"] = None
        return values


def feasible_folds(labels: dict[str, str], folds: int) -> int:
    """``folds``, or fewer when a label has fewer patients than folds (0 when under 2).

    Every fold must hold both labels. The folds are an extra (the fixed split is what training
    uses), so a small cohort gets as many as it allows, with a warning, instead of a refusal.
    """
    counts = pd.Series(list(labels.values())).value_counts()
    fewest = int(counts.min()) if len(counts) else 0
    if folds <= fewest:
        return folds
    allowed = fewest if fewest >= 2 else 0
    log.warning(
        "%d folds need %d patients of each label, but %s has %d: making %d fold(s) instead",
        folds, folds, counts.idxmin(), fewest, allowed,
    )  # fmt: skip
    return allowed


def _source_key(row: pd.Series) -> str:
    """The manifest fields a stored video depends on; a change re-ingests the video."""
    fields = ("patient_id", "label", "site", "camera", "um_per_px", "fps")
    return json.dumps({f: (None if pd.isna(row[f]) else row[f]) for f in fields}, default=str)


def _clean_store(layout: StoreLayout, *, everything: bool) -> None:
    """Remove temporaries of a killed run (and, with ``everything``, the store's own files)."""
    if layout.arrays.exists():
        for tmp in layout.arrays.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
    if layout.root.exists():
        for tmp in layout.root.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
    if everything:
        shutil.rmtree(layout.arrays, ignore_errors=True)
        for path in (layout.meta, layout.manifest, layout.videos, layout.frames,
                     layout.failures, layout.splits):  # fmt: skip
            path.unlink(missing_ok=True)


def _previous(layout: StoreLayout, settings: IngestSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Videos and frames of an earlier run with the same sampling settings."""
    if not layout.meta.exists():
        return pd.DataFrame(), pd.DataFrame()
    meta = read_json(layout.meta)
    if meta.get("format_version") != STORE_FORMAT_VERSION:
        raise InputError(
            f"{layout.root}: store format {meta.get('format_version')} differs from "
            f"{STORE_FORMAT_VERSION}; ingest again with --overwrite"
        )
    old = {k: meta.get("settings", {}).get(k) for k in SAMPLE_SETTINGS}
    old["rate_hz"] = None if old.get("every") else old.get("rate_hz")
    new = settings.sampling()
    changed = [f"{k} {old[k]} -> {new[k]}" for k in SAMPLE_SETTINGS if old[k] != new[k]]
    if changed:
        raise InputError(
            f"{layout.root} was ingested with other settings ({'; '.join(changed)}); "
            "use --overwrite to start again, or another --store"
        )
    videos = pd.read_parquet(layout.videos) if layout.videos.exists() else pd.DataFrame()
    frames = pd.read_parquet(layout.frames) if layout.frames.exists() else pd.DataFrame()
    return videos, frames


@writes("store_dir", "ingest")
def ingest(
    manifest: str | os.PathLike,
    store_dir: str | os.PathLike,
    settings: IngestSettings | None = None,
    *,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Ingest the manifest's videos into the frame store ``store_dir``.

    Returns a JSON-able dict: store, videos (ingested in all), videos_new, videos_skipped,
    videos_removed, samples, samples_usable, videos_unusable, samples_unusable, failures
    (count), failed ([{video, reason}]), patients, splits ({part: n patients}), seconds.
    Raises PartialFailure (exit status 3), with this dict as ``.result``, when any video failed.

    Example
    -------
    >>> ingest("cohort/manifest.csv", "store", IngestSettings(rate_hz=2))  # doctest: +SKIP
    """
    start = time.perf_counter()
    settings = settings or IngestSettings()
    # A video of unknown scale is still sampled (short side resized, as the study did); only
    # --field-um needs the scale, and refuses such a video on its own.
    table = read_manifest(manifest, require_files=False, require_scale=False)
    labels = dict(zip(table["patient_id"], table["label"], strict=True))
    folds = feasible_folds(labels, settings.folds)
    splits = make_splits(
        labels, val=settings.val, test=settings.test, folds=folds, seed=settings.seed
    )
    layout = StoreLayout(store_dir)
    _clean_store(layout, everything=overwrite)
    old_videos, old_frames = _previous(layout, settings)
    _write_header(layout, settings, manifest, table, splits)

    jobs, keep = _plan_jobs(layout, settings, table, old_videos)
    order = {path: i for i, path in enumerate(table["video"])}
    state = _State(layout, splits, order)
    removed = sorted(set(old_videos.get("video_id", [])) - keep - {j["video_id"] for j in jobs})
    for video_id in removed:
        shutil.rmtree(layout.array(video_id), ignore_errors=True)
    if len(old_videos):
        state.videos = {r["video_id"]: r.to_dict() for _, r in old_videos.iterrows()
                        if r["video_id"] in keep}  # fmt: skip
        if len(old_frames):
            kept = old_frames[old_frames["video_id"].isin(keep)]
            state.frames = {v: f for v, f in kept.groupby("video_id", sort=False)}
    jobs = _fail_missing_files(state, jobs)  # before any decoding: a lost disk costs seconds
    state.write()
    _ingest_jobs(state, jobs, settings, quiet=quiet)
    state.write()
    _mark_finished(layout)

    result = state.summary()
    result.update(
        store=str(layout.root), folds=folds, videos_new=len(jobs) - len(state.failures),
        videos_skipped=len(keep), videos_removed=len(removed),
        seconds=round(time.perf_counter() - start, 2),
    )  # fmt: skip
    if "warning" in result:
        log.warning("%s", result["warning"])
    if state.failures:
        failures = list(state.failures.values())
        listed = (
            "; ".join(f"{f['video']}: {f['reason']}" for f in failures)
            if len(failures) <= _WARN_FAILURES
            else summarise_failures(failures) + f" (all: `sepsiscope store info {layout.root}`)"
        )
        exc = PartialFailure(
            f"{len(failures)} of {len(table)} video(s) could not be ingested: {listed}"
        )
        exc.result = result  # type: ignore[attr-defined]
        raise exc
    return result


def summarise_failures(failures: list[dict[str, Any]], *, examples: int = 3) -> str:
    """Failures counted by reason, most common first, each with its first few videos."""
    by_reason: dict[str, list[str]] = {}
    for failure in failures:
        kind = str(failure["reason"]).split(" (")[0].split(": ")[0]
        by_reason.setdefault(kind, []).append(Path(str(failure["video"])).name)
    parts = []
    for kind, videos in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(videos[:examples])
        more = f" and {len(videos) - examples} more" if len(videos) > examples else ""
        parts.append(f"{len(videos)} {kind} ({shown}{more})")
    return "; ".join(parts)


def _fail_missing_files(state: _State, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record every job whose file is missing as failed at once; return the others."""
    present = []
    for job in jobs:
        if os.path.exists(job["video"]):
            present.append(job)
        else:
            state.failures[job["video"]] = {
                "video": job["video"], "patient_id": job["patient_id"], "reason": "file not found"
            }  # fmt: skip
    missing = [job["video"] for job in jobs if job["video"] in state.failures]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        log.warning("%d of %d videos not found on disk: %s%s", len(missing), len(jobs),
                    ", ".join(missing[:5]), more)  # fmt: skip
    return present


def _mark_finished(layout: StoreLayout) -> None:
    """Record in store.json that this ingest ran to its end (``store info`` reads it)."""
    meta = read_json(layout.meta)
    meta.update(status="finished", finished_utc=_utc_now())
    write_json(layout.meta, meta)


def _utc_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_header(
    layout: StoreLayout,
    settings: IngestSettings,
    manifest: str | os.PathLike,
    table: pd.DataFrame,
    splits: dict[str, Any],
) -> None:
    """store.json (format, settings, provenance), the manifest as ingested and the splits."""
    layout.root.mkdir(parents=True, exist_ok=True)
    write_json(
        layout.meta,
        {"format_version": STORE_FORMAT_VERSION, "settings": settings.model_dump(mode="json"),
         "manifest": str(Path(manifest).resolve()), "status": "running",
         "started_utc": _utc_now(), **provenance()},
    )  # fmt: skip
    write_text(layout.manifest, table.drop(columns="y").to_csv(index=False))
    write_json(layout.splits, splits)


def _plan_jobs(
    layout: StoreLayout, settings: IngestSettings, table: pd.DataFrame, old_videos: pd.DataFrame
) -> tuple[list[dict[str, Any]], set[str]]:
    """The videos to (re)ingest, and the ids of those kept: complete and with unchanged manifest
    entries. A redone video keeps its id."""
    table["source_key"] = table.apply(_source_key, axis=1)
    done: dict[str, pd.Series] = {}
    for _, row in old_videos.iterrows():
        if layout.array(row["video_id"]).exists():
            done[row["path"]] = row
    used = {done[v]["video_id"] for v in table["video"] if v in done}
    jobs, keep = [], set()
    for _, row in table.iterrows():
        previous = done.get(row["video"])
        if previous is not None and previous["source_key"] == row["source_key"]:
            keep.add(previous["video_id"])
            continue
        video_id = (
            previous["video_id"] if previous is not None else make_video_id(row["video"], used)
        )
        jobs.append({**row.to_dict(), "video_id": video_id, "root": str(layout.root),
                     "plan": settings.plan()})  # fmt: skip
    return jobs, keep


def _ingest_jobs(
    state: _State, jobs: list[dict[str, Any]], settings: IngestSettings, *, quiet: bool
) -> None:
    """Run the jobs (here, in processes or on Dask), recording each video or failure as it ends."""
    pause = float(os.environ.get(_PAUSE_ENV, "0") or 0)
    written = time.monotonic()
    # spawn: no inherited locks or threads from the parent (zarr, blosc, torch)
    finished = each_finished(
        ingest_video, jobs, workers=settings.workers, scheduler=settings.scheduler, spawn=True
    )
    for job, result in track(finished, description="ingest", total=len(jobs), quiet=quiet):
        if "reason" in result:
            if len(state.failures) < _WARN_FAILURES:
                log.warning("%s: %s", job["video"], result["reason"])
            state.failures[job["video"]] = {
                "video": job["video"], "patient_id": job["patient_id"], "reason": result["reason"]
            }  # fmt: skip
        else:
            state.videos[job["video_id"]] = result["video"]
            state.frames[job["video_id"]] = result["frames"]
        # The tables are rewritten at most every WRITE_EVERY_S (rewriting them after every video
        # made a long manifest quadratic); a kill loses at most that much bookkeeping, and the
        # next run redoes those videos.
        if pause or time.monotonic() - written >= WRITE_EVERY_S:
            state.write()
            written = time.monotonic()
        if pause:
            time.sleep(pause)


class _State:
    """The tables in memory, rewritten atomically after every video."""

    def __init__(self, layout: StoreLayout, splits: dict[str, Any], order: dict[str, int]):
        self.layout, self.order = layout, order
        self.split = split_of(splits)
        self.fold = {p: i for i, f in enumerate(splits.get("folds", [])) for p in f}
        self.videos: dict[str, dict[str, Any]] = {}
        self.frames: dict[str, pd.DataFrame] = {}
        self.failures: dict[str, dict[str, Any]] = {}

    def _videos_table(self) -> pd.DataFrame:
        rows = sorted(self.videos.values(), key=lambda r: self.order.get(r["path"], math.inf))
        columns = ["video_id", "patient_id", "label", "y", "path", "n_samples", "usable"]
        table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
        table["patient_id"] = table["patient_id"].astype(str)
        table["split"] = table["patient_id"].map(self.split).fillna("none")
        table["fold"] = table["patient_id"].map(self.fold).fillna(-1).astype(int)
        return table

    def write(self) -> None:
        videos = self._videos_table()
        ids = list(videos["video_id"]) if len(videos) else []
        parts = [self.frames[v] for v in ids if v in self.frames]
        # split is not stored in the table: FrameStore joins it from splits.json
        stored_columns = [c for c in FRAME_COLUMNS if c != "split"]
        frames = (
            pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=stored_columns)
        )
        frames["patient_id"] = frames["patient_id"].astype(str)
        frames["usable"] = frames["usable"].astype(bool)
        frames["split"] = frames["patient_id"].map(self.split).fillna("none")
        # Frames first: a kill between the two writes leaves frame rows of a video the videos
        # table does not list yet, which the next run drops and redoes.
        write_table(self.layout.frames, frames)
        write_table(self.layout.videos, videos)
        failures = sorted(self.failures.values(), key=lambda r: self.order.get(r["video"], 0))
        write_table(
            self.layout.failures, pd.DataFrame(failures, columns=["video", "patient_id", "reason"])
        )
        self._frames = frames

    def summary(self) -> dict[str, Any]:
        videos, frames = self._videos_table(), self._frames
        n_usable = int(frames["usable"].sum()) if len(frames) else 0
        quality = quality_counts(videos, frames) if len(videos) else {}
        warning = quality_warning(quality, len(frames)) if quality else None
        return {
            **({"warning": warning} if warning else {}),
            "quality": quality,
            "videos": len(videos),
            "samples": len(frames),
            "samples_usable": n_usable,
            "samples_unusable": len(frames) - n_usable,
            "videos_unusable": int((~videos["usable"].astype(bool)).sum()) if len(videos) else 0,
            "failures": len(self.failures),
            "failed": [
                {"video": f["video"], "reason": f["reason"]} for f in self.failures.values()
            ],
            "patients": int(videos["patient_id"].nunique()) if len(videos) else 0,
            "splits": {
                part: sorted({p for p, s in self.split.items() if s == part})
                for part in ("train", "val", "test")
            },
        }


def quality_counts(videos: pd.DataFrame, frames: pd.DataFrame) -> dict[str, int]:
    """Unusable videos and frames, and how many each Massey score part rejected."""
    reject = fq.REJECT_SCORE
    quality = {
        "videos_unusable": int((~videos["usable"].astype(bool)).sum()) if len(videos) else 0,
        "frames_unusable": int((~frames["usable"].astype(bool)).sum()) if len(frames) else 0,
    }
    for part in ("illumination", "focus", "stability"):
        column = f"{part}_score"
        quality[f"frames_rejected_{part}"] = (
            int((frames[column] >= reject).sum()) if column in frames else 0
        )
    for part in ("illumination", "focus", "stability", "duration"):
        column = f"{part}_score"
        quality[f"videos_rejected_{part}"] = (
            int((videos[column] >= reject).sum()) if column in videos else 0
        )
    return quality


def quality_warning(quality: dict[str, int], n_samples: int) -> str | None:
    """A message when the quality gate removed more than half of the samples, naming why."""
    if not n_samples or quality["frames_unusable"] <= n_samples / 2:
        return None
    reasons = ", ".join(
        f"{key.removeprefix('videos_rejected_').removeprefix('frames_rejected_')} "
        f"({value} {'videos' if key.startswith('videos') else 'frames'})"
        for key, value in quality.items()
        if "rejected" in key and value
    )
    return (
        f"the quality gate flagged {quality['frames_unusable']} of {n_samples} samples unusable "
        f"(scored unacceptable for: {reasons or 'a total Massey score >= 10'}); training "
        "leaves them out. See `sepsiscope store info` and the quality gate in docs/manifest.md"
    )


def _counts(table: pd.DataFrame, column: str | None = None) -> dict[str, Any]:
    """``{"total", "by_label", "by_split"}`` counts of rows (or of unique ``column`` values)."""

    def count(frame: pd.DataFrame) -> int:
        return int(frame[column].nunique()) if column else len(frame)

    if not len(table):
        return {"total": 0, "by_label": {}, "by_split": {}}
    return {
        "total": count(table),
        "by_label": {str(k): count(g) for k, g in table.groupby("label")},
        "by_split": {str(k): count(g) for k, g in table.groupby("split")},
    }


def store_info(store_dir: str | os.PathLike) -> dict[str, Any]:
    """What a store holds: counts by label and split, quality exclusions, failures, splits.

    Returns a JSON-able dict: store, format_version, settings, patients, videos, frames (each
    ``{"total", "by_label", "by_split"}``; frames also ``usable``), quality (unusable videos and
    frames, and how many frames each Massey part rejected), failures ([{video, reason}]), splits
    ({part: [patient_id, ...]}), folds, size_bytes and raw_bytes (uint8 size of the samples),
    unknown_scale (videos without µm/px: count and ids), last_ingest ("finished", "running" or
    "cut off").
    """
    from sepsiscope.data.store import FrameStore

    store = FrameStore(store_dir)
    videos, frames = store.videos, store.frames
    quality = quality_counts(videos, frames)
    frame_counts = _counts(frames)
    frame_counts["usable"] = _counts(frames[frames["usable"].astype(bool)]) if len(frames) else 0
    size = sum(p.stat().st_size for p in store.layout.arrays.rglob("*") if p.is_file())
    return {
        "store": str(store.root),
        "format_version": store.meta.get("format_version"),
        "settings": store.meta.get("settings", {}),
        "patients": _counts(videos, "patient_id"),
        "videos": _counts(videos),
        "frames": frame_counts,
        "quality": quality,
        "failures": [
            {"video": str(r["video"]), "reason": str(r["reason"])}
            for _, r in store.failures.iterrows()
        ],
        "splits": {part: list(store.splits.get(part, [])) for part in ("train", "val", "test")},
        "folds": store.splits.get("folds", []),
        "size_bytes": int(size),
        "raw_bytes": int(len(frames) * 3 * store.size**2),
        "unknown_scale": unknown_scale(videos),
        "last_ingest": _last_ingest(store),
    }


def _last_ingest(store: Any) -> str:
    """ "finished", "running" (another process is ingesting now) or "cut off" (an ingest that
    was killed before its end: run it again to complete the store)."""
    from sepsiscope._lock import is_locked

    if store.meta.get("status", "finished") != "running":
        return "finished"
    return "running" if is_locked(store.root) else "cut off"


def unknown_scale(videos: pd.DataFrame) -> dict[str, Any]:
    """Videos of unknown µm/px in a store's videos table: their count and ids (sampled by pixels
    as the study did; ``measure`` cannot measure them)."""
    if "um_per_px" not in videos or videos.empty:
        return {"videos": 0, "video_ids": []}
    scale = pd.to_numeric(videos["um_per_px"], errors="coerce")
    ids = videos.loc[~(scale > 0), "video_id"].astype(str).tolist()
    return {"videos": len(ids), "video_ids": ids}
