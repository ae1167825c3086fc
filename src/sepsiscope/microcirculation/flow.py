"""Red-cell flow per segment from space-time diagrams (kymographs) along its centreline.

A kymograph ``K[t, s]`` holds the intensity at arc position ``s`` of a centreline in frame ``t``.
Cells and plasma gaps moving at ``v`` px/frame make streaks ``K[t, s] = f(s - v t)``; their slope is
the velocity. Two questions are asked of each time window (0.5 s by default):

1. *Does anything move?* After removing the static part (each position's mean over the window) and
   global flicker (each frame's mean), what remains is sensor noise if the column stands still,
   and moving cells and gaps if it flows. A window moves when this dynamic variance exceeds
   ``min_dynamic_to_noise`` times the variance that the video's own noise would leave (measured
   on background pixels and passed through the same sampling, see :func:`unit_noise_variance`)
   *and* consecutive frames match up to a shift (correlation >= ``min_coherence`` and above
   what noise reaches by chance over as few values, far higher on a piece a few µm long) of at
   least a sample and ``stopped_below_um_per_s`` (a pattern fading in and out in place matches
   at no shift), or when it exceeds ``certain_dynamic_to_noise`` times that variance.
2. *How fast?* Over the moving windows, the cross-correlation of frame ``t`` with frame ``t + k``
   peaks at the displacement ``d_k``, searched up to the path's length less ``min_overlap_um``
   (a few cells must overlap; searching only half the length found a wrong, smaller peak for
   cells moving 0.5-1x the length per frame); a line through the origin fitted to ``d_k``
   against ``k`` over the first lags whose peak is reliable gives ``v``. Cells moving farther per
   frame than a segment is long cannot be followed on it; they are followed on the segment's
   extension through junctions (:mod:`~sepsiscope.microcirculation.chains`,
   :func:`path_velocity`), and where that is too short, too, the flow is detected (question 1)
   but its velocity is reported as missing (NaN), not guessed.

A window in which nothing moves is told apart by the column's look over the window. Stopped
cells leave a static "barcode" of cells and plasma gaps along the centreline; fast flow blurs into
a uniform dark column, which moves just as little from frame to frame (a capillary without red
cells is invisible and never segmented). So a still window whose time-averaged profile along the
centreline has no texture above the noise (:func:`_static_texture`, below
``uniform_texture_to_noise`` times the noise variance) or varies by less than
``uniform_texture_to_depth`` of the column's darkness counts as flowing, too fast to follow: its
velocity is missing, not zero. Blur needs cells that move farther than their spacing within an
exposure, so in a segment blurred more than ``blurred_fast_fraction`` of the time a slower
figure (from its few moving windows, or from its chain) has followed a nearer cell: it takes the
faster of its own and its chain's velocity, and none below ``sluggish_below_um_per_s``.

A moving window may still hold a stop shorter than itself (intermittent flow stopping for 0.3 s:
in a 3-s clip the consensus' 10 % of stopped time).
Frames ``stop_span_s`` apart are compared (:func:`_still_frames`): where the cell-and-gap
pattern is clearly visible yet has hardly changed over that fixed time, the column stood still,
and those frames count as not flowing; the velocity is measured over the frames in between.

Categories (consensus, De Backer 2007 and Ince 2018), with the thresholds of :class:`FlowCriteria`:
``none`` flows in less than 10 % of the time; ``intermittent`` flows some of the time but stands
still at least 10 % of it; ``sluggish`` flows at least 90 % of the time, slower than
``sluggish_below_um_per_s``; ``continuous`` flows at least 90 % of the time at least that fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CATEGORIES = ("none", "intermittent", "sluggish", "continuous")
MFI_SCORE = {"none": 0, "intermittent": 1, "sluggish": 2, "continuous": 3}
PERFUSED = ("sluggish", "continuous")


@dataclass(frozen=True)
class FlowCriteria:
    """Thresholds of the flow analysis, in µm and seconds (never px or frames; counts of lags
    excepted)."""

    window_s: float = 0.5
    min_dynamic_to_noise: float = 2.0
    certain_dynamic_to_noise: float = 10.0
    min_coherence: float = 0.3
    max_lag_s: float = 0.4
    min_peak_correlation: float = 0.3
    stopped_below_um_per_s: float = 10.0
    sluggish_below_um_per_s: float = 300.0
    none_below_fraction: float = 0.1
    intermittent_below_fraction: float = 0.9
    uniform_texture_to_noise: float = 1.0
    uniform_texture_to_depth: float = 0.15
    texture_scale_um: float = 10.0
    extend_um: float = 100.0
    min_overlap_um: float = 20.0
    min_consistent_lags: int = 1
    max_turn_deg: float = 35.0
    stop_span_s: float = 0.2
    stop_visibility: float = 3.0
    still_change: float = 0.2
    stop_min_length_um: float = 20.0
    blurred_fast_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.min_consistent_lags < 1:
            raise ValueError("min_consistent_lags must be at least 1 (a velocity needs a lag)")


@dataclass(frozen=True)
class SegmentFlow:
    """Flow of one segment: category, velocity (µm/s, NaN when not measurable), the fraction of
    the time it flows, the fraction of the time judged blurred fast flow (a uniform still
    column, which a packed stopped column resembles), and whether it is perfused only because
    of that (without the blurred time it would not be)."""

    category: str
    velocity_um_per_s: float
    moving_fraction: float
    blurred_fraction: float = 0.0
    perfused_by_blur: bool = False


def kymographs(
    frames: np.ndarray, paths_px: list[np.ndarray], *, half_width_px: float = 1.0
) -> list[np.ndarray]:
    """Space-time diagrams of every path at once (one bilinear gather over the stack).

    Parameters
    ----------
    frames : (T, H, W) ndarray
        Registered frames.
    paths_px : list of (L_i, 2) float ndarray
        Centreline points ``(row, col)``, about 1 px apart (``skeleton.resample_path``).
    half_width_px : float
        Samples at ``-h, 0, +h`` px across the centreline are averaged (0: centreline only).

    Returns
    -------
    list of (T, L_i) float32 ndarray
    """
    if not paths_px:
        return []
    h, w = frames.shape[1:]
    points, normals = [], []
    for path in paths_px:
        tangent = np.gradient(path, axis=0) if len(path) > 1 else np.array([[0.0, 1.0]])
        tangent /= np.maximum(np.hypot(*tangent.T), 1e-9)[:, None]
        points.append(path)
        normals.append(np.stack([-tangent[:, 1], tangent[:, 0]], axis=1))
    pts, nrm = np.concatenate(points), np.concatenate(normals)
    offsets = (-half_width_px, 0.0, half_width_px) if half_width_px > 0 else (0.0,)
    total = np.zeros((len(frames), len(pts)), np.float32)
    for offset in offsets:
        y = np.clip(pts[:, 0] + offset * nrm[:, 0], 0, h - 1.001)
        x = np.clip(pts[:, 1] + offset * nrm[:, 1], 0, w - 1.001)
        y0, x0 = y.astype(int), x.astype(int)
        fy, fx = (y - y0).astype(np.float32), (x - x0).astype(np.float32)
        total += (
            frames[:, y0, x0] * ((1 - fy) * (1 - fx))
            + frames[:, y0, x0 + 1] * ((1 - fy) * fx)
            + frames[:, y0 + 1, x0] * (fy * (1 - fx))
            + frames[:, y0 + 1, x0 + 1] * (fy * fx)
        )
    total /= len(offsets)
    bounds = np.cumsum([0] + [len(p) for p in paths_px])
    return [total[:, a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _dynamic(window: np.ndarray) -> np.ndarray:
    d = window - window.mean(axis=0, keepdims=True)
    return d - d.mean(axis=1, keepdims=True)


def _smooth(kymograph: np.ndarray) -> np.ndarray:
    # a light smoothing along s suppresses pixel noise without blurring cells (about 7 µm)
    return ndimage.gaussian_filter1d(kymograph.astype(np.float32), 0.7, axis=1)


def _static_texture(window: np.ndarray, *, um_per_sample: float, scale_um: float) -> float:
    """Variance along the centreline of a window's time-averaged profile, trends removed.

    Profile changes longer than about ``2 * scale_um`` (illumination, junctions, the vessel's
    ends) are removed with a Gaussian of ``scale_um``; what is left is the cell-and-gap pattern.
    """
    profile = window.mean(axis=0)
    if profile.size < 3:
        return float("inf")  # too short to tell a barcode from a uniform column
    trend = ndimage.gaussian_filter1d(profile, max(1.0, scale_um / um_per_sample), mode="nearest")
    return float(np.var(profile - trend))


def _window_bounds(n_frames: int, fps: float, window_s: float) -> np.ndarray:
    per_window = max(3, int(round(window_s * fps)))
    return np.linspace(0, n_frames, max(1, n_frames // per_window) + 1).astype(int)


def noise_variance(frames: np.ndarray, background: np.ndarray, *, max_frames: int = 50) -> float:
    """Per-pixel sensor noise variance from frame-to-frame differences of background pixels.

    Parameters
    ----------
    frames : (T, H, W) ndarray
        Registered frames, T >= 2.
    background : (H, W) bool ndarray
        Pixels without vessels (static tissue).
    """
    step = max(1, (len(frames) - 1) // max_frames)
    total = np.zeros(int(background.sum()), np.float64)
    count = 0
    for t in range(0, len(frames) - 1, step):
        total += (frames[t + 1][background].astype(np.float32) - frames[t][background]) ** 2
        count += 1
    if count == 0 or total.size == 0:
        return 0.0
    # per-pixel mean over time, then the median over pixels ignores the few that hold motion
    return float(np.median(total / count)) / 2


def unit_noise_variance(
    paths_px: list[np.ndarray],
    shape: tuple[int, int],
    *,
    fps: float,
    window_s: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Dynamic variance each path's kymograph window keeps of unit-variance white pixel noise.

    Sampling (bilinear, averaged across the centreline), smoothing and mean removal shrink the
    noise by a factor that depends on each path's geometry; simulating it is exact and cheap.
    """
    n = int(_window_bounds(10**6, fps, window_s)[1])
    noise = np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)
    return np.array(
        [float(np.mean(_dynamic(_smooth(k)) ** 2)) for k in kymographs(noise, paths_px)]
    )


