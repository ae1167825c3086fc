"""Rendering dark-field frames of a vessel network.

Image model (one frame, canvas px)::

    od(x)     = sum over vessels  mu * chord(x) * rbc_density(s(x) - shift(t))    Beer-Lambert
    tissue(x) = texture(x) * (1 - contrast * blur(1 - exp(-od)))                   focus blur
    frame     = shift(tissue, drift + jitter) * illumination(t) + noise            camera

``chord`` is the path length of light through the cylindrical vessel at distance d from its
centreline; ``s`` is the arclength of the nearest centreline point. Both are computed once per
video (a distance transform per vessel), so a frame only needs a 1-D lookup of each vessel's
red-cell pattern, a ``bincount`` and a few full-frame OpenCV operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import cv2
import numpy as np

from sepsiscope.simulate.cameras import CameraProfile
from sepsiscope.simulate.flow import displacement_px, rbc_pattern
from sepsiscope.simulate.vessels import Vessel

MARGIN_PX = 24  # canvas border around the frame, room for drift


@dataclass(frozen=True)
class Optics:
    """Illumination and optics of one recording; patients differ (a confound to beware of).

    Grey levels are 0-255; lengths in µm are converted with the camera's µm/px.
    """

    background: float  # grey level of lit tissue at the field centre
    vignette: float  # fractional darkening at the corners
    vignette_shift: tuple[float, float]  # centre of the light cone, fraction of the frame
    tilt: float  # linear illumination gradient, fraction across the frame
    tilt_angle: float  # radians
    focus_sd_um: float  # Gaussian sd of the focus blur, µm
    noise_sd: float  # sensor noise, grey levels
    contrast: float  # darkening of an opaque vessel, fraction of the background
    absorption_per_um: float  # optical density per µm of packed red cells
    texture: float  # amplitude of the tissue's scattering mottle
    drift_px: float  # amplitude of the slow drift
    jitter_px: float  # sd of the hand tremor
    flicker: float  # amplitude of the slow illumination change


def draw_optics(rng: np.random.Generator) -> Optics:
    """One patient's optics: brightness, vignetting, focus, noise, contrast and stability."""
    return Optics(
        background=float(rng.uniform(135.0, 195.0)),
        vignette=float(rng.uniform(0.12, 0.45)),
        vignette_shift=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.12, 0.12))),
        tilt=float(rng.uniform(0.0, 0.18)),
        tilt_angle=float(rng.uniform(0, 2 * np.pi)),
        focus_sd_um=float(rng.uniform(0.8, 2.2)),
        noise_sd=float(rng.uniform(1.5, 4.5)),
        contrast=float(rng.uniform(0.5, 0.72)),
        absorption_per_um=float(rng.uniform(0.10, 0.18)),
        texture=float(rng.uniform(0.02, 0.06)),
        drift_px=float(rng.uniform(1.0, 8.0)),
        jitter_px=float(rng.uniform(0.2, 0.9)),
        flicker=float(rng.uniform(0.01, 0.05)),
    )


def vary_optics(rng: np.random.Generator, optics: Optics) -> Optics:
    """The same patient's optics at another site: a few percent of change."""

    def f(value: float, sd: float = 0.05) -> float:
        return float(value * rng.lognormal(0.0, sd))

    return replace(
        optics,
        background=f(optics.background, 0.04),
        focus_sd_um=f(optics.focus_sd_um, 0.15),
        tilt_angle=optics.tilt_angle + float(rng.normal(0, 0.3)),
        drift_px=f(optics.drift_px, 0.3),
    )


