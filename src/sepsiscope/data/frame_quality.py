"""Per-frame preprocessing shared by ingest and live prediction: samples and quality.

A *sample* is the study's 224x224x3 input: the grey frames at ``t``, ``t + k`` and ``t + 2k``
(``k`` about 150 ms) stacked as channels, cropped square and resized with area interpolation
(``cv2.INTER_AREA``, the interpolation that averages rather than aliases when shrinking).

Quality follows the parts of the Massey 2013 microcirculation image quality score that a program
can judge (content and pressure need a human). Each part scores 0 optimal, 1 acceptable or 10
unacceptable; a total of 10 or more rejects the frame or video. Thresholds (module constants):

illumination (per frame)
    0: mean grey in [50, 210] and < 2 % of pixels saturated (>= 250) and < 2 % dark (<= 5);
    1: mean in [25, 235] and < 10 % saturated and < 10 % dark; 10 otherwise.
focus (per frame)
    ``focus`` = variance of the Laplacian of the frame shrunk to 256 px on its short side and
    smoothed (sigma 1.5 px, so sensor noise does not pass for detail), divided by the squared mean
    grey, x 1000 (dimensionless, independent of resolution and exposure).
    0: >= 3; 1: >= 0.5; 10: < 0.5, or < 0.25 x the video's median focus (a focus pull inside a
    sharp video). Deliberately lenient: only nearly featureless frames are rejected.
stability (per frame and per video)
    Shift between the frames at ``t`` and ``t + 2k`` by phase correlation, expressed as fields
    per second (shift / short side / elapsed time). 0: < 0.2; 1: < 1; 10: >= 1 (a whole field of
    view sweeps past within a second). The video scores its median.
duration (per video)
    0: >= 5 s; 1: >= 3 s; 10: < 3 s (Massey: shorter than 3 s is unacceptable).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

import cv2
import numpy as np

Crop = Literal["center", "tiles"]
CROPS: tuple[str, ...] = ("center", "tiles")

SATURATED_GREY = 250
DARK_GREY = 5
ILLUMINATION_OPTIMAL = {"mean": (50.0, 210.0), "fraction": 0.02}
ILLUMINATION_ACCEPTABLE = {"mean": (25.0, 235.0), "fraction": 0.10}
FOCUS_OPTIMAL = 3.0
FOCUS_ACCEPTABLE = 0.5
FOCUS_RELATIVE_REJECT = 0.25
STABILITY_OPTIMAL_FIELD_PER_S = 0.2
STABILITY_ACCEPTABLE_FIELD_PER_S = 1.0
DURATION_OPTIMAL_S = 5.0
DURATION_MIN_S = 3.0
REJECT_SCORE = 10
_QUALITY_SIDE = 256


def crop_boxes(
    height: int, width: int, *, size: int = 224, crop: Crop = "center", side_px: int | None = None
) -> list:
    """Square crops ``(y0, x0, side)`` in original pixels.

    ``center``: the largest centred square. ``tiles``: squares of side ``max(size, short // 2)``
    laid on an evenly spaced grid (overlapping where the field does not divide) so that together
    they cover the whole field at close to native resolution. ``side_px`` fixes the side of every
    square instead (a fixed physical field, :func:`field_side_px`): ``center`` takes one centred
    square of that side, ``tiles`` covers the field with them.
    """
    short = min(height, width)
    if side_px is not None and not 1 <= side_px <= short:
        raise ValueError(f"side_px must be in [1, {short}] for {width}x{height} px, got {side_px}")
    if crop == "center":
        side = side_px or short
        return [((height - side) // 2, (width - side) // 2, side)]
    if crop != "tiles":
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    side = side_px or min(short, max(size, short // 2))
    ys = np.linspace(0, height - side, math.ceil(height / side)).round().astype(int)
    xs = np.linspace(0, width - side, math.ceil(width / side)).round().astype(int)
    return [(int(y), int(x), side) for y in ys for x in xs]


def field_side_px(field_um: float, um_per_px: float) -> int:
    """Side in pixels of a square field of ``field_um`` µm at ``um_per_px`` (rounded)."""
    return max(1, round(field_um / um_per_px))


def make_samples(
    frames: np.ndarray, *, size: int = 224, crop: Crop = "center", side_px: int | None = None
) -> np.ndarray:
    """The study's inputs from three grey frames.

    Parameters
    ----------
    frames : (3, H, W) uint8 ndarray, grey frames at ``t``, ``t + k``, ``t + 2k``.
    size : side of the output squares, px.
    crop : ``center`` (one sample) or ``tiles`` (see :func:`crop_boxes`).
    side_px : side of the square crops in pixels (a fixed physical field); default: the short
        side (``center``) or ``max(size, short // 2)`` (``tiles``).

    Returns
    -------
    (n_crops, 3, size, size) uint8 ndarray.

    Example
    -------
    >>> make_samples(np.zeros((3, 480, 640), np.uint8)).shape
    (1, 3, 224, 224)
    """
    if frames.ndim != 3 or frames.shape[0] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (3, H, W) uint8, got {frames.shape} {frames.dtype}")
    boxes = crop_boxes(frames.shape[1], frames.shape[2], size=size, crop=crop, side_px=side_px)
    out = np.empty((len(boxes), 3, size, size), np.uint8)
    for i, (y, x, side) in enumerate(boxes):
        for c in range(3):
            window = frames[c, y : y + side, x : x + side]
            out[i, c] = cv2.resize(window, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _shrink(frame: np.ndarray, side: int = _QUALITY_SIDE) -> np.ndarray:
    scale = side / min(frame.shape)
    if scale >= 1:
        return frame.astype(np.float32)
    shape = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    return cv2.resize(frame, shape, interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_quality(frame: np.ndarray) -> dict[str, float]:
    """Illumination and focus of one grey frame.

    Parameters
    ----------
    frame : (H, W) uint8 ndarray.

    Returns
    -------
    dict: mean_intensity (grey 0-255), saturated_fraction, dark_fraction (0-1), focus
    (normalised Laplacian variance, see the module notes), illumination_score, focus_score
    (0, 1 or 10; the focus score does not include the relative rule, which needs the video).
    """
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W) uint8, got {frame.shape} {frame.dtype}")
    n = frame.size
    mean = float(frame.mean())
    saturated = float(np.count_nonzero(frame >= SATURATED_GREY)) / n
    dark = float(np.count_nonzero(frame <= DARK_GREY)) / n
    small = cv2.GaussianBlur(_shrink(frame), (0, 0), 1.5)
    laplacian = cv2.Laplacian(small, cv2.CV_32F, ksize=3)
    focus = float(laplacian.var()) / max(float(small.mean()), 1.0) ** 2 * 1e3
    return {
        "mean_intensity": mean,
        "saturated_fraction": saturated,
        "dark_fraction": dark,
        "focus": focus,
        "illumination_score": illumination_score(mean, saturated, dark),
        "focus_score": focus_score(focus),
    }


def illumination_score(mean: float, saturated: float, dark: float) -> int:
    """Massey illumination: 0, 1 or 10 from the mean grey and saturated/dark fractions."""
    for score, rule in ((0, ILLUMINATION_OPTIMAL), (1, ILLUMINATION_ACCEPTABLE)):
        low, high = rule["mean"]
        if low <= mean <= high and saturated < rule["fraction"] and dark < rule["fraction"]:
            return score
    return REJECT_SCORE


def focus_score(focus: float, *, video_median: float | None = None) -> int:
    """Massey focus: 0, 1 or 10; with ``video_median``, also reject a frame far below it."""
    if video_median is not None and focus < FOCUS_RELATIVE_REJECT * video_median:
        return REJECT_SCORE
    if focus >= FOCUS_OPTIMAL:
        return 0
    return 1 if focus >= FOCUS_ACCEPTABLE else REJECT_SCORE


def frame_shift_px(a: np.ndarray, b: np.ndarray) -> float:
    """Translation between two grey frames ``(H, W)``, in original px, by phase correlation."""
    scale = min(1.0, _QUALITY_SIDE / min(a.shape))
    small_a, small_b = _shrink(a), _shrink(b)
    window = cv2.createHanningWindow(small_a.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(small_a, small_b, window)
    return float(math.hypot(dx, dy)) / scale


def stability_score(field_per_s: float) -> int:
    """Massey stability: 0, 1 or 10 from the movement in fields of view per second."""
    if not np.isfinite(field_per_s) or field_per_s < STABILITY_OPTIMAL_FIELD_PER_S:
        return 0
    return 1 if field_per_s < STABILITY_ACCEPTABLE_FIELD_PER_S else REJECT_SCORE


def duration_score(
    duration_s: float, *, optimal_s: float = DURATION_OPTIMAL_S, min_s: float = DURATION_MIN_S
) -> int:
    """Massey duration: 0 at ``optimal_s`` or more, 1 at ``min_s`` or more, else 10."""
    if duration_s >= optimal_s:
        return 0
    return 1 if duration_s >= min_s else REJECT_SCORE


def white_level(frame: np.ndarray) -> int:
    """The white of the sensor behind a frame (or a ``(T, H, W)`` stack of frames): 255 for uint8,
    else the smallest 2^b - 1 (b = 8, 10, 12, 14, 16) at or above the maximum, so a 12-bit camera
    in a 16-bit file is not scaled dark. A video's white comes from its opening frames: see
    :func:`peek_white_level`.
    """
    if frame.dtype == np.uint8:
        return 255
    top = int(frame.max()) if frame.size else 0
    for bits in (8, 10, 12, 14, 16):
        if top <= 2**bits - 1:
            return 2**bits - 1
    return int(np.iinfo(frame.dtype).max)


WHITE_LEVEL_MAX_FRAMES = 25  # 1 s of a 25 fps (PAL) camera
WHITE_LEVEL_SECONDS = 1.0

T = TypeVar("T")


def white_level_frames(fps: float) -> int:
    """How many opening frames set a video's white level: its first second, at most 25."""
    return max(1, min(WHITE_LEVEL_MAX_FRAMES, round(WHITE_LEVEL_SECONDS * fps)))


def peek_white_level(
    items: Iterable[T], *, fps: float, frame: Callable[[T], np.ndarray] | None = None
) -> tuple[int, Iterator[T]]:
    """A video's white level from its opening frames, and the items again, from the first.

    One frame can be dim (a 12-bit camera whose first frame peaks below 1023 would be scaled with
    a white of 1023 and clip every brighter frame after it), so the white is the
    :func:`white_level` of the maximum over the first :func:`white_level_frames` frames, kept for
    the whole video. The peeked items are chained back in front of the rest, so the video is
    decoded once; an 8-bit video is decided by its first frame and peeks no further (a live
    8-bit camera gains no latency).

    Parameters
    ----------
    items : frames ``(H, W)`` uint8/uint16, or objects holding one (``frame`` extracts it).
    fps : the video's frame rate (frames per second).
    frame : maps an item to its frame; the item itself by default.

    Returns
    -------
    (white, items) : the white level (255 for an empty or 8-bit video) and an iterator over all
    the items.
    """
    get = frame or (lambda item: item)  # type: ignore[assignment, return-value]
    it = iter(items)
    head: list[T] = []
    white = 255
    for item in it:
        head.append(item)
        image = get(item)
        if image.dtype == np.uint8:
            white = 255
            break
        white = max(white, white_level(image))
        if len(head) >= white_level_frames(fps) or white >= np.iinfo(image.dtype).max:
            break
    return white, itertools.chain(head, it)
