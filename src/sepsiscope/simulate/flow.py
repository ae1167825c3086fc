"""Flow in the simulated vessels: patient physiology, flow categories, red-cell patterns, motion.

A patient has a severity (0 normal .. 1 severe) drawn from a class-specific distribution; each
site and each quadrant of a field gets a local severity around it (more spread in sepsis: the
heterogeneous microcirculation of septic shock). A local severity ``x`` centres the flow score on
``3 (1 - x)`` (3 continuous, 2 sluggish, 1 intermittent, 0 stopped) and makes some capillaries
red-cell free. Numbers follow Edul et al. 2012 and De Backer et al. 2002 (see docs/simulator.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepsiscope.simulate.vessels import Vessel

FLOW_SCORE = {"stopped": 0, "intermittent": 1, "sluggish": 2, "continuous": 3}
CATEGORIES = tuple(FLOW_SCORE)  # in score order 0..3
PERFUSED = ("continuous", "sluggish")
VELOCITY_UM_PER_S = 1330.0  # healthy capillary red-cell velocity (Edul 2012: 1332 ± 187)
VELOCITY_SD = 187.0


@dataclass(frozen=True)
class Physiology:
    """One patient's microcirculation.

    Attributes
    ----------
    septic : bool
    severity : float
        0 (normal) .. 1 (no perfused capillaries); sets the flow-score centre ``3 (1 - x)``.
    small_density_mm_per_mm2 : float
        Anatomical small-vessel density (red-cell-free capillaries included), mm/mm².
    velocity_um_per_s : float
        Mean red-cell velocity of continuous flow in capillaries, µm/s.
    site_sd, quadrant_sd : float
        Spread of the local severity between sites and between quadrants of one field.
    """

    septic: bool
    severity: float
    small_density_mm_per_mm2: float
    velocity_um_per_s: float
    site_sd: float
    quadrant_sd: float


def draw_physiology(rng: np.random.Generator, *, septic: bool) -> Physiology:
    """A patient's physiology from the class distribution (the classes overlap on purpose)."""
    density = float(np.clip(rng.normal(16.8, 1.7), 12.0, 24.0))  # equal in both classes
    base_velocity = rng.normal(VELOCITY_UM_PER_S, VELOCITY_SD)
    if septic:
        severity = float(rng.beta(1.1, 2.6))  # mean 0.30; mass near 0: some look normal
        velocity = base_velocity * (1.0 - 0.15 * severity)
        site_sd, quadrant_sd = 0.04 + 0.2 * severity, 0.05 + 0.25 * severity
    else:
        severity = float(rng.beta(1.0, 60.0))
        velocity, site_sd, quadrant_sd = base_velocity, 0.015, 0.02
    velocity = float(np.clip(velocity, 400.0, 2000.0))
    return Physiology(septic, severity, density, velocity, site_sd, quadrant_sd)


def category_probabilities(local_severity: float, *, width: float = 0.42) -> np.ndarray:
    """P(stopped, intermittent, sluggish, continuous) of a capillary at this local severity."""
    centre = 3.0 * (1.0 - local_severity)
    scores = np.arange(4.0)
    p = np.exp(-0.5 * ((scores - centre) / width) ** 2)
    return p / p.sum()


