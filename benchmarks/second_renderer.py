"""A second, independently written renderer of sublingual dark-field videos with ground truth.

It shares no code with ``sepsiscope.simulate``, so a bias of ``sepsiscope measure`` tuned to that
simulator's drawing style shows when both are validated. It writes the same cohort layout
(``manifest.csv``, ``truth.csv``, ``vessels.json``, ``videos/``, ``masks/``, ``settings.json``),
so ``sepsiscope measure COHORT/manifest.csv`` and ``benchmarks/validate_measure.py`` read it.

Model (µm, s; px where named):

- vessels: capillary trees of cubic-spline branches meeting at Y-junctions and side branches
  (4-12 µm), 0-2 venules (20-50 µm) crossing the field; a capillary ends at a venule's wall;
  some vessels lie 1-3 µm out of focus;
- flow: red cells are discrete particles (random sizes, exponential spacing, plasma gaps)
  advected along each centreline: continuous (600-2000 µm/s, pulsatile), sluggish (80-350),
  intermittent (stop-and-go, some runs backwards), stopped; venules with a parabolic profile;
- optics: Beer-Lambert absorption of Gaussian cells, motion blur over the exposure, a core plus
  halo point-spread, mottled tissue with deep out-of-focus vessels, vignetting, flicker;
  sub-pixel drift and tremor; Poisson shot noise, Gaussian read noise and a dark offset;
- cameras: ``strobe800`` 800x600 px at 1.0 µm/px, 30 fps, 6 ms strobe, MPEG-4 Part 2 ``.avi``;
  ``sdf720`` 720x540 px at 1.4 µm/px, 20 fps, 40 ms continuous light, a folder of 8-bit PNGs.

Truth follows the consensus (see ``sepsiscope/simulate/truth.py``): visible (red-cell carrying)
centreline length inside the frame at the mean position; small vessels < 20 µm; PPV by length of
small vessels with continuous or sluggish flow; MFI per quadrant; velocity length-weighted over
perfused small vessels (each vessel's mean |speed| over the video). Synthetic, not clinical.

    python benchmarks/second_renderer.py --out DIR --patients 8 --videos-per-patient 2 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

MARGIN_PX = 40  # canvas border beyond the frame, px: drift brings vessels in from outside
DT_S = 0.001  # time step of the flow kinematics, s
SCORE = {"stopped": 0, "intermittent": 1, "sluggish": 2, "continuous": 3}
PERFUSED = ("continuous", "sluggish")
MANIFEST_COLUMNS = ["patient_id", "video", "label", "site", "um_per_px", "fps", "camera"]
TRUTH_COLUMNS = [
    "video", "patient_id", "label", "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "pvd_mm_per_mm2",
    "ppv_percent", "mfi", "n_segments", "total_length_mm", "mean_velocity_um_per_s",
]  # fmt: skip


@dataclass(frozen=True)
class Camera:
    """Frame size (px), pixel size (µm/px), rate (fps), exposure (s) and container ('' = PNGs)."""

    name: str
    width: int
    height: int
    um_per_px: float
    fps: float
    exposure_s: float
    container: str


CAMERAS = {
    "strobe800": Camera("strobe800", 800, 600, 1.0, 30.0, 0.006, ".avi"),
    "sdf720": Camera("sdf720", 720, 540, 1.4, 20.0, 0.040, ""),
}


@dataclass
class Vessel:
    """One drawn vessel: centreline (canvas px, ~1 px steps), diameter (µm), flow and speed."""

    points: np.ndarray
    diameter_um: float
    tree: int  # -1: venule
    parent: int | None = None
    flow: str = "continuous"
    velocity_um_per_s: float = 0.0
    visible: bool = True
    defocus_um: float = 0.0
    speed: np.ndarray | None = None  # µm/s on the DT_S grid; + runs from points[0] to points[-1]

    @property
    def small(self) -> bool:
        return self.diameter_um < 20.0


def arc_px(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length (px) along a polyline."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])


def resample(control: np.ndarray, step_px: float = 1.0) -> np.ndarray:
    """A natural cubic spline through ``control`` points, sampled every ``step_px`` of arc."""
    t = arc_px(control)
    fine = CubicSpline(t, control, bc_type="natural")(np.linspace(0, t[-1], int(4 * t[-1]) + 2))
    arc = arc_px(fine)
    at = np.append(np.arange(0.0, arc[-1], step_px), arc[-1])
    return np.stack([np.interp(at, arc, fine[:, 0]), np.interp(at, arc, fine[:, 1])], axis=1)


def spline_path(rng, start, heading: float, length_um: float, um: float, wiggle: float):
    """A smooth path from ``start`` (px): control points every 18-32 µm whose heading (rad)
    turns by N(0, ``wiggle``) at each; returns px points ~1 px apart."""
    n = max(2, round(length_um / 25.0))
    headings = heading + np.cumsum(np.r_[0.0, rng.normal(0.0, wiggle, n - 1)])
    steps = rng.uniform(18.0, 32.0, n)[:, None] / um * np.c_[np.cos(headings), np.sin(headings)]
    return resample(np.vstack([start, start + np.cumsum(steps, axis=0)]))


def inside(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    x, y = points[:, 0], points[:, 1]
    return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


class Walls:
    """Venule lumens: a capillary reaching one ends at its wall."""

    def __init__(self, venules: list[Vessel], um: float) -> None:
        self.tree = cKDTree(np.vstack([v.points for v in venules])) if venules else None
        radii = [np.full(len(v.points), v.diameter_um / 2 / um) for v in venules]
        self.radius = np.concatenate(radii) if venules else np.zeros(0)

    def first_hit(self, points: np.ndarray) -> int:
        """Index of the first point inside a venule lumen (len(points) if none)."""
        if self.tree is None:
            return len(points)
        distance, nearest = self.tree.query(points)
        hits = np.flatnonzero(distance < self.radius[nearest])
        return int(hits[0]) if len(hits) else len(points)


def make_venules(rng, canvas: tuple[int, int], um: float) -> list[Vessel]:
    """0-2 venules (20-50 µm) through the canvas, low curvature, grown both ways from a point."""
    w, h = canvas
    venules = []
    for _ in range(rng.choice(3, p=[0.3, 0.45, 0.25])):
        centre = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h])
        heading, half = rng.uniform(0, np.pi), np.hypot(w, h) * um
        a = spline_path(rng, centre, heading, half, um, 0.06)
        b = spline_path(rng, centre, heading + np.pi, half, um, 0.06)
        path = np.vstack([b[::-1], a[1:]])
        keep = np.flatnonzero(inside(path, (0, 0, w, h)))
        path = path[keep[0] : keep[-1] + 1]
        venules.append(Vessel(path, 20.0 + 30.0 * rng.beta(1.3, 2.5), tree=-1))
    return venules


@dataclass
class Grower:
    """Grows capillary trees on a canvas (px) of pixel size ``um`` (µm/px)."""

    rng: np.random.Generator
    vessels: list[Vessel]
    walls: Walls
    canvas: tuple[int, int]
    um: float

    def branch(self, start, heading: float, diameter: float, tree: int, parent, depth: int):
        """One branch (30-350 µm, lognormal) ending at a venule wall, the canvas edge, or in a
        Y-split into two daughters; sometimes with a side branch from its middle third."""
        rng, um = self.rng, self.um
        length = float(np.clip(rng.lognormal(np.log(110), 0.45), 30, 350))
        path = spline_path(rng, start, heading, length, um, rng.uniform(0.12, 0.35))
        out = np.flatnonzero(~inside(path, (0, 0, *self.canvas)))
        stop = min(self.walls.first_hit(path), out[0] if len(out) else len(path))
        cut, path = stop < len(path), path[:stop]
        if len(path) < max(3, 8 / um):
            return
        self.vessels.append(Vessel(path, diameter, tree, parent))
        me = len(self.vessels) - 1
        if depth >= 5:
            return
        if not cut and rng.random() < 0.55:  # Y-junction: two daughters diverge from the end
            t = path[-1] - path[max(0, len(path) - 4)]
            end = float(np.arctan2(t[1], t[0]))
            for sign in (-1.0, 1.0):
                child = max(4.0, diameter * rng.uniform(0.85, 1.0))
                turn = sign * rng.uniform(0.3, 0.9)
                self.branch(path[-1], end + turn, child, tree, me, depth + 1)
        if rng.random() < 0.3 and len(path) > 30:  # side branch from the middle third
            i = int(rng.integers(len(path) // 3, 2 * len(path) // 3))
            t = path[i + 1] - path[i - 1]
            side = float(np.arctan2(t[1], t[0])) + rng.choice([-1, 1]) * rng.uniform(0.6, 1.4)
            self.branch(path[i], side, max(4.0, diameter * 0.85), tree, me, depth + 1)


def in_frame_length_px(points: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Centreline length (px) whose step midpoints lie inside ``box``."""
    steps = np.hypot(*np.diff(points, axis=0).T)
    return float(steps[inside(0.5 * (points[1:] + points[:-1]), box)].sum())


