"""What a page shows, gathered from the files the stages wrote: one video, one patient.

Nothing here computes a stage again: metrics come from ``measure``'s tables (recomputed from its
geometry only to apply a reviewer's edits: :class:`Reviewable`, with
:mod:`sepsiscope.microcirculation.review`), the probability from ``predict``'s result, the
explanations from ``explain``'s PNGs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sepsiscope._io import read_json
from sepsiscope.app.project import Project
from sepsiscope.errors import InputError
from sepsiscope.microcirculation.references import REFERENCES
from sepsiscope.microcirculation.review import (
    Edit,
    Geometry,
    Review,
    load_geometry,
    load_review,
    reviewed_metrics,
    reviewed_vessels,
    save_review,
)

# measure's per-video figures shown with a video (besides the REFERENCES metrics)
EXTRA_METRICS = (
    "n_segments",
    "n_vessels",
    "blurred_length_percent",
    "velocity_unfollowed_length_percent",
    "field_area_mm2",
)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def measured_row(project: Project, video_id: str) -> dict[str, Any] | None:
    """``measure``'s row of the video (None before it was measured)."""
    layout = project.measurements(video_id)
    if not layout.videos.exists():
        return None
    table = pd.read_parquet(layout.videos)
    rows = table[table["video_id"].astype(str) != ""]
    return {k: _clean(v) for k, v in rows.iloc[0].to_dict().items()} if len(rows) else None


@dataclass(frozen=True)
class Reviewable:
    """What a review of a measured video works on: measure's id for it, its geometry, its
    vessel table and the saved review."""

    measure_id: str
    geometry: Geometry
    vessels: pd.DataFrame
    review: Review

    def table(self, review: Review | None = None) -> pd.DataFrame:
        """The vessel table after ``review`` (default: the saved one)."""
        return reviewed_vessels(self.geometry, self.vessels, review or self.review)


def reviewable(
    project: Project, video_id: str, row: dict[str, Any] | None = None
) -> Reviewable | None:
    """The video's :class:`Reviewable` (None before an accepted measurement); ``row`` is
    ``measure``'s row when the caller has read it already."""
    row = row if row is not None else measured_row(project, video_id)
    layout = project.measurements(video_id)
    if row is None or not layout.geometry(row["video_id"]).exists():
        return None
    vessels = pd.read_parquet(layout.vessels) if layout.vessels.exists() else pd.DataFrame()
    return Reviewable(row["video_id"], load_geometry(layout.geometry(row["video_id"])), vessels,
                      load_review(layout, row["video_id"]))  # fmt: skip


def require_reviewable(project: Project, video_id: str) -> Reviewable:
    """:func:`reviewable`, or InputError when there is nothing to review yet."""
    found = reviewable(project, video_id)
    if found is None:
        raise InputError(f"{video_id}: not measured yet (or rejected): no vessels to review")
    return found


def video_view(project: Project, video_id: str) -> dict[str, Any]:
    """Everything the video page shows, JSON-able."""
    video = project.video(video_id)
    if video is None:
        raise InputError(f"no video {video_id!r} in this project")
    view: dict[str, Any] = {"video": video, "measured": None, "metrics": [], "prediction": None}
    row = measured_row(project, video_id)
    if row is not None:
        view["measured"] = {
            "status": row["status"], "message": row.get("message") or "",
            "warnings": [w for w in (row.get("warnings") or "").split(";") if w],
            "quality_flags": [f for f in (row.get("quality_flags") or "").split(";") if f],
            "quality": quality_parts(row),
            "analysed_s": [row.get("analysed_start_s"), row.get("analysed_end_s")],
            "measure_id": row["video_id"],
        }  # fmt: skip
        after = reviewable(project, video_id, row)
        edited = reviewed_metrics(after.table(), after.geometry) if after else {}
        for ref in REFERENCES:
            automatic = row.get(ref.metric)
            value = _clean(edited.get(ref.metric, automatic))
            view["metrics"].append({
                "metric": ref.metric, "label": ref.label, "unit": ref.unit, "value": value,
                "automatic": automatic, "edited": bool(after) and value != automatic,
                "healthy": ref.healthy, "septic_shock": ref.septic_shock, "source": ref.source,
                "abnormal": ref.is_abnormal(value),
            })  # fmt: skip
        view["extra"] = {k: _clean(edited.get(k, row.get(k))) for k in EXTRA_METRICS}
        view["n_edits"] = int(edited.get("n_edits", 0))
        view["review_version"] = after.review.version if after else 0
    view["prediction"] = prediction_view(project, video_id)
    folder = project.explanations(video_id)
    view["gradcam"] = sorted(p.name for p in folder.glob("*.png")) if folder.exists() else []
    return view