@dataclass
class RenderPlan:
    """Everything a frame needs, computed once per video (see the module doc)."""

    camera: CameraProfile
    optics: Optics
    n_frames: int
    canvas_shape: tuple[int, int]  # (height, width)
    pix: np.ndarray  # (E,) flat canvas index of each vessel pixel entry
    sample: np.ndarray  # (E,) centreline sample (global index) of each entry
    weight: np.ndarray  # (E,) float32 optical density at full red-cell density
    sample_vessel: np.ndarray  # (S,) moving-vessel index of each centreline sample
    sample_arc: np.ndarray  # (S,) arclength index of each sample
    patterns: np.ndarray  # concatenated red-cell patterns of moving vessels
    pattern_start: np.ndarray  # (V,) offset of each moving vessel's pattern
    pattern_length: np.ndarray  # (V,)
    shifts: np.ndarray  # (T, V) int displacement of each moving vessel's pattern, px
    static_od: np.ndarray  # (H*W,) float32 optical density of vessels that never move
    texture: np.ndarray  # (Hc, Wc) float32
    illumination: np.ndarray  # (H, W) float32
    illumination_change: np.ndarray  # (H, W) float32, a smooth field added over time
    gain: np.ndarray  # (T, 2): brightness factor and weight of the change field
    offsets: np.ndarray  # (T, 2) int drift + jitter (x, y), px
    noise_bank: np.ndarray  # (K, H + 16, W + 16) float32
    noise_pick: np.ndarray  # (T, 3) bank index, dy, dx
    mask: np.ndarray  # (H, W) uint8, 255 on visible vessel pixels at the mean position


def _vessel_pixels(points: np.ndarray, radius_px: float, canvas_shape: tuple[int, int]):
    """Canvas pixels within ``radius_px`` of a centreline: flat index, nearest sample, distance."""
    hc, wc = canvas_shape
    reach = radius_px + 1.0
    lo = np.maximum(np.floor(points.min(axis=0) - reach - 1).astype(int), 0)
    hi = np.minimum(np.ceil(points.max(axis=0) + reach + 2).astype(int), [wc, hc])
    w, h = hi - lo
    img = np.full((h, w), 255, np.uint8)
    ip = np.clip(np.rint(points - lo).astype(int), 0, [w - 1, h - 1])
    img[ip[:, 1], ip[:, 0]] = 0
    dist, labels = cv2.distanceTransformWithLabels(
        img, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels[ip[:, 1], ip[:, 0]]] = np.arange(len(points))
    yy, xx = np.nonzero(dist <= reach + 1.0)
    nearest = lut[labels[yy, xx]]
    gx, gy = xx + lo[0], yy + lo[1]
    d = np.hypot(gx - points[nearest, 0], gy - points[nearest, 1])
    keep = d <= reach
    return (gy * wc + gx)[keep], nearest[keep], d[keep]