def build_network(rng, cam: Camera, small_density_mm_per_mm2: float) -> list[Vessel]:
    """Venules, then capillary trees rooted in the emptiest of 6 random places until the
    in-frame small-vessel length reaches the anatomical density (mm/mm², visible or not)."""
    um = cam.um_per_px
    canvas = (cam.width + 2 * MARGIN_PX, cam.height + 2 * MARGIN_PX)
    box = (MARGIN_PX, MARGIN_PX, MARGIN_PX + cam.width, MARGIN_PX + cam.height)
    vessels = make_venules(rng, canvas, um)
    grower = Grower(rng, vessels, Walls(list(vessels), um), canvas, um)
    goal_px = small_density_mm_per_mm2 * cam.width * cam.height * um / 1000.0
    length, tree = 0.0, 0
    while length < goal_px and tree < 2000:
        candidates = rng.uniform([0, 0], canvas, size=(6, 2))
        capillaries = [v.points for v in vessels if v.small]
        if capillaries:
            distance = cKDTree(np.vstack(capillaries)).query(candidates)[0]
            candidates = candidates[[np.argmax(distance)]]
        if grower.walls.first_hit(candidates[:1]) == 0:
            tree += 1
            continue
        before = len(vessels)
        diameter = 5.0 + 7.0 * rng.beta(2.0, 3.0)
        grower.branch(candidates[0], rng.uniform(0, 2 * np.pi), diameter, tree, None, 0)
        length += sum(in_frame_length_px(v.points, box) for v in vessels[before:])
        tree += 1
    for v in vessels:
        v.defocus_um = float(rng.uniform(1.0, 3.0)) if rng.random() < 0.2 else 0.0
    return vessels


