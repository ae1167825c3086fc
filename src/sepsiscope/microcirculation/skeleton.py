"""Centrelines split into vessel segments, with length and diameter in µm.

A segment runs between two junctions, a junction and an end, or two ends. The split is done here
on the pixel graph rather than with skan, whose numba compilation costs about 10 s per process
(every CLI call and every worker) for a few milliseconds of work on a vessel skeleton.
Short side branches (spurs) that a mask's rough edge leaves on a skeleton are pruned first. Length
is measured along the centreline after smoothing its pixel staircase, which otherwise overstates
an oblique vessel's length by up to 8 %; diameter is twice the distance from the centreline to the
mask's edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

SMALL_VESSEL_UM = 20.0  # consensus cut-off between small vessels (capillaries) and large ones
JUNCTION_STUB_PX = 3.0  # shorter runs between two junction pixels belong to the junction


@dataclass(frozen=True)
class Segment:
    """One vessel segment.

    Attributes
    ----------
    path_px : (N, 2) float ndarray
        Centreline ``(row, col)`` points in px, smoothed, ordered from one end to the other.
    length_um : float
    diameter_um : float
    """

    path_px: np.ndarray
    length_um: float
    diameter_um: float

    @property
    def small(self) -> bool:
        return self.diameter_um < SMALL_VESSEL_UM


def _smooth_path(coords: np.ndarray, sigma_px: float) -> np.ndarray:
    if len(coords) < 3 or sigma_px <= 0:
        return coords.astype(float)
    smoothed = ndimage.gaussian_filter1d(coords.astype(float), sigma_px, axis=0, mode="nearest")
    smoothed[0], smoothed[-1] = coords[0], coords[-1]  # ends stay on the junctions they join
    return smoothed


def path_length(path: np.ndarray) -> float:
    """Polyline length of ``(N, 2)`` points, in their units."""
    return float(np.hypot(*np.diff(path, axis=0).T).sum()) if len(path) > 1 else 0.0


_OFFSETS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc]


def _order(pixels: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pixels of a simple 8-connected path in order, from an end (or anywhere on a loop)."""

    def neighbours(p):
        return [(p[0] + dr, p[1] + dc) for dr, dc in _OFFSETS if (p[0] + dr, p[1] + dc) in pixels]

    ends = [p for p in pixels if len(neighbours(p)) <= 1]
    current = min(ends) if ends else min(pixels)
    path, seen = [current], {current}
    while True:
        options = [q for q in neighbours(current) if q not in seen]
        if not options:
            return path
        # prefer 4-connected steps so that a staircase is not cut short
        current = min(options, key=lambda q: abs(q[0] - current[0]) + abs(q[1] - current[1]))
        path.append(current)
        seen.add(current)


def _branches(skeleton: np.ndarray) -> list[tuple[np.ndarray, bool, bool]]:
    """Split a skeleton at its junctions: ``(coords (N, 2) int, start_joins, end_joins)`` each.

    Junction pixels (3 or more skeleton neighbours) are cut out, the remaining runs labelled, and
    each run's ends are extended to the junction pixel they touch, so segments meet.
    """
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8),
                                  mode="constant") - 1  # fmt: skip
    junction = skeleton & (neighbours >= 3)
    runs, n = ndimage.label(skeleton & ~junction, structure=np.ones((3, 3)))
    if n == 0:
        return []
    h, w = skeleton.shape
    result = []
    for index, box in enumerate(ndimage.find_objects(runs), start=1):
        rows, cols = np.nonzero(runs[box] == index)
        pixels = set(
            zip((rows + box[0].start).tolist(), (cols + box[1].start).tolist(), strict=True)
        )
        ordered = _order(pixels)
        ends = [False, False]
        for side, (r, c) in enumerate((ordered[0], ordered[-1])):
            touching = [
                (r + dr, c + dc)
                for dr, dc in _OFFSETS
                if 0 <= r + dr < h and 0 <= c + dc < w and junction[r + dr, c + dc]
            ]
            if touching and not (side == 1 and len(ordered) == 1 and ends[0]):
                node = min(touching, key=lambda q: abs(q[0] - r) + abs(q[1] - c))
                ordered = [node, *ordered] if side == 0 else [*ordered, node]
                ends[side] = True
        result.append((np.array(ordered), ends[0], ends[1]))
    return result


def _prune_spurs(skeleton: np.ndarray, distance: np.ndarray, spur_px: float, rounds: int = 3):
    skeleton = skeleton.copy()
    for _ in range(rounds):
        pruned = False
        for coords, start, end in _branches(skeleton):
            if start == end:
                continue
            # a side branch that barely leaves the vessel it joins is an edge artefact: judge the
            # length it protrudes beyond that vessel's radius, not its length from the centre
            node = coords[0] if start else coords[-1]
            if path_length(coords.astype(float)) - distance[tuple(node)] < spur_px:
                free = coords[1:] if start else coords[:-1]
                skeleton[tuple(free.T)] = False
                pruned = True
        if not pruned:
            break
        skeleton = skeletonize(skeleton)
    return skeleton