def prepare(
    rng: np.random.Generator,
    vessels: list[Vessel],
    camera: CameraProfile,
    optics: Optics,
    *,
    n_frames: int,
    motion: bool = True,
) -> RenderPlan:
    """Precompute a video's static geometry, red-cell motion, illumination and noise.

    Also finishes the flow simulation (an intermittent vessel's velocity becomes the average of
    its simulated stops and starts), so call it before computing the truth. ``motion=False``
    turns drift and jitter off (used by tests that compare pixels over time).
    """
    w, h = camera.width, camera.height
    hc, wc = h + 2 * MARGIN_PX, w + 2 * MARGIN_PX
    um = camera.um_per_px
    pix, sample, weight = [], [], []
    samp_vessel, samp_arc, patterns, starts, lengths, shifts = [], [], [], [], [], []
    static_od = np.zeros(hc * wc, np.float64)
    mask = np.zeros(hc * wc, np.uint8)
    n_samples = 0
    for v in vessels:
        disp = displacement_px(rng, v, n_frames=n_frames, fps=camera.fps, um_per_px=um)
        if not v.visible or len(v.points) < 2:
            continue  # a red-cell-free capillary absorbs nothing: no trace at all
        radius = 0.5 * v.diameter_um / um
        p, j, d = _vessel_pixels(v.points, radius, (hc, wc))
        chord_um = 2.0 * np.sqrt(np.maximum(radius**2 - np.maximum(d - 0.3, 0.0) ** 2, 0)) * um
        ends_um = np.minimum(j, len(v.points) - 1 - j) * um
        taper = np.clip(ends_um / 4.0, 0.0, 1.0)  # vessels fade out of the focal plane
        wt = (optics.absorption_per_um * chord_um * taper).astype(np.float32)
        mask[p[d <= radius]] = 255
        travel = float(np.abs(disp).max()) if n_frames else 0.0
        blur = v.velocity_um_per_s * camera.exposure_s / um
        length = int(min(len(v.points) + travel + 8, 4096))
        pattern = rbc_pattern(rng, v, length_px=length, um_per_px=um, blur_px=blur)
        if v.flow == "stopped":
            static_od += np.bincount(p, wt * pattern[j], minlength=hc * wc)
            continue
        pix.append(p)
        sample.append(j + n_samples)
        weight.append(wt)
        samp_vessel.append(np.full(len(v.points), len(patterns)))
        samp_arc.append(np.arange(len(v.points)))
        starts.append(sum(len(q) for q in patterns))
        lengths.append(len(pattern))
        patterns.append(pattern)
        shifts.append(np.floor(disp).astype(np.int64))
        n_samples += len(v.points)

    def cat(arrays, dtype):
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    frame_slice = np.s_[MARGIN_PX : MARGIN_PX + h, MARGIN_PX : MARGIN_PX + w]
    return RenderPlan(
        camera=camera,
        optics=optics,
        n_frames=n_frames,
        canvas_shape=(hc, wc),
        pix=cat(pix, np.int64),
        sample=cat(sample, np.int64),
        weight=cat(weight, np.float32),
        sample_vessel=cat(samp_vessel, np.int64),
        sample_arc=cat(samp_arc, np.int64),
        patterns=cat(patterns, np.float32),
        pattern_start=np.asarray(starts, np.int64),
        pattern_length=np.asarray(lengths, np.int64),
        shifts=np.stack(shifts, axis=1) if shifts else np.zeros((n_frames, 0), np.int64),
        static_od=static_od.astype(np.float32),
        texture=_texture(rng, (hc, wc), optics, um),
        illumination=_illumination((h, w), optics),
        illumination_change=_smooth_field(rng, (h, w), cells=3),
        gain=_gain(rng, n_frames, camera.fps, optics.flicker),
        offsets=_offsets(rng, n_frames, camera.fps, optics, motion),
        noise_bank=rng.standard_normal((3, h + 16, w + 16), dtype=np.float32) * optics.noise_sd,
        noise_pick=np.stack(
            [rng.integers(0, 3, n_frames), *rng.integers(0, 16, (2, n_frames))], axis=1
        ),
        mask=np.ascontiguousarray(mask.reshape(hc, wc)[frame_slice]),
    )


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], *, cells: int) -> np.ndarray:
    """A smooth random field of about ``cells`` undulations across, sd ~1, float32."""
    h, w = shape
    coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _texture(rng, shape, optics: Optics, um_per_px: float) -> np.ndarray:
    """Tissue that moves with the vessels: scattering mottle and faint out-of-focus deep vessels."""
    h, w = shape
    mottle = _smooth_field(rng, shape, cells=int(max(w, h) * um_per_px / 60)) * 0.6
    fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.2) * 0.8
    texture = 1.0 + optics.texture * (mottle + fine)
    deep = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):  # deeper vessels, far out of focus: not counted
        start = rng.uniform(0, 1, 2) * (w, h)
        angle = rng.uniform(0, 2 * np.pi)
        bend = np.cumsum(rng.normal(0, 0.02, 200))
        steps = np.stack([np.cos(angle + bend), np.sin(angle + bend)], axis=1) * 6.0
        pts = (start + np.cumsum(steps, axis=0)).astype(np.int32)
        thickness = int(max(3, rng.uniform(25.0, 60.0) / um_per_px))
        cv2.polylines(deep, [pts.reshape(-1, 1, 2)], False, 1.0, thickness, cv2.LINE_AA)
    deep = cv2.GaussianBlur(deep, (0, 0), 18.0 / um_per_px)
    return (texture * (1.0 - rng.uniform(0.04, 0.1) * deep)).astype(np.float32)


