"""Ground truth of one simulated video: consensus metrics and per-vessel records.

Definitions (see docs/simulator.md):

- only *visible* vessels count: those carrying red cells; a plasma-only capillary is invisible
  to a dark-field camera and so to any analysis of its video;
- lengths are centreline lengths inside the frame at the video's mean position (drift and jitter
  move the field around it by a few px);
- TVD = visible length / field area, mm/mm² (all vessels; and small vessels < 20 µm);
- PPV = length of small vessels with continuous or sluggish flow / visible small length, %;
- PVD = TVD(small) x PPV / 100, mm/mm²;
- MFI = mean over the four quadrants of the predominant (longest) flow category of visible small
  vessels in the quadrant, scored 0 stopped, 1 intermittent, 2 sluggish, 3 continuous;
  a quadrant without visible small vessels is left out;
- mean velocity = length-weighted mean red-cell speed of visible small vessels with continuous or
  sluggish flow, µm/s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sepsiscope.simulate.flow import FLOW_SCORE, PERFUSED
from sepsiscope.simulate.vessels import Vessel, _inside


def _segment_lengths(points: np.ndarray, box: tuple[float, float, float, float]):
    """Per-step lengths (px) inside ``box`` and the step midpoints."""
    mid = 0.5 * (points[1:] + points[:-1])
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.where(_inside(mid, box), step, 0.0), mid


def video_truth(
    vessels: list[Vessel], *, frame_box: tuple[float, float, float, float], um_per_px: float
) -> dict[str, Any]:
    """Consensus metrics of one field of view from its vessels (definitions in the module doc)."""
    x0, y0, x1, y1 = frame_box
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    area_mm2 = (x1 - x0) * (y1 - y0) * (um_per_px / 1000.0) ** 2
    mm_per_px = um_per_px / 1000.0
    total = small = perfused = speed_len = speed_sum = 0.0
    n_segments = 0
    quadrant_lengths = np.zeros((4, 4))  # quadrant x flow score
    for v in vessels:
        if not v.visible or len(v.points) < 2:
            continue
        steps, mid = _segment_lengths(v.points, frame_box)
        length = float(steps.sum())
        if length <= 0:
            continue
        n_segments += 1
        total += length
        if not v.small:
            continue
        small += length
        if v.flow in PERFUSED:
            perfused += length
            speed_len += length
            speed_sum += length * v.velocity_um_per_s
        quadrant = (mid[:, 0] >= cx).astype(int) + 2 * (mid[:, 1] >= cy).astype(int)
        np.add.at(quadrant_lengths[:, FLOW_SCORE[v.flow]], quadrant, steps)
    scored = quadrant_lengths.sum(axis=1) > 0
    mfi = float(np.argmax(quadrant_lengths[scored], axis=1).mean()) if scored.any() else np.nan
    ppv = 100.0 * (perfused / small) if small > 0 else np.nan
    tvd_small = small * mm_per_px / area_mm2
    return {
        "tvd_mm_per_mm2": total * mm_per_px / area_mm2,
        "tvd_small_mm_per_mm2": tvd_small,
        "pvd_mm_per_mm2": perfused * mm_per_px / area_mm2,
        "ppv_percent": ppv,
        "mfi": mfi,
        "n_segments": n_segments,
        "total_length_mm": total * mm_per_px,
        "mean_velocity_um_per_s": speed_sum / speed_len if speed_len > 0 else np.nan,
    }


def vessel_records(
    vessels: list[Vessel], *, origin_px: tuple[float, float], tolerance_px: float = 0.3
) -> list[dict[str, Any]]:
    """Per-vessel truth: centreline in frame px (simplified within ``tolerance_px``), diameter,
    flow category, velocity, visible and small flags.

    The centreline may run past the frame edges (the canvas margin); only the part inside the frame
    counts in the metrics.
    """
    import cv2

    records = []
    for i, v in enumerate(vessels):
        pts = (v.points - np.asarray(origin_px)).astype(np.float32)
        if len(pts) > 2:
            pts = cv2.approxPolyDP(pts.reshape(-1, 1, 2), tolerance_px, False).reshape(-1, 2)
        records.append(
            {
                "id": i,
                "centreline_px": np.round(pts.astype(float), 1).tolist(),
                "diameter_um": round(v.diameter_um, 2),
                "flow": v.flow,
                "velocity_um_per_s": round(v.velocity_um_per_s, 1),
                "visible": v.visible,
                "small": v.small,
            }
        )
    return records
