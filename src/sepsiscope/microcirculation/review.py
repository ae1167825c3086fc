"""A reviewer's corrections of a measured video, and the metrics they give.

AVA and MicroTools users check every detected vessel and correct what the software got wrong;
this module is that step's library. ``measure`` saves, for every accepted video, its geometry
(:meth:`MeasurementLayout.geometry`): each segment's centreline in the analysed pixel grid, the
analysed field, the chains of segments that continue each other, the registered mean image and
the scale. A review is a list of edits kept in a sidecar beside the automatic result
(:meth:`MeasurementLayout.edits_of`), never in it, each with its author and time:

- ``flow``: set a segment's flow category (``none``, ``intermittent``, ``sluggish``,
  ``continuous``; MFI 0-3);
- ``exclude`` / ``include``: leave a segment out of every metric, or put it back;
- ``add``: a vessel the software missed, as a polyline (row, col in analysed px), with its
  category and diameter (µm; 10 by default, a capillary);
- ``remove``: take back an added vessel.

:func:`reviewed_metrics` recomputes the consensus metrics from the geometry and the edits with
the same function ``measure`` uses, so a review without edits gives ``measure``'s own figures.
Each save must name the version it edited (:func:`save_review`): a second browser tab that
edited an older version is refused with :class:`EditConflict` instead of losing an edit.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from sepsiscope._io import atomic_path, read_json, write_json
from sepsiscope.errors import InputError
from sepsiscope.layout import MeasurementLayout
from sepsiscope.microcirculation._figures import stretch_to_uint8
from sepsiscope.microcirculation.analyse import SPUR_UM
from sepsiscope.microcirculation.chains import count_vessels
from sepsiscope.microcirculation.consensus import video_metrics
from sepsiscope.microcirculation.flow import PERFUSED, SegmentFlow
from sepsiscope.microcirculation.skeleton import SMALL_VESSEL_UM, Segment

if TYPE_CHECKING:
    from sepsiscope.microcirculation.analyse import Analysis

FlowCategory = Literal["none", "intermittent", "sluggish", "continuous"]
ADDED_DIAMETER_UM = 10.0  # a drawn vessel is a capillary unless the reviewer says otherwise


class EditConflict(InputError):
    """The review changed since the version the edit was made on (another tab or person)."""

    exit_code = 2


@dataclass(frozen=True)
class Geometry:
    """What a review needs of a measured video (analysed pixel grid: ``um_per_px`` µm/px)."""

    paths_px: list[np.ndarray]  # one (N, 2) (row, col) centreline per segment
    field: np.ndarray  # (H, W) bool, the analysed field (the densities' denominator)
    chains: list[list[int]]  # segments that continue each other straight through junctions
    mean_image: np.ndarray  # (H, W) uint8, the registered temporal mean, contrast-stretched
    um_per_px: float
    scale: tuple[float, float]  # original pixels per analysed pixel (rows, cols)
    fps: float = float("nan")
    kymographs: list[np.ndarray] | None = None  # (T, L) uint8 space-time diagram per segment


def save_geometry(
    path: str | os.PathLike,
    analysis: Analysis,
    *,
    um_per_px: float,
    scale: tuple[float, float],
    fps: float,
) -> Path:
    """Write an accepted video's :class:`Geometry` and space-time diagrams (compressed
    ``.npz``; about 0.2-2 MB for 10 s of video)."""
    paths = [s.path_px.astype(np.float32) for s in analysis.segments]
    chains = [[i for i, _ in chain] for chain in analysis.chains]
    kymos = [stretch_to_uint8(k) for k in analysis.kymographs]
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            paths=np.concatenate(paths) if paths else np.zeros((0, 2), np.float32),
            path_ends=np.cumsum([len(p) for p in paths], dtype=np.int64),
            field=analysis.field_mask.astype(bool),
            chains=np.array([i for c in chains for i in c], np.int64),
            chain_ends=np.cumsum([len(c) for c in chains], dtype=np.int64),
            mean_image=stretch_to_uint8(analysis.mean_image),
            um_per_px=np.float64(um_per_px),
            scale=np.array(scale, np.float64),
            fps=np.float64(fps),
            kymographs=np.concatenate(kymos, axis=1) if kymos else np.zeros((0, 0), np.uint8),
            kymograph_ends=np.cumsum([k.shape[1] for k in kymos], dtype=np.int64),
        )
    return Path(path)


def load_geometry(path: str | os.PathLike) -> Geometry:
    """Read a geometry file written by :func:`save_geometry`."""
    with np.load(path, allow_pickle=False) as data:
        paths = np.split(data["paths"].astype(float), data["path_ends"][:-1])
        chains = (
            np.split(data["chains"], data["chain_ends"][:-1]) if len(data["chain_ends"]) else []
        )
        kymos = None
        if "kymographs" in data and len(data["kymograph_ends"]):
            kymos = np.split(data["kymographs"], data["kymograph_ends"][:-1], axis=1)
        return Geometry(
            paths_px=paths if len(data["path_ends"]) else [],
            field=data["field"],
            chains=[c.tolist() for c in chains],
            mean_image=data["mean_image"],
            um_per_px=float(data["um_per_px"]),
            scale=(float(data["scale"][0]), float(data["scale"][1])),
            fps=float(data["fps"]) if "fps" in data else float("nan"),
            kymographs=kymos,
        )


class Edit(BaseModel):
    """One correction, in the order it was made."""

    action: Literal["flow", "exclude", "include", "add", "remove"]
    segment: int | None = Field(None, ge=0, description="segment (added: its number too)")
    flow: FlowCategory | None = None
    points_px: list[tuple[float, float]] | None = Field(
        None, description="add: the polyline, (row, col) in analysed px"
    )
    diameter_um: float | None = Field(None, gt=0, le=200)
    author: str = Field("", max_length=200)
    at: str = ""


class Review(BaseModel):
    """A video's edits; ``version`` counts the saves."""

    video_id: str
    version: int = 0
    edits: list[Edit] = []


