"""Vessel network geometry: tortuous, looping and crossing capillaries and a few venules.

Every vessel is a centreline polyline sampled about every 1 px with one diameter. Capillaries are
random walks whose curvature follows an Ornstein-Uhlenbeck process (smoothly winding), some with a
hairpin loop, and most branch off an existing capillary so the field reads as a network; venules
are long, gently curving paths that cross the field. Coordinates are canvas px: the canvas is the
camera frame plus a margin on every side, so drift can bring vessels in from outside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SMALL_VESSEL_UM = 20.0  # consensus cut-off between small vessels and larger ones


@dataclass
class Vessel:
    """One vessel segment: geometry, then the flow that :mod:`.flow` assigns to it.

    Attributes
    ----------
    points : (n, 2) float64 ndarray
        Centreline (x, y) in canvas px, spaced about 1 px along the arc.
    diameter_um : float
        Lumen diameter, µm.
    flow : str
        ``continuous``, ``sluggish``, ``intermittent``, ``stopped`` or ``plasma`` (no red cells).
    velocity_um_per_s : float
        Red-cell speed while moving (time average for intermittent flow), µm/s; 0 when stopped.
    """

    points: np.ndarray
    diameter_um: float
    flow: str = "continuous"
    velocity_um_per_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def small(self) -> bool:
        """A small vessel (< 20 µm), the vessels that TVD-small, PPV and MFI count."""
        return self.diameter_um < SMALL_VESSEL_UM

    @property
    def visible(self) -> bool:
        """Red cells make a vessel visible; a plasma-only capillary leaves no trace."""
        return self.flow != "plasma"


def _walk(
    rng: np.random.Generator,
    start_um: np.ndarray,
    heading: float,
    length_um: float,
    *,
    curvature_sd: float,
    correlation_um: float,
    loop_radius_um: float | None = None,
) -> np.ndarray:
    """A smooth random path in µm, 1 µm steps: heading integrates an OU curvature process."""
    n = max(int(length_um), 2)
    a = np.exp(-1.0 / correlation_um)
    kappa = _ar1(rng.normal(0.0, curvature_sd, n), a)
    if loop_radius_um is not None:  # a hairpin: turn by ~180 degrees on a tight arc
        arc = int(np.pi * loop_radius_um)
        at = int(rng.integers(0, max(n - arc, 1)))
        kappa[at : at + arc] = rng.choice([-1.0, 1.0]) / loop_radius_um
    theta = heading + np.cumsum(kappa)
    steps = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return start_um + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _ar1(shocks: np.ndarray, a: float) -> np.ndarray:
    """Stationary AR(1) series ``k[i] = a k[i-1] + sqrt(1 - a^2) e[i]`` (an OU process)."""
    out = np.empty_like(shocks)
    gain, level = np.sqrt(1.0 - a * a), 0.0
    for i, e in enumerate(shocks.tolist()):
        level = a * level + gain * e
        out[i] = level
    return out


def _inside(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)


def _clip_to(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The first run of points inside ``box`` (a walk that leaves the canvas ends there)."""
    inside = _inside(points, box)
    if not inside[0]:
        return points[:0]
    out = np.flatnonzero(~inside)
    return points[: out[0]] if out.size else points


def in_field_length_px(points: np.ndarray, frame_box: tuple[float, float, float, float]) -> float:
    """Centreline length inside the frame, px (each step counted by its midpoint)."""
    if len(points) < 2:
        return 0.0
    mid = 0.5 * (points[1:] + points[:-1])
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return float(step[_inside(mid, frame_box)].sum())


