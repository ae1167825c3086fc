"""Quality checks that stop a video from giving nonsense metrics.

After the Massey et al. 2013 quality score (illumination, duration, focus, ...), reduced to the
failures that make automatic measurement meaningless: too short to judge flow, too dark, saturated,
or out of focus. Thresholds are relative to the sensor's range and in seconds and µm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sepsiscope.microcirculation.segment import robust_sd


@dataclass(frozen=True)
class QualityCriteria:
    """Limits of an acceptable video."""

    min_seconds: float = 1.0
    dark_below: float = 0.08  # median intensity, fraction of full scale
    saturated_above: float = 0.10  # fraction of pixels at >= 98 % of full scale
    min_focus: float = 0.004  # capillary-scale detail of the temporal mean, relative to its mean
    focus_scale_um: tuple[float, float] = (2.0, 8.0)
    # warning only: capillaries this faint beside the tissue's own texture are partly missed
    min_vessel_to_texture: float = 2.5


def faint_vessel_warning(
    vessel_contrast: float, background_contrast: np.ndarray, criteria: QualityCriteria
) -> tuple[float, str | None]:
    """How far the small vessels stand out of the tissue texture, and a warning if barely.

    Parameters
    ----------
    vessel_contrast : float
        Median flat-field contrast of the small vessels found (negative).
    background_contrast : 1-d ndarray
        Flat-field contrast of tissue pixels away from every vessel.

    Returns
    -------
    ratio : float
        ``-vessel_contrast`` over the robust SD of the tissue's contrast (NaN if undefined).
    message : str or None
        Why TVD may be too low, when the ratio is under ``criteria.min_vessel_to_texture``.

    Notes
    -----
    Segmentation thresholds each field against its own texture, so capillaries that stand out of
    it by little are found only in part. On an independent renderer's six low-contrast videos
    (ratio 1.9-2.4) TVD was 7-70 % low; its other videos had 3.1 or more, those of both
    validation cohorts 2.8 or more (docs/measurement.md).
    """
    values = np.asarray(background_contrast, float)
    if values.size < 100 or not np.isfinite(vessel_contrast):
        return float("nan"), None
    spread = robust_sd(values)
    ratio = -vessel_contrast / spread if spread > 0 else float("nan")
    if ratio < criteria.min_vessel_to_texture:
        return ratio, (
            f"small vessels only {ratio:.1f}x as dark as the tissue texture varies "
            f"(< {criteria.min_vessel_to_texture:g}): faint capillaries are probably missed, "
            "so TVD and PVD may be too low"
        )
    return ratio, None


def focus_measure(mean_image: np.ndarray, *, um_per_px: float, scale_um=(2.0, 8.0)) -> float:
    """Capillary-scale detail: std of a difference of Gaussians over the mean intensity.

    The temporal mean averages the sensor noise away, so what is left at 2-8 µm is vessel edges:
    a sharp field scores about 0.01-0.05, a defocused one near 0.
    """
    image = mean_image.astype(np.float32)
    fine = cv2.GaussianBlur(image, (0, 0), max(0.5, scale_um[0] / um_per_px))
    coarse = cv2.GaussianBlur(image, (0, 0), max(1.0, scale_um[1] / um_per_px))
    mean = float(image.mean())
    return float(np.std(fine - coarse) / mean) if mean > 0 else 0.0


def check_quality(
    frames: np.ndarray,
    *,
    fps: float,
    um_per_px: float,
    full_scale: float = 255.0,
    mean_image: np.ndarray | None = None,
    criteria: QualityCriteria = QualityCriteria(),
) -> tuple[list[str], list[str], dict[str, float]]:
    """Flags, messages and figures of a video's quality.

    Parameters
    ----------
    frames : (T, H, W) ndarray
    fps : float
    um_per_px : float
    full_scale : float
        The sensor's white (255 for 8-bit).
    mean_image : (H, W) ndarray, optional
        Temporal mean, if already computed (registered stack).
    criteria : QualityCriteria

    Returns
    -------
    flags : list of str
        Any of ``too_short``, ``too_dark``, ``saturated``, ``blurred``; empty when acceptable.
    messages : list of str
        One sentence per flag.
    figures : dict
        ``duration_s``, ``median_intensity``, ``saturated_fraction``, ``focus``.
    """
    flags, messages = [], []
    duration = len(frames) / fps
    sample = frames[:: max(1, len(frames) // 10)]
    median = float(np.median(sample)) / full_scale
    saturated = float(np.mean(sample >= 0.98 * full_scale))
    if mean_image is None:
        mean_image = sample.mean(axis=0)
    focus = focus_measure(mean_image, um_per_px=um_per_px, scale_um=criteria.focus_scale_um)
    if duration < criteria.min_seconds:
        flags.append("too_short")
        messages.append(
            f"video lasts {duration:.2f} s; flow needs at least {criteria.min_seconds:g} s"
        )
    if median < criteria.dark_below:
        flags.append("too_dark")
        messages.append(
            f"median intensity {100 * median:.1f} % of full scale "
            f"(< {100 * criteria.dark_below:g} %): too dark to see vessels"
        )
    if saturated > criteria.saturated_above:
        flags.append("saturated")
        messages.append(
            f"{100 * saturated:.0f} % of pixels saturated "
            f"(> {100 * criteria.saturated_above:g} %): overexposed"
        )
    if "too_dark" not in flags and focus < criteria.min_focus:
        flags.append("blurred")
        messages.append(
            f"focus measure {focus:.4f} < {criteria.min_focus:g}: out of focus, no capillary detail"
        )
    figures = {
        "duration_s": duration,
        "median_intensity": median,
        "saturated_fraction": saturated,
        "focus": focus,
    }
    return flags, messages, figures