def load_review(layout: MeasurementLayout, video_id: str) -> Review:
    """The saved review of a video (no edits when there is none)."""
    path = layout.edits_of(video_id)
    if not path.exists():
        return Review(video_id=video_id)
    return Review.model_validate(read_json(path))


def save_review(
    layout: MeasurementLayout, video_id: str, edits: list[Edit], *, version: int
) -> Review:
    """Append ``edits`` to the review of ``video_id`` if it is still at ``version``.

    Raises :class:`EditConflict` when someone saved since (the caller reloads and tries again);
    edits without a time get the current UTC time. Returns the saved review.
    """
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with _locked(layout.edits_of(video_id)):
        review = load_review(layout, video_id)
        if review.version != version:
            raise EditConflict(
                f"{video_id}: the review changed since you loaded it (version {version}, now "
                f"{review.version}): reload to see the other edits, then edit again"
            )
        stamped = [e.model_copy(update={"at": e.at or now}) for e in edits]
        review = review.model_copy(
            update={"version": review.version + 1, "edits": review.edits + stamped}
        )
        write_json(layout.edits_of(video_id), review.model_dump())
    return review


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reviewed_vessels(geometry: Geometry, vessels: pd.DataFrame, review: Review) -> pd.DataFrame:
    """The vessel table after the review: measured segments (``excluded`` and ``edited``
    marked) then added vessels (``source == "added"``), with their centrelines (analysed px)."""
    table = vessels.sort_values("segment").reset_index(drop=True).copy()
    if len(table) != len(geometry.paths_px):
        raise InputError(
            f"{review.video_id}: {len(table)} vessel rows but {len(geometry.paths_px)} "
            "centrelines: the geometry is from another measurement"
        )
    table["excluded"] = False
    table["edited"] = False
    table["source"] = "measured"
    table["path_px"] = list(geometry.paths_px)
    added: dict[int, dict[str, Any]] = {}
    n = len(table)
    for edit in review.edits:
        segment = edit.segment
        if edit.action == "add":
            added[n + len(added)] = _added_vessel(edit, geometry)
        elif segment is not None and segment in added:
            if edit.action == "remove":
                added[segment]["excluded"] = True
            elif edit.action == "flow" and edit.flow:
                added[segment]["flow"] = edit.flow
        elif segment is not None and segment < n:
            if edit.action == "flow" and edit.flow:
                table.loc[segment, "flow"] = edit.flow
                table.loc[segment, "perfused_by_blur"] = False  # the reviewer saw it
                # a velocity measured on flow stays with a perfused category; none's 0 µm/s is
                # no speed, so a flip from none to perfused leaves the velocity unknown
                if edit.flow not in PERFUSED or table.loc[segment, "velocity_um_per_s"] == 0:
                    table.loc[segment, "velocity_um_per_s"] = np.nan
            elif edit.action in ("exclude", "include"):
                table.loc[segment, "excluded"] = edit.action == "exclude"
            table.loc[segment, "edited"] = True
        else:
            raise InputError(f"{review.video_id}: edit of segment {segment}, which is not there")
    if added:
        extra = pd.DataFrame([{"video_id": review.video_id, "segment": k, **v}
                              for k, v in added.items()])  # fmt: skip
        table = pd.concat([table, extra], ignore_index=True)
    return table