def quality_parts(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The Massey 2013 parts ``measure`` can judge, each with its figure and verdict (content
    and pressure need a person: the reviewer's eye)."""
    flags = set((row.get("quality_flags") or "").split(";"))

    def part(name: str, figure: str, bad: set[str]) -> dict[str, Any]:
        hit = sorted(flags & bad)
        return {"part": name, "figure": figure, "verdict": ", ".join(hit) if hit else "ok"}

    intensity, saturated = (
        row.get("quality_median_intensity"),
        row.get("quality_saturated_fraction"),
    )
    focus, shift = row.get("quality_focus"), row.get("motion_max_shift_um")
    return [
        part("illumination", f"median {_pct(intensity)} of full scale, {_pct(saturated)} saturated",
             {"too_dark", "saturated"}),
        part("duration", f"{row.get('duration_s') or 0:.1f} s analysed", {"too_short"}),
        part("focus", f"{focus:.4f}" if focus is not None else "n/a", {"blurred"}),
        part("stability", f"largest drift {shift:.0f} µm" if shift is not None else "n/a", set()),
        part("content and pressure", "judged by the reviewer", set()),
    ]  # fmt: skip


def _pct(value: float | None) -> str:
    return f"{100 * value:.0f} %" if value is not None else "n/a"


def prediction_view(project: Project, video_id: str) -> dict[str, Any] | None:
    """The network's result for the video, with its rolling probability (None without one)."""
    path = project.prediction(video_id)
    if not path.exists():
        return None
    result = read_json(path)
    keep = ("probability", "interval", "verdict", "decided", "threshold", "threshold_source",
            "frames_used", "frames_skipped", "skipped_by")  # fmt: skip
    view = {k: result.get(k) for k in keep}
    table = Path(result.get("table") or "")
    if table.suffix == ".parquet" and table.exists():
        # as the video plays: each sample's probability and the mean of the samples so far
        # (predict updates its own rolling figure once per batch, too coarse to plot)
        frames = pd.read_parquet(table).dropna(subset=["probability"]).sort_values("time_s")
        running = frames["probability"].expanding().mean()
        view["rolling"] = {
            "time_s": frames["time_s"].round(3).tolist(),
            "sample": frames["probability"].round(4).tolist(),
            "running": running.round(4).tolist(),
        }
    return view


def save_edits(
    project: Project, video_id: str, edits: list[Edit], *, version: int
) -> dict[str, Any]:
    """Check ``edits`` against the video's vessels, then save them on ``version`` of its review
    (EditConflict if it changed since); the video's view after them."""
    current = require_reviewable(project, video_id)
    review = current.review
    current.table(review.model_copy(update={"edits": review.edits + edits}))  # a vessel that is
    # not there is refused here, before anything is kept
    save_review(project.measurements(video_id), current.measure_id, edits, version=version)
    return video_view(project, video_id)


def vessels_view(project: Project, video_id: str) -> dict[str, Any]:
    """The vessels to draw and edit: centrelines (analysed px), categories and flags."""
    current = require_reviewable(project, video_id)
    table, geometry = current.table(), current.geometry
    height, width = geometry.field.shape
    vessels = [
        {
            "segment": int(r.segment), "flow": str(r.flow), "small": bool(r.small),
            "length_um": round(float(r.length_um), 1),
            "diameter_um": round(float(r.diameter_um), 1),
            "velocity_um_per_s": _clean(float(r.velocity_um_per_s)),
            "excluded": bool(r.excluded), "edited": bool(r.edited), "source": str(r.source),
            "points": [[round(float(y), 1), round(float(x), 1)] for y, x in r.path_px[::2]]
            + [[round(float(r.path_px[-1][0]), 1), round(float(r.path_px[-1][1]), 1)]],
            "has_kymograph": r.source == "measured" and geometry.kymographs is not None,
        }
        for r in table.itertuples()
    ]  # fmt: skip
    return {"width": width, "height": height, "um_per_px": geometry.um_per_px,
            "vessels": vessels}  # fmt: skip


def patient_view(project: Project, patient_id: str) -> dict[str, Any]:
    """A patient's videos by site, HI across sites, and the patient-level probability."""
    from sepsiscope.microcirculation.consensus import heterogeneity_index

    videos = project.videos(patient_id)
    if not videos:
        raise InputError(f"no patient {patient_id!r} in this project")
    rows, threshold = [], None
    for video in sorted(videos, key=lambda v: (str(v["site"]), v["video_id"])):
        view = video_view(project, video["video_id"])
        metrics = {ref.metric: None for ref in REFERENCES}
        metrics.update({m["metric"]: m["value"] for m in view["metrics"]})
        prediction = view["prediction"] or {}
        threshold = threshold if threshold is not None else prediction.get("threshold")
        rows.append({
            "video_id": video["video_id"], "site": video["site"], "state": video["state"],
            "status": (view["measured"] or {}).get("status", ""),
            **metrics, "edits": view.get("n_edits", 0),
            "probability": prediction.get("probability"), "verdict": prediction.get("verdict"),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    site_mfi = (
        table[table["status"] == "ok"].groupby("site")["mfi"].mean().dropna()
        if "mfi" in table
        else pd.Series(dtype=float)
    )
    probabilities = [p for p in table["probability"] if p is not None and p == p]
    probability = sum(probabilities) / len(probabilities) if probabilities else None
    verdict = None
    if probability is not None and threshold is not None:
        verdict = "septic" if probability >= threshold else "non-septic"
    return {
        "patient_id": patient_id, "label": videos[0]["label"], "videos": rows,
        "n_sites": int(site_mfi.size),
        "hi": heterogeneity_index(site_mfi.tolist()) if site_mfi.size >= 2 else None,
        "probability": probability, "threshold": threshold, "verdict": verdict,
        "probability_rule": "mean of the videos' probabilities",
    }  # fmt: skip