# ---------------------------------------------------------------- patients and flow


@dataclass
class Patient:
    """A synthetic patient: severity (0 normal .. 1 no perfused capillaries), base red-cell speed
    (µm/s), anatomical small-vessel density (mm/mm²), camera and optics (drawn once)."""

    patient_id: str
    septic: bool
    severity: float
    speed_um_per_s: float
    density_mm_per_mm2: float
    camera: Camera
    optics: dict[str, float]


def draw_patient(rng, patient_id: str, septic: bool, camera: Camera) -> Patient:
    severity = float(rng.beta(2.0, 2.2) if septic else rng.uniform(0.0, 0.05))
    speed = float(np.clip(rng.normal(1200, 180), 850, 1650)) * (1 - 0.35 * severity * septic)
    optics = {
        "grey": rng.uniform(120, 185), "od": rng.uniform(0.45, 0.85),  # background, cell OD
        "psf_um": rng.uniform(0.6, 1.3), "halo": rng.uniform(0.05, 0.2),
        "halo_um": rng.uniform(6, 12), "vignette": rng.uniform(0.15, 0.4),
        "e_per_grey": rng.uniform(2.5, 8.0), "read": rng.uniform(1.0, 3.0),
        "dark": rng.uniform(6, 16), "tremor_um": rng.uniform(0.2, 1.5),
        "drift_um_per_s": rng.uniform(2, 15), "texture": rng.uniform(0.6, 1.4),
    }  # fmt: skip
    density = float(np.clip(rng.normal(18.0, 2.0), 12, 26))
    return Patient(patient_id, septic, severity, speed, density, camera, optics)


def flow_weights(x: float) -> np.ndarray:
    """Probabilities of stopped, intermittent, sluggish, continuous at local severity ``x``."""
    w = np.array([0.85 * x**2, x * (1 - x) + 0.15 * x**2, 1.3 * x * (1 - x), (1 - x) ** 2])
    return w / w.sum()


def stop_and_go(rng, n: int, moving_um_per_s: float) -> np.ndarray:
    """Intermittent flow on the DT_S grid: exponential runs of motion (20 % backwards) and stops."""
    speed, i, moving = np.zeros(n), 0, rng.random() < 0.5
    mean_go, mean_stop = rng.uniform(0.25, 0.7), rng.uniform(0.3, 0.9)
    while i < n:
        run = max(1, int(rng.exponential(mean_go if moving else mean_stop) / DT_S))
        if moving:
            speed[i : i + run] = moving_um_per_s * (-1 if rng.random() < 0.2 else 1)
        i, moving = i + run, not moving
    return speed