def _displacements(dyn: list[np.ndarray], max_lag: int, min_overlap: int):
    """Peak displacement (px) and normalised peak height for lags 1..max_lag, pooled windows."""
    length = dyn[0].shape[1]
    min_overlap = min(min_overlap, length)  # a path of 1-2 samples: only the zero shift
    nfft = int(2 ** np.ceil(np.log2(2 * length)))
    # every frame weighs the same: a few frames of a stopped column must not dominate the sum
    dyn = [d / np.maximum(np.sqrt(np.mean(d * d, axis=1, keepdims=True)), 1e-6) for d in dyn]
    spectra = [np.fft.rfft(d, n=nfft, axis=1) for d in dyn]
    energy = sum(float(np.sum(d * d) / d.shape[0]) for d in dyn) / len(dyn)
    shifts = np.arange(-(length - min_overlap), length - min_overlap + 1)
    overlap = (length - np.abs(shifts)) / length
    result = []
    for k in range(1, max_lag + 1):
        cross = np.zeros(nfft // 2 + 1, complex)
        pairs = 0
        for f in spectra:
            if len(f) > k:
                cross += np.sum(np.conj(f[:-k]) * f[k:], axis=0)
                pairs += len(f) - k
        if pairs == 0 or energy <= 0:
            break
        corr = np.fft.irfft(cross, n=nfft)[shifts % nfft] / pairs / energy / overlap
        i = int(np.argmax(corr))
        peak = float(corr[i])
        offset = 0.0
        if 0 < i < len(corr) - 1:  # parabolic sub-pixel refinement
            denom = corr[i - 1] - 2 * corr[i] + corr[i + 1]
            offset = 0.5 * (corr[i - 1] - corr[i + 1]) / denom if denom < 0 else 0.0
        result.append((k, float(shifts[i] + offset), peak))
    return result


def _moving_windows(
    kymograph: np.ndarray,
    *,
    fps: float,
    um_per_sample: float,
    noise_variance: float,
    criteria: FlowCriteria,
    column_depth: float = float("nan"),
):
    """Dynamic part of each window, which windows move or hold blurred fast flow, and the
    windows' frame bounds."""
    n_frames, length = kymograph.shape
    bounds = _window_bounds(n_frames, fps, criteria.window_s)
    dyn = [_dynamic(kymograph[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    floor = max(noise_variance, 1e-6) * criteria.min_dynamic_to_noise
    ratio = np.array([float(np.mean(d * d)) for d in dyn]) / floor
    # compressed video (MJPEG, H.264) is noisier in a textured vessel than in the background the
    # noise was measured on, so a little excess variance alone is not motion: cells moving make
    # consecutive frames alike up to a shift, noise does not. Nor is a change alike from frame to
    # frame without a shift: a still column whose pattern fades in and out (light, focus,
    # registration residue: on our simulator the windows of stopped capillaries called moving
    # had their peak within 0.1 µm of no shift, median). Far above the noise (cells too fast to
    # follow from frame to frame) the variance alone decides.
    moving = ratio > criteria.certain_dynamic_to_noise / criteria.min_dynamic_to_noise
    # at least a sample: the sub-pixel peak of a pattern changing in place wanders by half of one
    least_shift = max(1.0, criteria.stopped_below_um_per_s / (fps * um_per_sample))
    overlap = min(max(3, int(0.5 * length)), length)
    for i in np.flatnonzero((ratio > 1) & ~moving):
        lag = _displacements([dyn[i]], 1, overlap)
        # noise alone peaks by chance higher the fewer values are compared: 4 / sqrt(values) lies
        # above its 99th percentile (simulated through this sampling: 0.51 against 0.70 on 5
        # samples, 0.39 against 0.46 on 15, equal from about 30), far above min_coherence on a
        # short piece, where a fifth of the windows of a still one with a little excess
        # variance had been called moving
        chance = 4.0 / np.sqrt(overlap * max(1, len(dyn[i]) - 1))
        moving[i] = bool(lag) and lag[0][2] >= max(criteria.min_coherence, chance)
        moving[i] &= bool(lag) and abs(lag[0][1]) >= least_shift
    blurred = np.zeros_like(moving)
    # a still window is blurred fast flow when its time-averaged profile is about uniform: its
    # texture is within the sensor noise, or small beside the column's own darkness. Stopped
    # cells and plasma gaps vary by a good part of that darkness (a median 65 % on simulated
    # MicroScan stops), a column of cells streaking past in a 20 ms exposure by a few % (90 %
    # of such windows under 12 %); the noise alone missed the latter on noisy cameras
    uniform = criteria.uniform_texture_to_noise * max(noise_variance, 1e-6)
    if np.isfinite(column_depth) and column_depth > 0:
        uniform = max(uniform, (criteria.uniform_texture_to_depth * column_depth) ** 2)
    for i in np.flatnonzero(~moving):
        a, b = bounds[i], bounds[i + 1]
        texture = _static_texture(
            kymograph[a:b], um_per_sample=um_per_sample, scale_um=criteria.texture_scale_um
        )
        blurred[i] = texture < uniform
    return dyn, moving, blurred, bounds


def _still_frames(
    kymograph: np.ndarray,
    *,
    fps: float,
    um_per_sample: float,
    noise_variance: float,
    criteria: FlowCriteria,
) -> np.ndarray:
    """Frames during which the column's pattern stood still for ``stop_span_s`` or longer.

    A window that moves may still hold stops shorter than itself: intermittent flow stopping for
    0.3-0.5 s. Frame ``t`` is compared with frame ``t + m`` (``m`` frames = ``stop_span_s``, a
    fixed *time*, so the test does not depend on the frame rate) and with ``t + m/2``,
    ``t + m/3`` and ``t + m/4``: the change of the cell-and-gap pattern, less the noise, is set
    against the pattern's own strength. Cells moving farther than about a cell change it by
    nearly all of it; a stopped column only by the noise. A regular train moving one cell
    spacing in ``m`` frames looks unchanged at ``m`` but not at the shorter lags, so a pair is
    still only if it is still at all four. The test is made only where the pattern stands
    clearly above the noise (``stop_visibility``), so a faint or uniform column is never called
    still. Three still pairs in a row are needed, and every frame they span is still: the
    shortest stop found is ``stop_span_s`` + 2 frames.

    Returns
    -------
    (T,) bool ndarray
    """
    n_frames, length = kymograph.shape
    m = max(1, int(round(criteria.stop_span_s * fps)))
    still = np.zeros(n_frames, bool)
    if n_frames <= m or length * um_per_sample < criteria.stop_min_length_um:
        return still
    # what stands still all video long (tissue, the vessel's wall, a junction) is no pattern
    # of cells; nor are slow changes along the path (illumination, a cell blurred into a streak)
    detail = kymograph - kymograph.mean(axis=0, keepdims=True)
    detail -= ndimage.gaussian_filter1d(
        detail, max(1.0, criteria.texture_scale_um / um_per_sample), axis=1, mode="nearest"
    )
    pattern = np.mean(detail * detail, axis=1)
    noise = max(noise_variance, 1e-6)
    starts = n_frames - m
    pairs = np.ones(starts, bool)
    for lag in sorted({m, max(1, m // 2), max(1, m // 3), max(1, m // 4)}):
        change = np.mean((detail[lag : lag + starts] - detail[:starts]) ** 2, axis=1)
        signal = pattern[lag : lag + starts] + pattern[:starts] - 2 * noise  # 2x the pattern
        pairs &= (signal > 2 * criteria.stop_visibility * noise) & (
            change - 2 * noise < criteria.still_change * signal
        )
    # three pairs in a row: one quiet pair of noisy frames is no stop
    pairs = ndimage.binary_opening(pairs, np.ones(3, bool))
    for t in np.flatnonzero(pairs):
        still[t : t + m + 1] = True
    return still


def _streak_velocity(
    dyn: list[np.ndarray],
    *,
    per_window: int,
    fps: float,
    um_per_sample: float,
    criteria: FlowCriteria,
) -> float:
    """Red-cell speed, µm/s, from the displacement per lag over runs of moving frames."""
    min_overlap = int(np.ceil(criteria.min_overlap_um / um_per_sample))
    if not dyn or dyn[0].shape[1] < min_overlap + 1:
        return float("nan")
    max_lag = max(1, min(int(round(criteria.max_lag_s * fps)), per_window - 1))
    lags = _displacements(dyn, max_lag, min_overlap)
    good: list[tuple[int, float, float]] = []
    for k, d, r in lags:  # the first lags, while their peak is reliable and on the line
        if r < criteria.min_peak_correlation:
            break
        if good:
            kk, dd, rr = (np.array(v) for v in zip(*good, strict=True))
            predicted = k * float(np.sum(rr * kk * dd) / np.sum(rr * kk * kk))
            if abs(d - predicted) > max(2.0, 0.25 * abs(predicted)):
                break
        good.append((k, d, r))
    if len(good) < criteria.min_consistent_lags:
        return float("nan")
    k, d, r = (np.array(v) for v in zip(*good, strict=True))
    return abs(float(np.sum(r * k * d) / np.sum(r * k * k))) * um_per_sample * fps


def _moving_runs(
    smoothed: np.ndarray,
    dyn: list[np.ndarray],
    moving: np.ndarray,
    still: np.ndarray,
    bounds: np.ndarray,
) -> list[np.ndarray]:
    """Dynamic part of each moving window, split where the column stood still within it (runs
    of fewer than 3 frames dropped): stopped frames would pull the velocity towards zero."""
    runs = []
    for i in np.flatnonzero(moving):
        a, b = bounds[i], bounds[i + 1]
        if not still[a:b].any():
            runs.append(dyn[i])
            continue
        labels, _ = ndimage.label(~still[a:b])
        for piece in ndimage.find_objects(labels):
            if piece[0].stop - piece[0].start >= 3:
                runs.append(_dynamic(smoothed[a + piece[0].start : a + piece[0].stop]))
    return runs


def _windows_and_velocity(
    kymograph: np.ndarray,
    *,
    fps: float,
    um_per_sample: float,
    noise_variance: float,
    criteria: FlowCriteria,
    column_depth: float = float("nan"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Window bounds (frames), moving and blurred windows of a kymograph (smoothed here), its
    still frames (:func:`_still_frames`) and its streaks' velocity while moving, µm/s."""
    smoothed = _smooth(kymograph)
    dyn, moving, blurred, bounds = _moving_windows(
        smoothed, fps=fps, um_per_sample=um_per_sample,
        noise_variance=noise_variance, criteria=criteria, column_depth=column_depth,
    )  # fmt: skip
    still = _still_frames(smoothed, fps=fps, um_per_sample=um_per_sample,
                          noise_variance=noise_variance, criteria=criteria)  # fmt: skip
    runs = _moving_runs(smoothed, dyn, moving, still, bounds)
    velocity = _streak_velocity(runs, per_window=int(np.min(np.diff(bounds))), fps=fps,
                                um_per_sample=um_per_sample, criteria=criteria)  # fmt: skip
    return bounds, moving, blurred, still, velocity


def path_velocity(
    kymograph: np.ndarray,
    *,
    fps: float,
    um_per_px: float,
    noise_variance: float,
    step_px: float = 1.0,
    criteria: FlowCriteria = FlowCriteria(),
) -> float:
    """Red-cell velocity along a path (µm/s; NaN when nothing can be followed).

    The velocity part of :func:`segment_flow`, for a longer path than one segment (a chain of
    segments through junctions, :mod:`~sepsiscope.microcirculation.chains`). Parameters as there.
    """
    *_, velocity = _windows_and_velocity(
        kymograph, fps=fps, um_per_sample=um_per_px * step_px, noise_variance=noise_variance,
        criteria=criteria,
    )  # fmt: skip
    # a still part of the path (a stopped piece, residual jitter) is no velocity for the rest
    return velocity if velocity >= criteria.stopped_below_um_per_s else float("nan")


def segment_flow(
    kymograph: np.ndarray,
    *,
    fps: float,
    um_per_px: float,
    noise_variance: float,
    step_px: float = 1.0,
    criteria: FlowCriteria = FlowCriteria(),
    path_velocity_um_per_s: float = float("nan"),
    column_depth: float = float("nan"),
) -> SegmentFlow:
    """Classify the flow in one segment and measure its red-cell velocity.

    Parameters
    ----------
    kymograph : (T, L) float ndarray
        From :func:`kymographs`; samples ``step_px`` apart along the centreline.
    fps : float
        Frames per second.
    um_per_px : float
    noise_variance : float
        Dynamic variance a still column would show from sensor noise alone, in the kymograph's
        units squared (``noise_variance(...) * unit_noise_variance(...)[i]``).
    step_px : float
    criteria : FlowCriteria
    path_velocity_um_per_s : float
        Velocity measured on a longer path through this segment (:func:`path_velocity` of its
        extension through junctions); used for a segment that flows but whose own diagram cannot
        follow its cells (too short for how far they move in a frame).
    column_depth : float
        How much darker the vessel is than the tissue beside it, in the kymograph's units (NaN:
        unknown). A still window whose profile varies by less than
        ``criteria.uniform_texture_to_depth`` of it is blurred fast flow, not stopped cells.

    Returns
    -------
    SegmentFlow
    """
    bounds, moving, blurred, still, velocity = _windows_and_velocity(
        kymograph, fps=fps, um_per_sample=um_per_px * step_px, noise_variance=noise_variance,
        criteria=criteria, column_depth=column_depth,
    )  # fmt: skip
    if velocity < criteria.stopped_below_um_per_s:
        moving[:] = False  # coherent change without displacement: not flow
    if blurred.any() and not moving.any():
        velocity = float("nan")  # only blurred (too fast) flow: no streak to measure
    if (moving.any() or blurred.any()) and np.isnan(velocity):
        velocity = float(path_velocity_um_per_s)
    # time flowing, frame by frame: a moving window less its stops shorter than the window
    flowing = np.zeros(len(kymograph), bool)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if blurred[i]:
            flowing[a:b] = True
        elif moving[i]:
            flowing[a:b] = ~still[a:b]
    fraction = float(flowing.mean())
    blurred_time = float(np.diff(bounds)[blurred].sum()) / len(kymograph)
    # a column blurs into a uniform one only when its cells move farther than their spacing
    # within an exposure: in a segment blurred most of the time, a slower figure from its few
    # moving windows or from its extension has locked onto a nearer cell (cells out of the
    # search range), so the faster of the two is taken, and none below the sluggish line
    if blurred_time > criteria.blurred_fast_fraction:
        velocity = float(np.fmax(velocity, path_velocity_um_per_s))
        if velocity < criteria.sluggish_below_um_per_s:
            velocity = float("nan")
    if fraction < criteria.none_below_fraction:
        category = "none"
        velocity = 0.0
    elif fraction < criteria.intermittent_below_fraction:
        category = "intermittent"
    elif np.isfinite(velocity) and velocity < criteria.sluggish_below_um_per_s:
        category = "sluggish"
    else:
        category = "continuous"
    by_blur = (
        category in PERFUSED and fraction - blurred_time < criteria.intermittent_below_fraction
    )
    return SegmentFlow(category, velocity, fraction, blurred_time, by_blur)
