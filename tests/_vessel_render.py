"""Tiny known-truth vessel videos for the measurement tests (not the cohort simulator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Vessel:
    """A drawn vessel: centreline points (row, col) in px, diameter µm, cell velocity µm/s.

    ``stop_s`` lists (start, end) times in seconds when the cells stand still.
    """

    path_px: np.ndarray
    diameter_um: float
    velocity_um_per_s: float
    stop_s: tuple[tuple[float, float], ...] = ()


def line(r0: float, c0: float, r1: float, c1: float, n: int = 200) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return np.array([r0, c0]) * (1 - t) + np.array([r1, c1]) * t


def arc(centre: tuple[float, float], radius: float, a0: float, a1: float, n: int = 300):
    a = np.linspace(a0, a1, n)
    return np.stack([centre[0] + radius * np.sin(a), centre[1] + radius * np.cos(a)], axis=1)


def render(
    vessels: list[Vessel],
    *,
    size: tuple[int, int] = (160, 160),
    seconds: float = 2.0,
    fps: float = 25.0,
    um_per_px: float = 1.0,
    background: float = 170.0,
    contrast: float = 0.55,
    noise: float = 3.0,
    seed: int = 0,
) -> np.ndarray:
    """(T, H, W) uint8 frames: dark vessels of moving red cells on a smooth grey background."""
    rng = np.random.default_rng(seed)
    h, w = size
    n_frames = int(round(seconds * fps))
    rows, cols = np.mgrid[0:h, 0:w]
    light = background * (1 + 0.1 * np.sin(rows / h * 2.5) * np.cos(cols / w * 2.0))
    darkness_sum = np.zeros((n_frames, h, w), np.float32)
    for vessel in vessels:
        dense = _resample(vessel.path_px, 0.25)
        arc_px = np.arange(len(dense)) * 0.25
        radius_px = vessel.diameter_um / 2 / um_per_px
        near = np.zeros((h, w), bool)
        r0, c0 = np.floor(dense.min(0) - radius_px - 2).astype(int)
        r1, c1 = np.ceil(dense.max(0) + radius_px + 2).astype(int)
        near[max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)] = True
        pr, pc = rows[near], cols[near]
        dist, nearest = cKDTree(dense).query(np.stack([pr, pc], axis=1))
        weight = np.clip(radius_px + 0.5 - dist, 0, 1)
        keep = weight > 0
        pr, pc, s_px, weight = pr[keep], pc[keep], arc_px[nearest[keep]], weight[keep]
        # cells of ~7 µm at random spacing along a long periodic track
        track_um = 4000.0
        centres = np.cumsum(rng.uniform(7, 20, int(track_um / 7)))
        centres = centres[centres < track_um]
        grid_um = np.arange(0, track_um, 0.5)
        pattern = np.zeros_like(grid_um)
        for c in centres:
            pattern += np.exp(-0.5 * ((grid_um - c) / 2.5) ** 2)
        pattern = np.clip(pattern, 0, 1)
        position_um = 0.0
        for t in range(n_frames):
            now = t / fps
            stopped = any(a <= now < b for a, b in vessel.stop_s)
            if t > 0 and not stopped:
                position_um += vessel.velocity_um_per_s / fps
            values = np.interp((s_px * um_per_px - position_um) % track_um, grid_um, pattern)
            darkness_sum[t, pr, pc] = np.maximum(darkness_sum[t, pr, pc], weight * values)
    frames = light[None] * (1 - contrast * darkness_sum)
    frames += rng.normal(0, noise, frames.shape)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def _resample(path: np.ndarray, step: float) -> np.ndarray:
    arc_len = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    where = np.arange(0, arc_len[-1], step)
    return np.stack([np.interp(where, arc_len, path[:, k]) for k in range(2)], axis=1)


def true_length_um(vessel: Vessel, um_per_px: float = 1.0) -> float:
    return float(np.hypot(*np.diff(vessel.path_px, axis=0).T).sum() * um_per_px)
