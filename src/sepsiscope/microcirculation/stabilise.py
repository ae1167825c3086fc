"""Frame registration: remove the drift and jitter of a handheld microscope.

A translation model is enough for sublingual videos filmed with the probe resting on the tissue:
the field slides, it barely rotates or zooms within seconds. Each frame is registered to a
reference (the mean of the first frames) by phase correlation on a downsampled, band-passed copy
(illumination and pixel noise removed), so the vessel pattern weighs most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Motion:
    """Estimated motion of every frame relative to the reference.

    Attributes
    ----------
    shifts_px : (T, 2) float ndarray
        ``(dy, dx)`` displacement of each frame's content, px; applying ``-shifts_px`` registers it.
    response : (T,) float ndarray
        Phase-correlation peak height (0..1); low values mean unreliable registration.
    """

    shifts_px: np.ndarray
    response: np.ndarray

    def placed(self, *, relative: float = 0.5) -> np.ndarray:
        """``(T,)`` bool: frames that matched the reference with a peak at least ``relative``
        times the video's median peak. The others (motion blur, a burst of tremor) may sit at a
        wrong place; averaged in, they would draw every vessel twice."""
        return _well_matched(self.response, relative)

    def summary(self, um_per_px: float) -> dict[str, float]:
        """Motion figures in px and µm: largest excursion, mean frame-to-frame jitter."""
        if len(self.shifts_px) == 0:
            return {
                "max_shift_px": 0.0,
                "max_shift_um": 0.0,
                "jitter_um": 0.0,
                "unplaced_fraction": 0.0,
            }
        excursion = np.hypot(*(self.shifts_px - self.shifts_px[0]).T)
        steps = np.hypot(*np.diff(self.shifts_px, axis=0).T) if len(self.shifts_px) > 1 else [0.0]
        return {
            "max_shift_px": float(excursion.max()),
            "max_shift_um": float(excursion.max() * um_per_px),
            "jitter_um": float(np.mean(steps) * um_per_px),
            "min_registration_response": float(self.response.min()),
            "unplaced_fraction": float(1.0 - self.placed().mean()),
        }


def _well_matched(response: np.ndarray, relative: float = 0.5) -> np.ndarray:
    """Frames whose peak is at least ``relative`` times the video's median peak."""
    if len(response) == 0:
        return np.zeros(0, bool)
    return response >= relative * float(np.median(response))


def _prepare(
    frame: np.ndarray,
    scale: float,
    crop,
    highpass_sigma: float,
    window: np.ndarray,
    lowpass_sigma: float = 0.0,
):
    small = cv2.resize(
        frame.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
    )[crop]
    if lowpass_sigma > 0:
        # phase correlation whitens the spectrum, so pixel noise and compression blocks weigh as
        # much as the vessel pattern unless the finest scales are removed first
        small = cv2.GaussianBlur(small, (0, 0), lowpass_sigma)
    # the illumination estimate is smooth, so a blur of an 8x smaller copy is as good and cheap
    tiny = cv2.resize(small, None, fx=1 / 8, fy=1 / 8, interpolation=cv2.INTER_AREA)
    background = cv2.resize(
        cv2.GaussianBlur(tiny, (0, 0), max(0.5, highpass_sigma / 8)),
        small.shape[::-1],
        interpolation=cv2.INTER_LINEAR,
    )
    return (small - background) * window


def _shift(image: np.ndarray, dx: float, dy: float, size) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR)


def _central_crop(height: int, width: int, size: int) -> tuple[slice, slice]:
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return slice(top, top + min(size, height)), slice(left, left + min(size, width))


