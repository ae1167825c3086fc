"""Frame sources for prediction: a file, a file paced like a camera, or a live camera/stream.

Every source yields :class:`FrameEvent` (frame index, time in the video, the grey frame, and the
moment it arrived), so files and cameras go through the same streaming path.

- :func:`file_frames` decodes a file as fast as it can (``arrival`` = when decoded).
- :class:`LiveSource` paces a file at its frame rate: frame ``i`` arrives at ``start + i / fps``,
  as a camera would deliver it. ``arrival`` is that scheduled moment, so a consumer that falls
  behind sees its lag in the latency (nothing is dropped or hidden). It simulates a camera in
  tests and demos.
- :func:`camera_frames` opens a V4L2 camera (``"0"`` or ``"/dev/video0"``) or a stream URL
  (``rtsp://``, ``http://``, ``udp://``, ...) with PyAV; where PyAV's FFmpeg lacks V4L2 (the
  PyPI wheels), a camera is opened with OpenCV's ``VideoCapture`` instead.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from sepsiscope.data.video import VideoError, iter_frames, plausible_fps, resolve_fps
from sepsiscope.errors import InputError

log = logging.getLogger(__name__)

_HIGH_DEPTH_MARKERS = ("16", "12", "10")


@dataclass(frozen=True)
class FrameEvent:
    """One decoded frame: index from the start, time in the video (s), ``(H, W)`` grey frame
    (uint8 or uint16) and its arrival (``time.perf_counter()`` seconds)."""

    index: int
    time_s: float
    frame: np.ndarray
    arrival: float


def is_live_spec(spec: str) -> bool:
    """True for a camera index (``"0"``), a V4L2 device or a stream URL."""
    return bool(re.fullmatch(r"\d+", spec)) or spec.startswith("/dev/video") or "://" in spec


def file_frames(path: str | os.PathLike, fps: float) -> Iterator[FrameEvent]:
    """Every frame of a video file (or image folder or TIFF stack) as fast as it decodes."""
    for index, frame in iter_frames(path):
        yield FrameEvent(index, index / fps, frame, time.perf_counter())


class LiveSource:
    """A video file delivered in real time, as a camera at ``fps`` would (a simulated camera).

    Parameters
    ----------
    path : the video to replay.
    fps : frames per second; the file's rate by default.
    max_seconds : stop after this much video time.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float, *, max_seconds: float | None = None
    ) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.max_seconds = max_seconds

    def __iter__(self) -> Iterator[FrameEvent]:
        start = time.perf_counter()
        for index, frame in iter_frames(self.path):
            t = index / self.fps
            if self.max_seconds is not None and t >= self.max_seconds:
                return
            due = start + t
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            yield FrameEvent(index, t, frame, due)


def _live_rate(spec: str, given: float | None, reported: object) -> float:
    """A live source's frame rate: ``given`` (``--fps``), else the rate it reports where plausible
    (:func:`~sepsiscope.data.video.resolve_fps`), else 25 (MicroScan/CytoCam PAL) with a warning.

    A file without a rate is refused, but a camera cannot be re-filmed: it streams on, and the
    warning says how to correct the channel offset and sampling, which are set in seconds.
    """
    try:
        return resolve_fps(given, reported, source=spec, hint="pass --fps")
    except VideoError:
        log.warning("%s reports no frame rate: assuming 25 fps; pass --fps if it differs", spec)
        return 25.0


def camera_frames(
    spec: str, *, fps: float | None = None, max_seconds: float | None = None
) -> tuple[Iterator[FrameEvent], float]:
    """Open a camera index, V4L2 device or stream URL; returns (frames, fps).

    Frame times come from the stream's timestamps when it has them, else from the clock.
    """
    device = f"/dev/video{spec}" if re.fullmatch(r"\d+", spec) else spec
    if device.startswith("/dev/video") and "v4l2" not in av.formats_available:
        return _opencv_camera(device, fps=fps, max_seconds=max_seconds)
    options = {"framerate": str(int(fps))} if fps and device.startswith("/dev/video") else {}
    try:
        container = av.open(
            device, format="v4l2" if device.startswith("/dev/video") else None, options=options
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open live source {spec!r} ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"live source {spec!r} has no video stream")
    stream = container.streams.video[0]
    rate = _live_rate(spec, fps, plausible_fps(stream.average_rate) or stream.guessed_rate)
    pix = stream.codec_context.format.name if stream.codec_context.format else ""
    fmt = "gray16le" if any(m in pix for m in _HIGH_DEPTH_MARKERS) else "gray"

    def frames() -> Iterator[FrameEvent]:
        start = time.perf_counter()
        first_pts: float | None = None
        with container:
            try:
                for index, frame in enumerate(container.decode(stream)):
                    now = time.perf_counter()
                    if frame.time is not None:
                        first_pts = frame.time if first_pts is None else first_pts
                        t = float(frame.time - first_pts)
                    else:
                        t = now - start
                    if max_seconds is not None and t >= max_seconds:
                        return
                    yield FrameEvent(index, t, frame.to_ndarray(format=fmt), now)
            except av.error.FFmpegError as exc:
                raise VideoError(f"live source {spec!r}: decoding failed ({exc})") from exc

    return frames(), rate


def _opencv_camera(
    device: str, *, fps: float | None, max_seconds: float | None
) -> tuple[Iterator[FrameEvent], float]:
    import cv2

    index = int(device.removeprefix("/dev/video"))
    capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
    if not capture.isOpened():
        raise InputError(f"cannot open camera {device}")
    if fps:
        capture.set(cv2.CAP_PROP_FPS, fps)
    rate = _live_rate(device, fps, capture.get(cv2.CAP_PROP_FPS))

    def frames() -> Iterator[FrameEvent]:
        start = time.perf_counter()
        index_ = 0
        try:
            while True:
                ok, image = capture.read()
                now = time.perf_counter()
                if not ok:
                    return
                t = now - start
                if max_seconds is not None and t >= max_seconds:
                    return
                grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
                yield FrameEvent(index_, t, grey, now)
                index_ += 1
        finally:
            capture.release()

    return frames(), rate
