"""Camera profiles of the simulated handheld vital microscopes.

The two profiles share one field of view (0.768 x 0.576 mm), so vessel densities of both cameras
sample the same amount of tissue; they differ in pixels, µm/px, frame rate, exposure and container.
The CytoCam-like profile is rendered at 960x720 px (0.8 µm/px) rather than the device's full
resolution to keep simulation fast; µm/px and fps always travel in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sepsiscope.errors import InputError


@dataclass(frozen=True)
class CameraProfile:
    """Geometry and timing of one simulated camera.

    Attributes
    ----------
    name : str
        ``"microscan"`` (SDF) or ``"cytocam"`` (IDF).
    width, height : int
        Frame size, px.
    um_per_px : float
        Pixel size in the tissue, µm/px.
    fps : float
        Frames per second.
    exposure_s : float
        Exposure (light pulse) per frame, s; sets the motion blur of moving red cells.
    suffix : str
        Video container: ``".avi"`` (MJPEG) or ``".mp4"`` (H.264).
    quality : int
        Encoder quality 1-100 (:func:`sepsiscope.data.video.write_video`); H.264 at 75 (CRF ~22)
        smooths part of the sensor noise away, as clinical recordings do.
    """

    name: str
    width: int
    height: int
    um_per_px: float
    fps: float
    exposure_s: float
    suffix: str
    quality: int

    @property
    def field_mm(self) -> tuple[float, float]:
        """Field of view (width, height), mm."""
        return self.width * self.um_per_px / 1000.0, self.height * self.um_per_px / 1000.0


# MicroScan (SDF): continuous green LED light, so a frame integrates motion over ~1/fps.
# CytoCam (IDF): stroboscopic 2 ms pulses, so moving cells blur far less.
CAMERAS: dict[str, CameraProfile] = {
    "microscan": CameraProfile("microscan", 640, 480, 1.2, 25.0, 0.020, ".avi", 90),
    "cytocam": CameraProfile("cytocam", 960, 720, 0.8, 25.0, 0.004, ".mp4", 75),
}


def camera_profile(
    name: str, *, width: int | None = None, height: int | None = None
) -> CameraProfile:
    """The profile named ``name``, optionally at another frame size (µm/px stays the camera's).

    >>> camera_profile("microscan", width=160, height=120).um_per_px
    1.2
    """
    if name not in CAMERAS:
        raise InputError(f"unknown camera {name!r}: choose one of {', '.join(CAMERAS)}")
    profile = CAMERAS[name]
    return replace(profile, width=width or profile.width, height=height or profile.height)