def assign_flow(
    rng: np.random.Generator,
    vessels: list[Vessel],
    phys: Physiology,
    *,
    site_severity: float,
    frame_box: tuple[float, float, float, float],
) -> np.ndarray:
    """Set each vessel's flow category and velocity in place; return the quadrant severities.

    Quadrants are numbered 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right; a vessel
    follows the quadrant that holds its midpoint.
    """
    quad = np.clip(site_severity + rng.normal(0.0, phys.quadrant_sd, 4), 0.0, 1.0)
    x0, y0, x1, y1 = frame_box
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    for v in vessels:
        mid = v.points[len(v.points) // 2]
        x = quad[int(mid[0] >= cx) + 2 * int(mid[1] >= cy)]
        if not v.small:  # venules keep flowing, a little slower in sepsis
            v.flow = "continuous"
            v.velocity_um_per_s = float(rng.uniform(400.0, 1000.0) * (1.0 - 0.3 * x))
            continue
        if rng.random() < 0.2 * x:  # red-cell-free capillary (plasma skimming, "no flow")
            v.flow, v.velocity_um_per_s = "plasma", 0.0
            continue
        v.flow = CATEGORIES[int(rng.choice(4, p=category_probabilities(x)))]
        if v.flow == "continuous":
            speed = phys.velocity_um_per_s * rng.lognormal(0.0, 0.2) * (1.0 - 0.1 * x)
            v.velocity_um_per_s = float(np.clip(speed, 300.0, 2000.0))
        elif v.flow == "sluggish":
            v.velocity_um_per_s = float(rng.uniform(200.0, 500.0))
        elif v.flow == "intermittent":
            v.extra["moving_speed"] = float(rng.uniform(60.0, 250.0))
            v.extra["duty"] = float(rng.uniform(0.2, 0.6))
            v.velocity_um_per_s = v.extra["moving_speed"] * v.extra["duty"]  # until simulated
        else:
            v.velocity_um_per_s = 0.0
    return quad


def displacement_px(
    rng: np.random.Generator, vessel: Vessel, *, n_frames: int, fps: float, um_per_px: float
) -> np.ndarray:
    """Red-cell displacement along the centreline at each frame, ``(n_frames,)`` float px.

    Continuous and sluggish flow pulse a little with the heart beat; intermittent flow stops and
    starts (a random telegraph, occasionally reversing); stopped flow never moves. For
    intermittent flow the vessel's velocity becomes the time-averaged speed actually simulated.
    """
    t = np.arange(n_frames) / fps
    if vessel.flow in ("stopped", "plasma") or n_frames == 0:
        return np.zeros(n_frames)
    if vessel.flow == "intermittent":
        duty, speed = vessel.extra["duty"], vessel.extra["moving_speed"]
        period = rng.uniform(0.8, 2.0)
        velocity = np.zeros(n_frames)
        i, moving = 0, rng.random() < duty
        while i < n_frames:
            mean_s = period * (duty if moving else 1.0 - duty)
            run = max(1, int(round(rng.exponential(mean_s) * fps)))
            if moving:
                velocity[i : i + run] = speed * (-1.0 if rng.random() < 0.15 else 1.0)
            i += run
            moving = not moving
        vessel.velocity_um_per_s = float(np.abs(velocity).mean())
    else:
        heart_hz = rng.uniform(1.0, 1.8)
        pulse = 1.0 + 0.1 * np.sin(2 * np.pi * heart_hz * t + rng.uniform(0, 2 * np.pi))
        velocity = vessel.velocity_um_per_s * pulse
    return np.concatenate([[0.0], np.cumsum(velocity[1:] / fps)]) / um_per_px


def rbc_pattern(
    rng: np.random.Generator,
    vessel: Vessel,
    *,
    length_px: int,
    um_per_px: float,
    blur_px: float,
) -> np.ndarray:
    """Red-cell line density along a periodic arc of ``length_px`` samples, float32 in [0, 1].

    Cells are 5-7 µm boxes along the axis with plasma gaps between them: dense for continuous
    flow and venules, sparse single cells for sluggish flow, clusters and gaps (a barcode) for
    stopped flow. ``blur_px`` is the motion blur of one exposure (speed x exposure time).
    """
    n = max(int(length_px), 8)
    if vessel.flow == "plasma":
        return np.zeros(n, np.float32)
    cell = rng.uniform(5.0, 7.0) / um_per_px
    cover = {
        "continuous": rng.uniform(0.65, 0.85),
        "sluggish": rng.uniform(0.2, 0.4),
        "intermittent": rng.uniform(0.3, 0.5),
        "stopped": rng.uniform(0.3, 0.55),
    }[vessel.flow]
    if not vessel.small:  # many cells abreast: a dense column with a faint moving texture
        texture = np.convolve(rng.normal(0.0, 1.0, n + 16), np.ones(8) / 8, mode="same")[8:-8]
        density = np.clip(rng.uniform(0.85, 0.95) + 0.06 * texture[:n], 0.0, 1.0)
        return _circular_smooth(density, 1.0, blur_px).astype(np.float32)
    mean_gap = cell * (1.0 - cover) / cover
    count = int(n / (cell + mean_gap) * 1.5) + 4
    if vessel.flow == "stopped":  # clusters of touching cells, then long plasma gaps
        long_gap = rng.random(count) < 0.35
        gaps = np.where(
            long_gap, rng.exponential(mean_gap * 2.5, count), rng.uniform(0.2, 1.0, count)
        )
    else:
        gaps = rng.exponential(mean_gap, count)
    starts = rng.uniform(0, cell) + np.cumsum(cell + gaps) - cell
    starts = starts[starts < n]
    edges = np.zeros(n + 1)
    lo = np.floor(starts).astype(int)
    hi = np.minimum(np.floor(starts + cell).astype(int), n)
    np.add.at(edges, lo, 1.0)
    np.add.at(edges, hi, -1.0)
    density = np.minimum(np.cumsum(edges[:n]), 1.0)
    density = _circular_smooth(density, max(0.6 / um_per_px, 0.5), blur_px)
    return density.astype(np.float32)


def _circular_smooth(x: np.ndarray, edge_sd_px: float, box_px: float) -> np.ndarray:
    """Rounded cell edges (Gaussian) and motion blur (box), both wrapping around the period."""
    spectrum = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x))
    gain = np.exp(-2.0 * (np.pi * f * edge_sd_px) ** 2)
    if box_px > 1.0:
        gain = gain * np.sinc(f * box_px)
    return np.clip(np.fft.irfft(spectrum * gain, n=len(x)), 0.0, 1.0)