def kinematics(rng, v: Vessel, patient: Patient, t: np.ndarray, pulse: tuple[float, float]):
    """Red-cell speed of one vessel over time (µm/s on the DT_S grid ``t``)."""
    heart_hz, phase = pulse
    wave = np.sin(2 * np.pi * heart_hz * t + phase + rng.uniform(0, 0.6))
    if not v.small:
        return rng.uniform(300, 900) * (1 - 0.3 * patient.severity) * (1 + 0.05 * wave)
    if v.flow == "continuous":
        base = patient.speed_um_per_s * rng.lognormal(0, 0.22) * (v.diameter_um / 7) ** 0.3
        return np.clip(base, 600, 2000) * (1 + rng.uniform(0.06, 0.15) * wave)
    if v.flow == "sluggish":
        wander = np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
        return rng.uniform(80, 350) * (1 + 0.25 * wander)
    if v.flow == "intermittent":
        return stop_and_go(rng, len(t), rng.uniform(150, 700))
    return np.zeros(len(t))


def assign_flow(rng, vessels: list[Vessel], patient: Patient, site_severity: float, seconds: float):
    """Flow category, speed trace and truth velocity (mean |speed|, µm/s) of every vessel.

    A capillary tree shares a local severity (site + N(0, 0.2) in sepsis: patchy flow); a branch
    keeps its parent's category in 75 % of cases; 12 % x severity of capillaries carry plasma only.
    """
    t = np.arange(int((seconds + 0.1) / DT_S) + 2) * DT_S
    pulse = (rng.uniform(1.0, 1.6), rng.uniform(0, 2 * np.pi))
    local: dict[int, float] = {}
    spread = 0.2 if patient.septic else 0.01
    for v in vessels:
        if v.small:
            x = local.setdefault(
                v.tree, float(np.clip(site_severity + rng.normal(0, spread), 0, 1))
            )
            parent = vessels[v.parent] if v.parent is not None else None
            if parent is not None and parent.visible and rng.random() < 0.75:
                v.flow = parent.flow
            elif rng.random() < 0.12 * x:
                v.flow, v.visible = "plasma", False
            else:
                v.flow = str(rng.choice(list(SCORE), p=flow_weights(x)))
        if v.visible:
            v.speed = kinematics(rng, v, patient, t, pulse) * rng.choice([-1.0, 1.0])
            v.velocity_um_per_s = float(np.abs(v.speed[: int(seconds / DT_S) + 1]).mean())


# ---------------------------------------------------------------- red cells


@dataclass
class Cells:
    """Red cells of one video, one entry per cell: vessel index, start position along the
    vessel's loop (µm), loop length (µm), lateral offset (µm), speed factor, Gaussian weight
    (OD x px²) and blur sd (px, cell size and defocus)."""

    vessel: np.ndarray
    s0: np.ndarray
    loop: np.ndarray
    lateral: np.ndarray
    factor: np.ndarray
    weight: np.ndarray
    sd_px: np.ndarray


GAP_UM = {"continuous": (1.0, 3.0), "sluggish": (6, 14), "intermittent": (3, 9), "stopped": (2, 10)}


def vessel_cells(rng, v: Vessel, length_um: float) -> tuple[np.ndarray, ...]:
    """Cells of one vessel: positions on a loop of length + 50 µm (the hidden part feeds cells in
    and out), lateral offsets (µm), speed factors, sizes (µm) and relative absorption."""
    loop = length_um + 50.0
    if not v.small:  # cells abreast, parabolic profile (mean factor 1)
        n = rng.poisson(0.0016 * v.diameter_um**2 * loop)
        lateral = (v.diameter_um / 2 - 3) * rng.uniform(-1, 1, n)
        factor = 1.5 * (1 - (lateral / (v.diameter_um / 2)) ** 2)
        return rng.uniform(0, loop, n), lateral, factor, rng.uniform(6, 8, n), np.full(n, 0.35)
    n = int(loop / 5) + 10
    size = rng.uniform(5.5, 8.0, n)
    gap = rng.exponential(rng.uniform(*GAP_UM[v.flow]), n)
    gap += np.where(rng.random(n) < 0.06, rng.uniform(10, 35, n), 0.0)  # plasma gaps
    s = np.cumsum(size + gap) - rng.uniform(0, 10)
    keep = s < loop
    n = int(keep.sum())
    lateral = rng.normal(0, 0.15 * max(v.diameter_um - 6, 0.3), n)
    return s[keep], lateral, np.ones(n), size[keep], np.ones(n)


