"""Consensus microcirculation metrics from measured segments and their flow.

Definitions follow the round-table conference (De Backer et al. 2007) and the second consensus
(Ince et al. 2018). Densities are centreline length over the analysed field's area; "small" means
a diameter under 20 µm. PPV is measured by length (perfused small-vessel length over all
small-vessel length), as automated analysis does (AVA 3+), and also by count (the consensus'
hand-scoring definition) in ``ppv_count_percent``. PVD = small-vessel TVD x PPV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sepsiscope.microcirculation.flow import MFI_SCORE, PERFUSED, SegmentFlow
from sepsiscope.microcirculation.skeleton import Segment

QUADRANTS = 4
GRID_LINES = 3


def _bbox(field: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(field.any(axis=1))[0], np.nonzero(field.any(axis=0))[0]
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def de_backer_score(
    paths_px: Sequence[np.ndarray], field: np.ndarray, *, um_per_px: float
) -> float:
    """Vessels crossing 3 equally spaced horizontal and 3 vertical lines per mm of line, n/mm.

    Parameters
    ----------
    paths_px : sequence of (N, 2) float ndarray
        Centrelines ``(row, col)``.
    field : (H, W) bool ndarray
        The analysed field; the grid spans its bounding box.
    um_per_px : float
    """
    top, bottom, left, right = _bbox(field)
    if bottom <= top or right <= left:
        return float("nan")
    rows = top + (bottom - top) * np.arange(1, GRID_LINES + 1) / (GRID_LINES + 1)
    cols = left + (right - left) * np.arange(1, GRID_LINES + 1) / (GRID_LINES + 1)
    crossings = 0
    for path in paths_px:
        for axis, lines in ((0, rows), (1, cols)):
            side = np.sign(path[:, axis][:, None] - lines[None, :])
            side[side == 0] = 1
            crossings += int(np.sum(side[1:] != side[:-1]))
    line_mm = GRID_LINES * ((right - left) + (bottom - top)) * um_per_px / 1000
    return crossings / line_mm


def quadrant_mfi(
    paths_px: Sequence[np.ndarray], categories: Sequence[str], field: np.ndarray
) -> tuple[float, list[float]]:
    """Microvascular flow index: each quadrant scored by its predominant flow, then averaged.

    The predominant flow of a quadrant is the category holding most centreline length there
    (0 none, 1 intermittent, 2 sluggish, 3 continuous). Quadrants without vessels are skipped.

    Returns
    -------
    mfi : float
        NaN when no quadrant holds a vessel.
    scores : list of 4 float
        Top-left, top-right, bottom-left, bottom-right (NaN for an empty quadrant).
    """
    top, bottom, left, right = _bbox(field)
    mid_row, mid_col = (top + bottom) / 2, (left + right) / 2
    length = np.zeros((QUADRANTS, len(MFI_SCORE)))
    order = list(MFI_SCORE)
    for path, category in zip(paths_px, categories, strict=True):
        if len(path) < 2:
            continue
        mids = (path[1:] + path[:-1]) / 2
        steps = np.hypot(*np.diff(path, axis=0).T)
        quadrant = 2 * (mids[:, 0] >= mid_row) + (mids[:, 1] >= mid_col)
        np.add.at(length[:, order.index(category)], quadrant, steps)
    scores = [
        float(MFI_SCORE[order[int(np.argmax(q))]]) if q.sum() > 0 else float("nan") for q in length
    ]
    valid = [s for s in scores if np.isfinite(s)]
    return (float(np.mean(valid)) if valid else float("nan")), scores


def _mean_velocity(
    velocity: np.ndarray, length_mm: np.ndarray, perfused: np.ndarray, category: np.ndarray
) -> tuple[float, float]:
    """Length-weighted mean red-cell velocity (µm/s) of the ``perfused`` segments, and the share
    of their length (%) that is continuous flow not followed.

    A continuous segment without a velocity is flow that could not be followed: cells too fast
    for its length, or blurred over the exposure. Those are mostly the fastest, and leaving them
    out biased the mean low (on both simulators, by about 5 % with the segments' true
    velocities); they count at the mean of the followed continuous segments. Where no continuous
    segment was followed they are left out, and the mean is the followed sluggish ones' (too low
    where that share is large). NaN for both when no segment was followed."""
    measured = perfused & np.isfinite(velocity)
    if not measured.any():
        return float("nan"), float("nan")
    weights = length_mm[measured]
    total = float(np.sum(velocity[measured] * weights))
    followed = measured & (category == "continuous")
    unfollowed = perfused & ~np.isfinite(velocity) & (category == "continuous")
    unfollowed_mm = float(length_mm[unfollowed].sum())
    share = 100 * unfollowed_mm / float(length_mm[perfused].sum())
    if not followed.any():
        return total / float(weights.sum()), share
    fill = float(np.average(velocity[followed], weights=length_mm[followed]))
    return (total + fill * unfollowed_mm) / (float(weights.sum()) + unfollowed_mm), share


def video_metrics(
    segments: Sequence[Segment],
    flows: Sequence[SegmentFlow],
    field: np.ndarray,
    *,
    um_per_px: float,
) -> dict[str, float]:
    """Per-video consensus metrics.

    Parameters
    ----------
    segments : sequence of Segment
    flows : sequence of SegmentFlow, one per segment
    field : (H, W) bool ndarray
        Analysed field; its area is the denominator of every density.
    um_per_px : float

    Returns
    -------
    dict with ``n_segments``, ``total_length_mm``, ``field_area_mm2``, ``tvd_mm_per_mm2``,
    ``tvd_small_mm_per_mm2``, ``ppv_percent``, ``ppv_count_percent``, ``pvd_mm_per_mm2``, ``mfi``,
    ``mfi_quadrants``, ``de_backer_per_mm``, ``de_backer_small_per_mm``,
    ``mean_velocity_um_per_s``, ``n_velocity_measured``, ``velocity_unfollowed_length_percent``
    (perfused small-vessel length of continuous flow not followed, counted at the followed
    continuous mean where there is one, see :func:`_mean_velocity`), ``blurred_length_percent``
    (small-vessel length perfused only because of time judged blurred fast flow, %) and the
    small-vessel length share of each flow category (``small_<category>_percent``).
    """
    area_mm2 = float(field.sum()) * (um_per_px / 1000) ** 2
    length_mm = np.array([s.length_um for s in segments]) / 1000
    small = np.array([s.small for s in segments], bool)
    category = np.array([f.category for f in flows])
    velocity = np.array([f.velocity_um_per_s for f in flows], float)
    perfused = np.isin(category, PERFUSED)
    small_mm = float(length_mm[small].sum()) if len(segments) else 0.0
    tvd = float(length_mm.sum()) / area_mm2 if area_mm2 > 0 else float("nan")
    tvd_small = small_mm / area_mm2 if area_mm2 > 0 else float("nan")
    ppv = 100 * float(length_mm[small & perfused].sum()) / small_mm if small_mm > 0 else np.nan
    ppv_count = 100 * float(perfused[small].mean()) if small.any() else float("nan")
    paths = [s.path_px for s in segments]
    small_paths = [p for p, s in zip(paths, small, strict=True) if s]
    small_categories = [c for c, s in zip(category, small, strict=True) if s]
    mfi, quadrants = quadrant_mfi(small_paths, small_categories, field)
    # red-cell velocity is a capillary measure (like PPV and MFI): venules are left out
    measured = small & perfused & np.isfinite(velocity)
    mean_velocity, unfollowed = _mean_velocity(velocity, length_mm, small & perfused, category)
    by_blur = np.array([f.perfused_by_blur for f in flows], bool)
    blurred_mm = float(length_mm[small & by_blur].sum()) if len(segments) else 0.0
    shares = {
        f"small_{c}_percent": (
            100 * float(length_mm[small & (category == c)].sum()) / small_mm
            if small_mm > 0
            else float("nan")
        )
        for c in MFI_SCORE
    }
    return {
        "n_segments": len(segments),
        "n_small_segments": int(small.sum()),
        "total_length_mm": float(length_mm.sum()),
        "field_area_mm2": area_mm2,
        "tvd_mm_per_mm2": tvd,
        "tvd_small_mm_per_mm2": tvd_small,
        "ppv_percent": float(ppv),
        "ppv_count_percent": ppv_count,
        "pvd_mm_per_mm2": tvd_small * float(ppv) / 100,
        "mfi": mfi,
        "mfi_quadrants": quadrants,
        "de_backer_per_mm": de_backer_score(paths, field, um_per_px=um_per_px),
        "de_backer_small_per_mm": de_backer_score(small_paths, field, um_per_px=um_per_px),
        "mean_velocity_um_per_s": mean_velocity,
        "n_velocity_measured": int(measured.sum()),
        "velocity_unfollowed_length_percent": unfollowed,
        # small-vessel length perfused only by "a uniform still column is blurred fast flow"
        "blurred_length_percent": 100 * blurred_mm / small_mm if small_mm > 0 else float("nan"),
        **shares,
    }


def heterogeneity_index(site_mfi: Sequence[float]) -> float:
    """HI = (highest site MFI - lowest) / mean site MFI (Trzeciak 2007); NaN if undefined."""
    values = np.asarray([v for v in site_mfi if np.isfinite(v)], float)
    if values.size < 2 or values.mean() <= 0:
        return float("nan")
    return float((values.max() - values.min()) / values.mean())


def patient_heterogeneity(videos: pd.DataFrame) -> pd.DataFrame:
    """Per-patient HI across sites from a per-video table (``patient_id``, ``site``, ``mfi``).

    Videos of one site are averaged first. Returns ``patient_id``, ``n_sites``, ``mfi_mean``,
    ``mfi_min``, ``mfi_max``, ``hi``.
    """
    rows = []
    for patient, group in videos.groupby("patient_id", sort=True):
        site_mfi = group.groupby("site")["mfi"].mean().dropna()
        rows.append(
            {
                "patient_id": patient,
                "n_sites": int(site_mfi.size),
                "mfi_mean": float(site_mfi.mean()) if site_mfi.size else float("nan"),
                "mfi_min": float(site_mfi.min()) if site_mfi.size else float("nan"),
                "mfi_max": float(site_mfi.max()) if site_mfi.size else float("nan"),
                "hi": heterogeneity_index(site_mfi.tolist()),
            }
        )
    return pd.DataFrame(rows)