def generate_network(
    rng: np.random.Generator,
    *,
    canvas_px: tuple[int, int],
    frame_box: tuple[float, float, float, float],
    um_per_px: float,
    small_density_mm_per_mm2: float,
    n_venules: int,
) -> list[Vessel]:
    """Capillaries and venules on a canvas, until the frame holds the target capillary density.

    Parameters
    ----------
    canvas_px : (width, height)
        Canvas size, px.
    frame_box : (x0, y0, x1, y1)
        The camera frame inside the canvas, px.
    small_density_mm_per_mm2 : float
        Anatomical density of small vessels in the frame (red-cell-free ones included), mm/mm².
    n_venules : int
        Venules (20-55 µm) crossing the field.

    Returns
    -------
    list of Vessel, venules first; flow is assigned later.
    """
    width, height = canvas_px
    canvas_box = (0.0, 0.0, float(width), float(height))
    canvas_um = np.array([width, height], float) * um_per_px
    x0, y0, x1, y1 = frame_box
    area_mm2 = (x1 - x0) * (y1 - y0) * (um_per_px / 1000.0) ** 2
    target_px = small_density_mm_per_mm2 * area_mm2 * 1000.0 / um_per_px

    vessels: list[Vessel] = []
    for _ in range(n_venules):
        vessels.append(_venule(rng, canvas_um, canvas_box, um_per_px))

    capillaries: list[Vessel] = []
    cell = 24  # px; a coarse occupancy grid spreads new capillaries over empty tissue
    occupancy = np.zeros((height // cell + 1, width // cell + 1))
    total_px = 0.0
    for _ in range(2000):  # safety bound; the density target ends the loop long before
        if total_px >= target_px:
            break
        if capillaries and rng.random() < 0.35:  # branch off an existing capillary
            parent = capillaries[int(rng.integers(len(capillaries)))].points
            i = int(rng.integers(0, len(parent) - 1))
            tangent = parent[min(i + 1, len(parent) - 1)] - parent[max(i - 1, 0)]
            turn = rng.choice([-1, 1]) * rng.uniform(0.5, 1.6)
            heading = np.arctan2(tangent[1], tangent[0]) + turn
            start_um = parent[i] * um_per_px
        else:  # the emptiest of a few random places
            candidates = rng.uniform(0, 1, (8, 2)) * (width, height)
            gx, gy = (candidates // cell).astype(int).T
            padded = np.pad(occupancy, 1)
            crowd = sum(padded[gy + dy, gx + dx] for dy in range(3) for dx in range(3))
            heading = rng.uniform(0, 2 * np.pi)
            start_um = candidates[int(np.argmin(crowd))] * um_per_px
        length_um = float(np.clip(rng.lognormal(np.log(170.0), 0.45), 50.0, 500.0))
        loop = rng.uniform(6.0, 14.0) if rng.random() < 0.15 else None
        path_um = _walk(
            rng,
            start_um,
            heading,
            length_um,
            curvature_sd=rng.uniform(0.015, 0.045),
            correlation_um=rng.uniform(8.0, 25.0),
            loop_radius_um=loop,
        )
        points = _clip_to(_resample(path_um / um_per_px), canvas_box)
        points = _drain_into_venules(points, vessels, um_per_px)
        if len(points) < 8:
            continue
        diameter = 5.0 + 5.0 * rng.beta(2.0, 3.0)
        capillaries.append(Vessel(points, float(diameter)))
        np.add.at(
            occupancy, ((points[:, 1] // cell).astype(int), (points[:, 0] // cell).astype(int)), 1
        )
        total_px += in_field_length_px(points, frame_box)
    return vessels + capillaries


def _drain_into_venules(points: np.ndarray, venules: list[Vessel], um_per_px: float) -> np.ndarray:
    """A capillary path that ends where it meets a venule, joined to the venule's centreline.

    Capillaries drain into post-capillary venules; in the focal plane they do not run on inside
    or beneath a venule's lumen, where no image could show them. A path starting inside a venule
    rises from it: it starts at the venule's centreline where it leaves the lumen.
    """
    if not venules or len(points) < 2:
        return points
    from scipy.spatial import cKDTree

    axis = np.concatenate([v.points for v in venules])
    radius = np.concatenate(
        [np.full(len(v.points), v.diameter_um / 2 / um_per_px) for v in venules]
    )
    distance, nearest = cKDTree(axis).query(points)
    inside = distance < radius[nearest]
    if inside[0]:
        outside = np.flatnonzero(~inside)
        if not outside.size:
            return points[:0]
        first = int(outside[0])
        points = np.concatenate([axis[nearest[first - 1]][None], points[first:]])
        inside, nearest = (
            np.concatenate([[False], inside[first:]]),
            np.concatenate([[nearest[first - 1]], nearest[first:]]),
        )
    enters = np.flatnonzero(inside)
    if enters.size:
        i = int(enters[0])
        points = np.concatenate([points[:i], axis[nearest[i]][None]])
    return _resample(points) if len(points) > 1 else points


def _venule(
    rng: np.random.Generator, canvas_um: np.ndarray, canvas_box: tuple, um_per_px: float
) -> Vessel:
    """A venule entering at a random canvas edge and crossing the field."""
    side = int(rng.integers(4))
    u = rng.uniform(0.15, 0.85)
    w, h = canvas_um
    start, heading = {
        0: (np.array([0.0, u * h]), 0.0),
        1: (np.array([w - 1e-3, u * h]), np.pi),
        2: (np.array([u * w, 0.0]), np.pi / 2),
        3: (np.array([u * w, h - 1e-3]), -np.pi / 2),
    }[side]
    heading += rng.uniform(-0.5, 0.5)
    path_um = _walk(
        rng,
        start,
        heading,
        float(2.5 * max(w, h)),
        curvature_sd=rng.uniform(0.003, 0.008),
        correlation_um=rng.uniform(80.0, 200.0),
    )
    points = _clip_to(_resample(path_um / um_per_px), canvas_box)
    diameter = 20.0 + 35.0 * rng.beta(1.5, 3.0)
    return Vessel(points, float(diameter))


def _resample(points: np.ndarray, step_px: float = 1.0) -> np.ndarray:
    """The polyline resampled at ``step_px`` spacing along its arc."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] < step_px:
        return points[:1]
    at = np.arange(0.0, s[-1], step_px)
    return np.stack([np.interp(at, s, points[:, 0]), np.interp(at, s, points[:, 1])], axis=1)