def seed_cells(rng, vessels: list[Vessel], um: float, od: float) -> Cells:
    """Cells of every visible vessel; a cell is a Gaussian of sd 0.38·sqrt(length x width) µm,
    squeezed to the lumen, peak OD ``od`` x U(0.8, 1.2), blurred further by the vessel's defocus."""
    parts: list[tuple[np.ndarray, ...]] = []
    for k, v in enumerate(vessels):
        if not v.visible:
            continue
        length_um = float(arc_px(v.points)[-1]) * um
        s, lateral, factor, size, absorb = vessel_cells(rng, v, length_um)
        sd_um = 0.38 * np.sqrt(size * np.minimum(size, v.diameter_um))
        weight = od * absorb * rng.uniform(0.8, 1.2, len(s)) * 2 * np.pi * (sd_um / um) ** 2
        sd_px = np.sqrt(sd_um**2 + v.defocus_um**2) / um
        vessel = np.full(len(s), k)
        parts.append((vessel, s, np.full(len(s), length_um + 50.0), lateral, factor, weight, sd_px))
    if not parts:  # nothing visible: an empty field
        return Cells(*(np.zeros(0, int if i == 0 else float) for i in range(7)))
    return Cells(*(np.concatenate(p) for p in zip(*parts, strict=True)))


# ---------------------------------------------------------------- rendering


@dataclass
class Scene:
    """Everything a frame needs: cells, centreline lookup, displacements, tissue, motion."""

    cam: Camera
    cells: Cells
    lookup: np.ndarray  # (5, n): global arc (px), x, y, normal x, normal y
    offset: np.ndarray  # per vessel: start of its centreline in the global arc, px
    length_um: np.ndarray  # per vessel
    displacement: np.ndarray  # per vessel x DT_S grid, µm
    tissue: np.ndarray  # reflectance of the canvas
    shift: np.ndarray  # (frames, 2) camera motion, px
    gain: np.ndarray  # per frame: illumination flicker
    vignette: np.ndarray  # frame-sized
    optics: dict[str, float]
    n_sub: int  # sub-exposure samples (motion blur)


def centreline_lookup(vessels: list[Vessel]) -> tuple[np.ndarray, np.ndarray]:
    """All centrelines on one global arc (10 px apart), with unit normals, for one np.interp."""
    rows, offsets, start = [], np.zeros(len(vessels)), 0.0
    for k, v in enumerate(vessels):
        arc = arc_px(v.points)
        tangent = np.gradient(v.points, axis=0)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
        offsets[k] = start
        rows.append(np.stack([start + arc, *v.points.T, -tangent[:, 1], tangent[:, 0]]))
        start += arc[-1] + 10.0
    return np.concatenate(rows, axis=1), offsets


def tissue_field(rng, canvas: tuple[int, int], um: float, texture: float) -> np.ndarray:
    """Scattering mottle at 3, 12 and 45 µm and 1-2 broad, blurred deep vessels (not in truth)."""
    w, h = canvas
    field = np.ones((h, w), np.float32)
    for scale_um, amplitude in ((3, 0.02), (12, 0.035), (45, 0.05)):
        noise = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), scale_um / um)
        field += texture * amplitude * noise / max(float(noise.std()), 1e-9)
    deep = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(1, 3)):
        path = spline_path(rng, rng.uniform([0, 0], [w, h]), rng.uniform(0, 6.3), 900, um, 0.1)
        width = max(1, int(rng.uniform(25, 60) / um))
        cv2.polylines(deep, [np.round(path).astype(np.int32)], False, 1.0, width)
    deep = cv2.GaussianBlur(deep, (0, 0), rng.uniform(12, 25) / um)
    return field * np.exp(-rng.uniform(0.05, 0.15) * deep)