def _added_vessel(edit: Edit, geometry: Geometry) -> dict[str, Any]:
    points = np.asarray(edit.points_px or [], float)
    if points.ndim != 2 or len(points) < 2:
        raise InputError("an added vessel needs a polyline of at least 2 points")
    height, width = geometry.field.shape
    points[:, 0] = points[:, 0].clip(0, height - 1)
    points[:, 1] = points[:, 1].clip(0, width - 1)
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    # resampled at 1 px, as a measured centreline, so grid crossings and quadrants see it whole
    along = np.concatenate([[0.0], np.cumsum(steps)])
    at = np.linspace(0, along[-1], max(2, int(np.ceil(along[-1])) + 1))
    path = np.column_stack([np.interp(at, along, points[:, k]) for k in (0, 1)])
    diameter = edit.diameter_um or ADDED_DIAMETER_UM
    return {
        "length_um": float(steps.sum()) * geometry.um_per_px,
        "diameter_um": diameter, "small": diameter < SMALL_VESSEL_UM,
        "flow": edit.flow or "continuous",
        "velocity_um_per_s": np.nan, "perfused_by_blur": False, "excluded": False,
        "edited": True, "source": "added", "path_px": path,
    }  # fmt: skip


def reviewed_metrics(table: pd.DataFrame, geometry: Geometry) -> dict[str, Any]:
    """The consensus metrics of a reviewed vessel table (:func:`reviewed_vessels`), computed as
    ``measure`` computes them; ``n_vessels`` counts the vessels that the kept segments and added
    vessels make (:func:`.chains.count_vessels`)."""
    kept = table[~table["excluded"].astype(bool)]
    segments = [
        Segment(path_px=np.asarray(r.path_px, float), length_um=float(r.length_um),
                diameter_um=float(r.diameter_um))
        for r in kept.itertuples()
    ]  # fmt: skip
    flows = [
        SegmentFlow(category=str(r.flow), velocity_um_per_s=float(r.velocity_um_per_s),
                    moving_fraction=float("nan"), perfused_by_blur=bool(r.perfused_by_blur))
        for r in kept.itertuples()
    ]  # fmt: skip
    metrics = video_metrics(segments, flows, geometry.field, um_per_px=geometry.um_per_px)
    metrics.pop("mfi_quadrants", None)
    metrics["n_vessels"] = count_vessels(
        [np.asarray(p, float) for p in kept["path_px"]], kept["length_um"].astype(float).tolist(),
        um_per_px=geometry.um_per_px, min_um=SPUR_UM,
    )  # fmt: skip
    metrics["n_edits"] = int(table["edited"].sum())
    return metrics


__all__ = [
    "Edit",
    "EditConflict",
    "Geometry",
    "Review",
    "load_geometry",
    "load_review",
    "reviewed_metrics",
    "reviewed_vessels",
    "save_geometry",
    "save_review",
]