def profile_width_px(
    contrast: np.ndarray, path: np.ndarray, *, reach_px: float, max_points: int = 40
) -> float:
    """Full width at half depth of a dark vessel, px, from profiles across its centreline.

    Parameters
    ----------
    contrast : (H, W) float ndarray
        Flat-field contrast, vessels negative, background about 0.
    path : (N, 2) float ndarray
        Centreline ``(row, col)``, about 1 px apart, ends already trimmed out of joined vessels.
    reach_px : float
        Profiles run this far to either side (more than the vessel's half-width).

    Returns
    -------
    float
        Median width over up to ``max_points`` profiles; NaN when no profile has a clear edge.

    Notes
    -----
    A fixed darkness threshold makes a strongly absorbing vessel look as wide as the blur around
    it; half of each profile's own depth (FWHM, the usual definition of a vessel's width in an
    image) does not depend on how dark the vessel is.
    """
    if len(path) < 2:
        return float("nan")
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.hypot(*tangent.T), 1e-9)[:, None]
    pick = np.unique(np.linspace(0, len(path) - 1, min(max_points, len(path))).astype(int))
    centre, normal = path[pick], np.stack([-tangent[pick, 1], tangent[pick, 0]], axis=1)
    step = 0.25
    offsets = np.arange(-reach_px, reach_px + step / 2, step)
    coords = centre[:, None, :] + offsets[None, :, None] * normal[:, None, :]
    profiles = ndimage.map_coordinates(
        contrast, coords.reshape(-1, 2).T, order=1, mode="nearest"
    ).reshape(len(pick), len(offsets))
    near = np.abs(offsets) <= max(1.5, reach_px / 3)  # the ridge lies close to the centreline
    centre_index = np.flatnonzero(near)[np.argmin(profiles[:, near], axis=1)]
    depth = profiles[np.arange(len(pick)), centre_index]
    outer = np.abs(offsets) >= 0.75 * reach_px
    baseline = np.median(profiles[:, outer], axis=1)
    half = baseline + 0.5 * (depth - baseline)
    above = profiles > half[:, None]
    widths = []
    for i, c in enumerate(centre_index):
        right = np.flatnonzero(above[i, c:])
        left = np.flatnonzero(above[i, : c + 1][::-1])
        if depth[i] >= baseline[i] or not right.size or not left.size:
            continue
        # linear interpolation of the crossing between the last sample below and the first above
        r, l_ = c + right[0], c - left[0]
        fr = (half[i] - profiles[i, r - 1]) / (profiles[i, r] - profiles[i, r - 1])
        fl = (half[i] - profiles[i, l_ + 1]) / (profiles[i, l_] - profiles[i, l_ + 1])
        widths.append((r - 1 + fr - (l_ + 1 - fl)) * step)
    return float(np.median(widths)) if widths else float("nan")


def faded_tip_px(
    contrast: np.ndarray, path: np.ndarray, *, depth: float, reach_px: float, at_end: bool
) -> float:
    """How far a vessel stays dark beyond a free end of its skeleton, px.

    A mask ends where the vessel's darkness falls below a threshold, and its skeleton stops about
    a radius before that. A vessel leaving the focal plane fades out rather than ending sharply,
    so its centreline is followed on, along the end's direction, while the contrast stays below
    half of the vessel's own depth (the same half-depth rule as its diameter).

    Parameters
    ----------
    contrast : (H, W) float ndarray
        Flat-field contrast, vessels negative.
    path : (N, 2) float ndarray
        Centreline ``(row, col)``, smoothed.
    depth : float
        The vessel's contrast on its centreline (negative).
    reach_px : float
        The longest extension.
    at_end : bool
        Extend beyond ``path[-1]`` (else beyond ``path[0]``).

    Returns
    -------
    float
        Extension in px (0 when the contrast at the tip is already lighter than half depth).
    """
    if depth >= 0 or len(path) < 2:
        return 0.0
    ordered = path[::-1] if not at_end else path
    tip = ordered[-1]
    back = ordered[max(0, len(ordered) - 4)]  # the end's direction over about 3 px
    direction = tip - back
    norm = float(np.hypot(*direction))
    if norm < 1e-6:
        return 0.0
    step = 0.25
    offsets = np.arange(0.0, reach_px + step / 2, step)
    points = tip[None, :] + offsets[:, None] * (direction / norm)[None, :]
    values = ndimage.map_coordinates(contrast, points.T, order=1, mode="nearest")
    lighter = np.flatnonzero(values > 0.5 * depth)
    if not lighter.size:
        return float(reach_px)
    k = int(lighter[0])
    if k == 0:
        return 0.0
    # linear interpolation of the half-depth crossing between samples k - 1 and k
    fraction = (0.5 * depth - values[k - 1]) / (values[k] - values[k - 1])
    return float((k - 1 + fraction) * step)