def estimate_motion(
    frames: np.ndarray,
    *,
    um_per_px: float,
    working_um_per_px: float = 1.0,
    highpass_um: float = 40.0,
    lowpass_um: float = 2.5,
    window_um: float = 600.0,
    fps: float | None = None,
    reference_s: float = 1.0,
    min_response: float = 0.05,
    confident_response: float = 0.3,
) -> Motion:
    """Translation of every frame relative to the video's registered mean.

    Two passes. First every frame is registered to the plain mean of all frames; when drift has
    smeared that mean (low median peak), to the mean of the previous second of registered frames
    instead. Then every frame is registered to the mean of all registered frames. Means average
    noise and moving red cells away: registering to one frame, or to a reference built from few
    frames of a sparse field, follows the cells instead of the tissue. Frames that still match
    weakly, or whose place jumps away from their neighbours' (the probe far from where it spends
    most of the video: while the hand settles, or in a slow slide), are then registered again
    to the mean of the other frames.

    Parameters
    ----------
    frames : (T, H, W) ndarray
        Grey frames (any real dtype).
    um_per_px : float
        Pixel size of ``frames``, µm.
    working_um_per_px : float
        Frames are downsampled to about this pixel size before registration (never upsampled).
    highpass_um : float
        Structures larger than about this size (illumination) are removed before registration.
    lowpass_um : float
        When some frame matches with a peak under ``confident_response``, registration is
        redone after a Gaussian blur of this sd (µm) against pixel noise and compression
        artefacts, and kept if frames match better (on noisy simulated MJPEG videos, frames
        otherwise jumped by microns).
    window_um : float
        Only a central square of about this side is registered (translation is the same
        everywhere), which bounds the cost on large frames.
    fps : float, optional
        Frame rate; with ``reference_s`` sets how many recent frames form the first reference.
    reference_s : float
        Length of the running reference of the first pass, s.
    min_response : float
        Phase-correlation peaks lower than this are unreliable; the previous shift is kept.
    confident_response : float
        When the median peak against the plain mean is lower, drift has smeared that mean and
        the running reference is used. Also: a frame matching the mean more weakly is in doubt,
        and a step between consecutive frames is trusted only with a peak this high.

    Returns
    -------
    Motion
        Shifts in px of the full-resolution frames, relative to the first frame's position.
    """
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got shape {frames.shape}")
    scale = min(1.0, um_per_px / working_um_per_px)
    sigma = max(1.0, highpass_um / um_per_px * scale)
    h, w = frames.shape[1:]
    side = max(32, int(window_um / um_per_px * scale))
    crop = _central_crop(max(1, round(h * scale)), max(1, round(w * scale)), side)
    size = (crop[1].stop - crop[1].start, crop[0].stop - crop[0].start)
    window = cv2.createHanningWindow(size, cv2.CV_32F)

    def prepared_frames(lowpass: float) -> list[np.ndarray]:
        return _HalfFrames(_prepare(f, scale, crop, sigma, window, lowpass) for f in frames)

    shifts, response = _register(prepared_frames(0.0), fps, reference_s, min_response,
                                 confident_response)  # fmt: skip
    if response.min() < confident_response and lowpass_um > 0:
        # some frames did not match confidently: pixel noise and compression blocks, which the
        # whitening of phase correlation weighs as much as vessels, are the usual reason. The
        # blurred copy is kept when frames match it better (its median peak is higher); on a
        # clean image blurring only removes detail and lowers the peaks
        blurred = _register(prepared_frames(lowpass_um / um_per_px * scale), fps, reference_s,
                            min_response, confident_response)  # fmt: skip
        if np.median(blurred[1]) > np.median(response):
            shifts, response = blurred
    shifts = (shifts - shifts[0]) / scale
    return Motion(shifts, response)


class _HalfFrames(Sequence):
    """Prepared frames stored as float16 (half the memory of the largest array of the
    registration), handed out as float32 for OpenCV; band-passed grey levels need no more than
    float16's 3 significant digits."""

    def __init__(self, images: Iterable[np.ndarray]):
        self._images = [image.astype(np.float16) for image in images]

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [image.astype(np.float32) for image in self._images[index]]
        return self._images[index].astype(np.float32)


def _phase_correlate(reference: np.ndarray, image: np.ndarray) -> tuple[float, float, float]:
    """``(dx, dy, peak)`` of ``cv2.phaseCorrelate``; a shift beyond half the image (the
    sub-pixel centroid divides by the sum of a window that can be near zero) is no match."""
    (dx, dy), peak = cv2.phaseCorrelate(reference, image)
    h, w = image.shape
    if not (np.isfinite(dx) and np.isfinite(dy)) or abs(dx) > w / 2 or abs(dy) > h / 2:
        return 0.0, 0.0, 0.0
    return dx, dy, peak


def _register(prepared, fps, reference_s, min_response, confident_response):
    """Shifts (px of the prepared frames) and peak heights of the two passes."""
    size = prepared[0].shape[::-1]
    shifts = np.zeros((len(prepared), 2))
    response = np.zeros(len(prepared))
    # a blank frame (light flicker, a dropped frame filled with grey) has no texture after the
    # high-pass; phase correlation still answers with a spurious peak, which must not move it
    energy = np.array([float(np.sqrt(np.mean(np.square(image)))) for image in prepared])
    blank = energy < 0.01 * np.median(energy)

    def correlate(reference: np.ndarray, i: int) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.0) if blank[i] else _phase_correlate(reference, prepared[i])

    # pass 1a: against the plain mean of all frames, which blurs moving cells into uniform
    # columns, so the match follows the tissue and not the cells
    plain = np.zeros_like(prepared[0])
    for image in prepared:  # np.mean of the list would copy all frames into one array first
        plain += image / len(prepared)
    for i in range(len(prepared)):
        dx, dy, response[i] = correlate(plain, i)
        shifts[i] = (dy, dx) if response[i] >= min_response or i == 0 else shifts[i - 1]
    if np.median(response) < confident_response:
        # pass 1b: drift smeared that mean; register each frame to the mean of the previous
        # ``reference_s`` of registered frames instead (starting from the first second's mean)
        memory = max(3, int(reference_s * fps)) if fps else 25
        start = np.mean(prepared[:memory], axis=0).astype(np.float32)
        recent: deque[np.ndarray] = deque()
        running = np.zeros_like(start, dtype=np.float64)  # sum of ``recent``, kept, not redone
        for i, image in enumerate(prepared):
            reference = (running / len(recent)).astype(np.float32) if len(recent) > 2 else start
            dx, dy, r = correlate(reference, i)
            if r < min_response and i > 0:  # no reliable peak: assume the probe did not jump
                dy, dx = shifts[i - 1]
            shifts[i], response[i] = (dy, dx), r
            recent.append(_shift(image, -dx, -dy, size))
            running += recent[-1]
            if len(recent) > memory:
                running -= recent.popleft()
    # pass 2: against the mean of all registered frames, sharp now that drift is undone
    _against_mean(prepared, shifts, response, size, correlate, min_response)
    # consecutive frames match well even where a frame is far from the mean: their steps
    # find the frames pass 2 misplaced
    steps = np.zeros((len(prepared), 3))  # (dy, dx, peak) of frame i from frame i - 1
    for i in range(1, len(prepared)):
        dx, dy, steps[i, 2] = correlate(prepared[i - 1], i)  # a blank frame i: peak 0
        steps[i, :2] = dy, dx
    doubtful = _misplaced(shifts, response, steps, confident_response)
    if doubtful.any() and not doubtful.all():
        # pass 3: frames the probe moved away from (while the hand settles, or in a slow
        # slide) were drawn misplaced into pass 2's mean, and that ghost of themselves then
        # outbid their true match; against the mean of the others they find it
        _against_mean(prepared, shifts, response, size, correlate, min_response, ~doubtful)
    return shifts, response