def camera_motion(rng, n: int, fps: float, um: float, optics: dict[str, float]) -> np.ndarray:
    """Per-frame shift (px, mean 0): drift, 0.15-0.5 Hz sway, 7-11 Hz tremor, AR(1) jitter."""
    t = np.arange(n) / fps
    heading = rng.uniform(0, 2 * np.pi)
    shift = optics["drift_um_per_s"] * (t - t.mean())[:, None] * [np.cos(heading), np.sin(heading)]
    for amplitude, lo, hi in ((rng.uniform(1, 5), 0.15, 0.5), (optics["tremor_um"], 7.0, 11.0)):
        phase = rng.uniform(0, 2 * np.pi, 2)
        shift += amplitude * np.sin(2 * np.pi * rng.uniform(lo, hi) * t[:, None] + phase)
    shift /= um
    jitter = np.zeros((n, 2))
    for i in range(1, n):
        jitter[i] = 0.7 * jitter[i - 1] + rng.normal(0, 0.15, 2)
    shift += jitter
    return np.clip(shift - shift.mean(axis=0), -(MARGIN_PX - 6), MARGIN_PX - 6)


def prepare_scene(rng, vessels: list[Vessel], cam: Camera, optics: dict[str, float], n: int):
    """Cells, lookup tables, tissue, motion and illumination of one video of ``n`` frames."""
    um, w, h = cam.um_per_px, cam.width, cam.height
    lookup, offset = centreline_lookup(vessels)
    length_um = np.array([arc_px(v.points)[-1] * um for v in vessels])
    grid = int((n / cam.fps + 0.1) / DT_S) + 2
    still = np.zeros(next((len(v.speed) for v in vessels if v.speed is not None), grid))
    speeds = [v.speed if v.visible and v.speed is not None else still for v in vessels]
    displacement = np.stack([np.cumsum(s) * DT_S for s in speeds])
    top = max(float(np.abs(s).max()) for s in speeds)  # fastest cell, µm/s
    n_sub = int(min(20, 1 + np.ceil(top * cam.exposure_s / 2.5)))
    t = np.arange(n) / cam.fps
    gain = 1 + rng.uniform(0.01, 0.04) * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + 1.0)
    gain += rng.uniform(0.003, 0.01) * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (0.25 * (w**2 + h**2))
    return Scene(
        cam, seed_cells(rng, vessels, um, optics["od"]), lookup, offset, length_um, displacement,
        tissue_field(rng, (w + 2 * MARGIN_PX, h + 2 * MARGIN_PX), um, optics["texture"]),
        camera_motion(rng, n, cam.fps, um, optics), gain, 1 - optics["vignette"] * r2, optics,
        n_sub,
    )  # fmt: skip