def _illumination(shape: tuple[int, int], optics: Optics) -> np.ndarray:
    """Camera-fixed light: background grey, vignetting and a linear tilt, float32 (H, W)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = w * (0.5 + optics.vignette_shift[0])
    cy = h * (0.5 + optics.vignette_shift[1])
    r2 = ((x - cx) ** 2 + (y - cy) ** 2) / (0.25 * (w * w + h * h))
    along = ((x - w / 2) * np.cos(optics.tilt_angle) + (y - h / 2) * np.sin(optics.tilt_angle)) / w
    light = optics.background * (1.0 - optics.vignette * r2) * (1.0 + optics.tilt * along)
    return light.astype(np.float32)


def _gain(rng, n_frames: int, fps: float, flicker: float) -> np.ndarray:
    """Per frame: global brightness factor and weight of the smooth change field."""
    t = np.arange(n_frames) / fps
    f1, f2 = rng.uniform(0.1, 0.5), rng.uniform(0.05, 0.3)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    brightness = 1.0 + flicker * np.sin(2 * np.pi * f1 * t + p1)
    change = 0.5 * flicker * np.sin(2 * np.pi * f2 * t + p2)
    return np.stack([brightness, change], axis=1)


def _offsets(rng, n_frames: int, fps: float, optics: Optics, motion: bool) -> np.ndarray:
    """Drift (slow sinusoids) plus tremor (AR(1) jitter) around the mean position, whole px."""
    if not motion or n_frames == 0:
        return np.zeros((n_frames, 2), np.int64)
    t = np.arange(n_frames) / fps
    freq = rng.uniform(0.05, 0.35, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    drift = optics.drift_px * np.sin(2 * np.pi * freq * t[:, None] + phase)
    jitter = np.zeros((n_frames, 2))
    shocks = rng.normal(0, optics.jitter_px, (n_frames, 2))
    for i in range(1, n_frames):
        jitter[i] = 0.6 * jitter[i - 1] + shocks[i]
    offsets = np.rint(drift + jitter - (drift + jitter).mean(axis=0))  # whole px: a crop
    return np.clip(offsets, -(MARGIN_PX - 2), MARGIN_PX - 2).astype(np.int64)


def render_frames(plan: RenderPlan) -> Iterator[np.ndarray]:
    """Yield the video's frames, ``(H, W)`` uint8 each."""
    cam, optics = plan.camera, plan.optics
    hc, wc = plan.canvas_shape
    h, w = cam.height, cam.width
    sigma = max(optics.focus_sd_um / cam.um_per_px, 0.3)
    ksize = 2 * int(np.ceil(2.5 * sigma)) + 1
    # tissue = texture * (1 - contrast * blur(1 - exp(-od))) = clear + shade * blur(exp(-od))
    clear = plan.texture * np.float32(1.0 - optics.contrast)
    shade = plan.texture * np.float32(optics.contrast)
    change = plan.illumination * plan.illumination_change
    vessel_of = plan.sample_vessel
    start, period = plan.pattern_start[vessel_of], plan.pattern_length[vessel_of]
    for t in range(plan.n_frames):
        at = start + np.mod(plan.sample_arc - plan.shifts[t][vessel_of], period)
        density = plan.patterns[at]
        od = np.bincount(plan.pix, plan.weight * density[plan.sample], minlength=hc * wc)
        od = od.astype(np.float32).reshape(hc, wc)
        od += plan.static_od.reshape(hc, wc)
        np.negative(od, out=od)
        light_through = cv2.GaussianBlur(cv2.exp(od), (ksize, ksize), sigma)
        ox, oy = plan.offsets[t]
        view = np.s_[MARGIN_PX + oy : MARGIN_PX + oy + h, MARGIN_PX + ox : MARGIN_PX + ox + w]
        tissue = cv2.add(cv2.multiply(shade[view], light_through[view]), clear[view])
        light = cv2.addWeighted(
            plan.illumination, float(plan.gain[t, 0]), change, float(plan.gain[t, 1]), 0.0
        )
        k, dy, dx = plan.noise_pick[t]
        frame = cv2.add(cv2.multiply(tissue, light), plan.noise_bank[k, dy : dy + h, dx : dx + w])
        yield cv2.convertScaleAbs(frame)  # rounds and saturates; frames stay well above 0