def vessel_segments(
    mask: np.ndarray,
    *,
    um_per_px: float,
    lumen: np.ndarray | None = None,
    spur_um: float = 8.0,
    min_length_um: float = 10.0,
    smooth_um: float = 1.0,
    contrast: np.ndarray | None = None,
    field: np.ndarray | None = None,
    tip_reach_um: float = 6.0,
) -> list[Segment]:
    """Split a vessel mask's centrelines into segments and measure them.

    Parameters
    ----------
    mask : (H, W) bool ndarray
        Vessels; its skeleton gives the centrelines.
    um_per_px : float
    lumen : (H, W) bool ndarray, optional
        The vessels' full width at half darkness (``segment.lumen_mask``), for diameters;
        ``mask`` itself by default.
    spur_um : float
        End branches shorter than this (or than 1.5 x the vessel's half-width) are pruned.
    min_length_um : float
        Isolated segments shorter than this are dropped as noise.
    smooth_um : float
        Gaussian smoothing of centreline coordinates before measuring length, µm.
    contrast : (H, W) float ndarray, optional
        Flat-field contrast (vessels negative): diameters are then the full width at half depth
        of profiles across the centreline (:func:`profile_width_px`); otherwise, and where no
        profile has clear edges, twice the distance to the edge of ``lumen``.
    field : (H, W) bool ndarray, optional
        The analysed field (the whole image by default); a centreline that stops within a
        radius of its edge is extended to it.
    tip_reach_um : float
        With ``contrast``, a free end inside the field is followed (:func:`faded_tip_px`) at most
        this far beyond the vessel's radius, µm.

    Returns
    -------
    list of Segment

    Examples
    --------
    >>> segments = vessel_segments(mask, um_per_px=1.2)  # doctest: +SKIP
    >>> total_length_mm = sum(s.length_um for s in segments) / 1000  # doctest: +SKIP
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    skeleton_image = skeletonize(mask.astype(bool))
    if skeleton_image.sum() < 2:
        return []
    distance = ndimage.distance_transform_edt(mask)
    inside = np.ones(mask.shape, bool) if field is None else field.astype(bool)
    to_edge = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    lumen_distance = distance if lumen is None else ndimage.distance_transform_edt(lumen)
    skeleton_image = _prune_spurs(skeleton_image, distance, spur_um / um_per_px)
    segments = []
    for coords, start, end in _branches(skeleton_image):
        if len(coords) < 2:
            continue
        if start and end and path_length(coords.astype(float)) < JUNCTION_STUB_PX:
            continue  # a pixel or two between (or out of and back to) junctions: not a segment
        path = _smooth_path(coords, smooth_um / um_per_px)
        # pixels within a joined vessel's radius of a junction lie inside that other vessel
        skip = [int(np.ceil(distance[tuple(coords[k])])) + 1 if joined else 1
                for k, joined in ((0, start), (-1, end))]  # fmt: skip
        inner = coords[skip[0] : len(coords) - skip[1]]
        if len(inner) < 3:
            inner = coords[len(coords) // 2 - 1 : len(coords) // 2 + 2]
        # where a vessel leaves the field the mask is cut square and the skeleton stops about a
        # radius short of the edge: it is extended to the edge. Inside the field a free end is
        # followed while the vessel stays darker than half its depth (a vessel fades out of the
        # focal plane; the mask and then the skeleton stop short of where it is still visible).
        extension = 0.0
        depth = float(np.median(contrast[tuple(inner.T)])) if contrast is not None else 0.0
        for k, joined in ((0, start), (-1, end)):
            p = tuple(coords[k])
            if joined:
                continue
            if to_edge[p] <= distance[p] + 1.5:
                extension += max(float(to_edge[p]) - 0.5, 0.0)
            elif contrast is not None:
                reach = min(float(to_edge[p]) - 0.5, distance[p] + tip_reach_um / um_per_px)
                extension += faded_tip_px(
                    contrast, path, depth=depth, reach_px=max(reach, 0.0), at_end=k == -1
                )
        length_um = max(path_length(path) + extension, 0.0) * um_per_px
        if not (start or end) and length_um < min_length_um:
            continue
        # a centreline pixel of a w-px-wide mask lies (w + 1) / 2 px from the background; the
        # upper quartile ignores plasma gaps, where a stopped column's lumen is interrupted
        half_width = float(np.percentile(lumen_distance[tuple(inner.T)], 75))
        diameter_px = max(1.0, 2 * half_width - 1)
        if contrast is not None:
            reach = max(4.0, 3.0 * float(np.percentile(distance[tuple(inner.T)], 75)))
            fwhm = profile_width_px(contrast, _smooth_path(inner, smooth_um / um_per_px),
                                    reach_px=reach)  # fmt: skip
            if np.isfinite(fwhm):
                diameter_px = max(1.0, fwhm)
        segments.append(Segment(path, length_um, diameter_px * um_per_px))
    return segments


def resample_path(path: np.ndarray, step_px: float = 1.0) -> np.ndarray:
    """Points every ``step_px`` along a polyline ``(N, 2)``, ends included."""
    if len(path) < 2:
        return path.astype(float)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    n = max(2, int(round(arc[-1] / step_px)) + 1)
    where = np.linspace(0, arc[-1], n)
    return np.stack([np.interp(where, arc, path[:, k]) for k in range(2)], axis=1)