def frame_od(scene: Scene, k: int, pad: int = 12) -> np.ndarray:
    """Optical density of frame ``k``: each cell splatted at ``n_sub`` instants of the exposure
    (motion blur), bilinear, then blurred with a Gaussian of its sd (0.5 px bins)."""
    cam, c = scene.cam, scene.cells
    t = k / cam.fps + (np.arange(scene.n_sub) + 0.5) / scene.n_sub * cam.exposure_s
    i0 = (t / DT_S).astype(int)
    f = t / DT_S - i0
    d = scene.displacement[:, i0] * (1 - f) + scene.displacement[:, i0 + 1] * f
    s = np.mod(c.s0[:, None] + c.factor[:, None] * d[c.vessel], c.loop[:, None])
    seen = s < scene.length_um[c.vessel][:, None]
    cell = np.broadcast_to(np.arange(len(c.s0))[:, None], s.shape)[seen]
    g = scene.offset[c.vessel[cell]] + s[seen] / cam.um_per_px
    x, y, nx, ny = (np.interp(g, scene.lookup[0], row) for row in scene.lookup[1:])
    lateral = c.lateral[cell] / cam.um_per_px
    x = x + lateral * nx - MARGIN_PX - scene.shift[k, 0] + pad
    y = y + lateral * ny - MARGIN_PX - scene.shift[k, 1] + pad
    hp, wp = cam.height + 2 * pad, cam.width + 2 * pad
    keep = (x >= 0) & (x < wp - 1) & (y >= 0) & (y < hp - 1)
    x, y, cell = x[keep], y[keep], cell[keep]
    weight = c.weight[cell] / scene.n_sub
    sd_bin = np.maximum(np.round(2 * c.sd_px[cell]) / 2, 0.5)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = x - x0, y - y0
    od = np.zeros((hp, wp), np.float32)
    for sd in np.unique(sd_bin):
        m = sd_bin == sd
        layer = np.zeros(hp * wp)
        for dx, dy, share in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                              (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
            index = (y0[m] + dy) * wp + x0[m] + dx
            layer += np.bincount(index, weights=weight[m] * share[m], minlength=hp * wp)
        od += cv2.GaussianBlur(layer.reshape(hp, wp).astype(np.float32), (0, 0), float(sd))
    return od[pad:-pad, pad:-pad]


def frame_image(scene: Scene, rng, k: int) -> np.ndarray:
    """Frame ``k`` (uint8): tissue x exp(-OD), core + halo PSF, vignetting and flicker, then
    Poisson shot noise (``e_per_grey`` electrons per grey level), read noise and dark offset."""
    cam, o = scene.cam, scene.optics
    sx, sy = scene.shift[k]
    move = np.float32([[1, 0, MARGIN_PX + sx], [0, 1, MARGIN_PX + sy]])
    tissue = cv2.warpAffine(scene.tissue, move, (cam.width, cam.height),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    light = tissue * np.exp(-frame_od(scene, k))
    core = cv2.GaussianBlur(light, (0, 0), o["psf_um"] / cam.um_per_px)
    halo = cv2.GaussianBlur(light, (0, 0), o["halo_um"] / cam.um_per_px)
    blurred = (1 - o["halo"]) * core + o["halo"] * halo
    grey = o["dark"] + o["grey"] * scene.gain[k] * scene.vignette * blurred
    electrons = rng.poisson(np.maximum(grey, 0) * o["e_per_grey"])
    noisy = electrons / o["e_per_grey"] + rng.normal(0, o["read"], grey.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- truth and files


def vessel_records(vessels: list[Vessel]) -> list[dict[str, Any]]:
    """vessels.json entries: centreline in frame px (x, y; 0.1 px), diameter, flow, speed."""
    return [
        {
            "id": i,
            "centreline_px": np.round(v.points - MARGIN_PX, 1).tolist(),
            "diameter_um": round(v.diameter_um, 2),
            "flow": v.flow,
            "velocity_um_per_s": round(v.velocity_um_per_s, 1),
            "visible": v.visible,
            "small": v.small,
            "parent": v.parent,
            "defocus_um": round(v.defocus_um, 2),
        }  # fmt: skip
        for i, v in enumerate(vessels)
    ]


def video_truth(records: list[dict[str, Any]], width: int, height: int, um: float) -> dict:
    """Consensus metrics of one field from its vessel records (frame px, mean position)."""
    mm = um / 1000.0
    area = width * height * mm**2
    total = small = perfused = speed_sum = 0.0
    n_segments, quadrants = 0, np.zeros((4, 4))  # quadrant x flow score
    for r in records:
        points = np.asarray(r["centreline_px"], float)
        if not r["visible"] or len(points) < 2:
            continue
        mid = 0.5 * (points[1:] + points[:-1])
        steps = np.hypot(*np.diff(points, axis=0).T) * inside(mid, (0, 0, width, height))
        length = float(steps.sum())
        if length <= 0:
            continue
        n_segments, total = n_segments + 1, total + length
        if not r["small"]:
            continue
        small += length
        if r["flow"] in PERFUSED:
            perfused += length
            speed_sum += length * r["velocity_um_per_s"]
        quadrant = (mid[:, 0] >= width / 2) + 2 * (mid[:, 1] >= height / 2)
        np.add.at(quadrants[:, SCORE[r["flow"]]], quadrant.astype(int), steps)
    scored = quadrants.sum(axis=1) > 0
    return {
        "tvd_mm_per_mm2": total * mm / area, "tvd_small_mm_per_mm2": small * mm / area,
        "pvd_mm_per_mm2": perfused * mm / area,
        "ppv_percent": 100 * perfused / small if small else np.nan,
        "mfi": float(quadrants[scored].argmax(axis=1).mean()) if scored.any() else np.nan,
        "n_segments": n_segments, "total_length_mm": total * mm,
        "mean_velocity_um_per_s": speed_sum / perfused if perfused else np.nan,
    }  # fmt: skip


def write_video(path: Path, frames, cam: Camera) -> None:
    """8-bit PNG frames in a folder (``container`` ''), else MPEG-4 Part 2 in AVI (qscale 3)."""
    if not cam.container:
        path.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(path / f"frame_{i:05d}.png"), frame)
        return
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(cam.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = cam.width, cam.height, "yuv420p"
        stream.codec_context.qscale = 3
        for frame in frames:
            image = av.VideoFrame.from_ndarray(frame, format="gray").reformat(format="yuv420p")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def render_video(out: Path, patient: Patient, site: int, seconds: float, seed: int, p: int):
    """Draw, render and write one video (site ``site`` of patient number ``p``); returns its
    truth row, vessels.json entry and manifest row."""
    cam = patient.camera
    geometry, flow, render = (rng_for(seed, stream, p, site) for stream in (1, 2, 3))
    density = float(np.clip(patient.density_mm_per_mm2 + geometry.normal(0, 1.0), 10, 28))
    vessels = build_network(geometry, cam, density)
    spread = 0.12 if patient.septic else 0.01
    severity = float(np.clip(patient.severity + flow.normal(0, spread), 0, 1))
    assign_flow(flow, vessels, patient, severity, seconds)
    optics = {k: v * render.uniform(0.92, 1.08) for k, v in patient.optics.items()}
    n = max(1, round(seconds * cam.fps))
    scene = prepare_scene(render, vessels, cam, optics, n)
    video_id = f"{patient.patient_id}_site{site}"
    relative = f"videos/{video_id}{cam.container}"
    write_video(out / relative, (frame_image(scene, render, k) for k in range(n)), cam)
    records = vessel_records(vessels)
    mask = np.zeros((cam.height, cam.width), np.uint8)
    for r, v in zip(records, vessels, strict=True):
        if r["visible"]:
            line = np.round(np.asarray(r["centreline_px"])).astype(np.int32)
            cv2.polylines(mask, [line], False, 255, max(1, round(v.diameter_um / cam.um_per_px)))
    cv2.imwrite(str(out / "masks" / f"{video_id}.png"), mask)
    label = "septic" if patient.septic else "non-septic"
    truth = video_truth(records, cam.width, cam.height, cam.um_per_px)
    record = {"video": relative, "patient_id": patient.patient_id, "label": label,
              "camera": cam.name, "um_per_px": cam.um_per_px, "fps": cam.fps,
              "width": cam.width, "height": cam.height, "renderer": "second",
              "vessels": records}  # fmt: skip
    manifest = {"patient_id": patient.patient_id, "video": relative, "label": label, "site": site,
                "um_per_px": cam.um_per_px, "fps": cam.fps, "camera": cam.name}  # fmt: skip
    return {**manifest, **truth}, record, manifest


def render_cohort(
    out: str | Path, *, patients: int = 8, videos_per_patient: int = 2, seconds: float = 3.0,
    seed: int = 0, camera: str = "mixed", width: int | None = None, height: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Render a cohort into ``out`` (half the patients septic; cameras alternate independently
    of the label when ``camera`` is 'mixed'; ``width``/``height`` shrink the frame, µm/px kept)."""
    started, out = time.perf_counter(), Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    assign = rng_for(seed, 0)
    septic = np.arange(patients) < patients // 2
    assign.shuffle(septic)
    names = list(CAMERAS) * (patients // 2 + 1) if camera == "mixed" else [camera] * patients
    names = list(assign.permutation(names[:patients]))
    truths, records, manifest = [], {}, []
    for p in range(patients):
        cam = CAMERAS[names[p]]
        cam = replace(cam, width=width or cam.width, height=height or cam.height)
        patient = draw_patient(rng_for(seed, 4, p), f"P{p + 1:03d}", bool(septic[p]), cam)
        for site in range(1, videos_per_patient + 1):
            truth, record, row = render_video(out, patient, site, seconds, seed, p)
            truths.append(truth)
            records[f"{patient.patient_id}_site{site}"] = record
            manifest.append(row)
    truth = pd.DataFrame(truths, columns=TRUTH_COLUMNS)
    truth.to_csv(out / "truth.csv", index=False, float_format="%.8g")
    (out / "vessels.json").write_text(json.dumps({"videos": records}) + "\n")
    settings = {"renderer": "benchmarks/second_renderer.py", "patients": patients, "seed": seed,
                "videos_per_patient": videos_per_patient, "seconds": seconds, "camera": camera,
                "width": width, "height": height}  # fmt: skip
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    pd.DataFrame(manifest, columns=MANIFEST_COLUMNS).to_csv(out / "manifest.csv", index=False)
    return {"out_dir": str(out), "n_videos": len(manifest),
            "seconds_taken": round(time.perf_counter() - started, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--videos-per-patient", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--camera", choices=["mixed", *CAMERAS], default="mixed")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    a = parser.parse_args(argv)
    result = render_cohort(a.out, patients=a.patients, videos_per_patient=a.videos_per_patient,
                           seconds=a.seconds, seed=a.seed, camera=a.camera, width=a.width,
                           height=a.height)  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