def _against_mean(
    prepared, shifts, response, size, correlate, min_response, use: np.ndarray | None = None
) -> None:
    """Register every frame to the mean of the frames ``use`` (all by default) placed by
    ``shifts``; in place."""
    use = np.ones(len(prepared), bool) if use is None else use
    reference = np.zeros_like(prepared[0])
    chosen = np.flatnonzero(use)
    for i in chosen:
        dy, dx = shifts[i]
        reference += _shift(prepared[i], -dx, -dy, size) / len(chosen)
    for i in range(len(prepared)):
        dx, dy, r = correlate(reference, i)
        if r >= min_response:
            shifts[i], response[i] = (dy, dx), r


def _misplaced(
    shifts: np.ndarray,
    response: np.ndarray,
    steps: np.ndarray,
    confident_response: float,
    jump_px: float = 2.0,
) -> np.ndarray:
    """Frames whose place is doubtful: a weak match to the mean, or a run of frames placed away
    from the longest run. A confident step that disagrees by more than ``jump_px`` (working
    px, about µm) with the two frames' places starts a run; adding up those disagreements
    gives each run's offset from the first, so a run that jumps away and back is one run."""
    weak = ~_well_matched(response) | (response < confident_response)
    disagree = np.diff(shifts, axis=0) - steps[1:, :2]
    jump = (steps[1:, 2] >= confident_response) & (np.hypot(*disagree.T) > jump_px)
    runs = np.concatenate([[0], np.cumsum(jump)])
    offset = np.concatenate([[[0.0, 0.0]], np.cumsum(disagree * jump[:, None], axis=0)])
    main = offset[runs == np.bincount(runs).argmax()][0]
    return weak | (np.hypot(*(offset - main).T) > jump_px)


def apply_motion(
    frames: np.ndarray, motion: Motion, *, min_shift_px: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Register frames by undoing ``motion``; also give the field every frame covers.

    Parameters
    ----------
    frames : (T, H, W) ndarray
    motion : Motion
        From :func:`estimate_motion`.
    min_shift_px : float
        A video whose frames all stay within this distance of the first is left as it is:
        registration error of a fraction of a pixel would add jitter, not remove it.

    Returns
    -------
    registered : (T, H, W) ndarray, same dtype as ``frames``
        Borders uncovered by a frame repeat its edge; they lie outside ``valid``.
    valid : (H, W) bool ndarray
        Pixels covered by every frame: the analysed field.
    """
    h, w = frames.shape[1:]
    shifts = motion.shifts_px
    valid = np.ones((h, w), bool)
    if len(shifts) == 0 or np.hypot(*(shifts - shifts[0]).T).max() < min_shift_px:
        return frames, valid
    registered = np.empty_like(frames)
    for i, (frame, (dy, dx)) in enumerate(zip(frames, shifts, strict=True)):
        matrix = np.float32([[1, 0, -dx], [0, 1, -dy]])
        registered[i] = cv2.warpAffine(
            frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    top = int(np.ceil(max(0.0, -shifts[:, 0].min())))
    bottom = int(np.ceil(max(0.0, shifts[:, 0].max())))
    left = int(np.ceil(max(0.0, -shifts[:, 1].min())))
    right = int(np.ceil(max(0.0, shifts[:, 1].max())))
    valid[:top] = False
    valid[h - bottom :] = False
    valid[:, :left] = False
    valid[:, w - right :] = False
    return registered, valid
