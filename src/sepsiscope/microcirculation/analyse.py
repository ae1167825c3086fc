"""One video's frames in, segments, flow and consensus metrics out (no file I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sepsiscope.microcirculation.chains import (
    chain_path,
    chain_segments,
    count_vessels,
    extended_segments,
)
from sepsiscope.microcirculation.consensus import video_metrics
from sepsiscope.microcirculation.flow import (
    FlowCriteria,
    SegmentFlow,
    kymographs,
    noise_variance,
    path_velocity,
    segment_flow,
    unit_noise_variance,
)
from sepsiscope.microcirculation.quality import (
    QualityCriteria,
    check_quality,
    faint_vessel_warning,
)
from sepsiscope.microcirculation.segment import (
    core_mask,
    flat_field,
    lumen_mask,
    segment_vessels,
    temporal_image,
)
from sepsiscope.microcirculation.skeleton import Segment, resample_path, vessel_segments
from sepsiscope.microcirculation.stabilise import Motion, apply_motion, estimate_motion

# A skeleton's whiskers: a vessel counted needs at least this much centreline, µm (a capillary
# is 5-10 µm wide, so a shorter path is a bump on a vessel's edge, not a vessel).
SPUR_UM = 15.0


@dataclass
class Analysis:
    """Everything measured in one video.

    ``metrics`` holds the consensus metrics (NaN when quality flags stopped the analysis),
    ``segments``/``flows``/``kymographs`` one entry per segment, ``mask`` and ``mean_image`` the
    ``(H, W)`` segmentation and registered temporal mean, ``quality_flags`` why it was rejected,
    ``contrasts`` each segment's median flat-field contrast in the temporal mean (negative);
    ``warnings`` name doubts about an accepted video's figures (``faint_vessels``,
    ``no_small_vessels``), with messages.
    """

    metrics: dict
    motion: dict
    quality: dict
    quality_flags: list[str]
    quality_messages: list[str]
    segments: list[Segment] = field(default_factory=list)
    flows: list[SegmentFlow] = field(default_factory=list)
    kymographs: list[np.ndarray] = field(default_factory=list)
    mask: np.ndarray | None = None
    mean_image: np.ndarray | None = None
    field_mask: np.ndarray | None = None
    contrasts: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    warning_messages: list[str] = field(default_factory=list)
    # the segments (index, reversed) that continue each other straight through junctions
    chains: list[list[tuple[int, bool]]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.quality_flags


def _empty_metrics() -> dict:
    keys = (
        "n_segments", "n_small_segments", "n_vessels", "total_length_mm", "field_area_mm2",
        "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "ppv_percent", "ppv_count_percent",
        "pvd_mm_per_mm2", "mfi",
        "de_backer_per_mm", "de_backer_small_per_mm", "mean_velocity_um_per_s",
        "n_velocity_measured", "velocity_unfollowed_length_percent", "blurred_length_percent",
        "small_none_percent", "small_intermittent_percent", "small_sluggish_percent",
        "small_continuous_percent",
        "small_vessel_contrast", "small_vessel_contrast_to_texture",
    )  # fmt: skip
    return {k: float("nan") for k in keys}


def _flow_paths(centrelines: list[np.ndarray], distance: np.ndarray, um_per_px: float) -> list:
    """Centrelines resampled every px, their ends trimmed out of the vessels they join.

    Near a junction a kymograph would also see the other vessel's cells; each end loses the
    radius of the vessel at that point plus 2 µm (a short segment keeps its middle 5 px).
    """
    h, w = distance.shape
    paths = []
    for centreline in centrelines:
        path = resample_path(centreline, 1.0)
        ends = np.clip(np.rint(path[[0, -1]]).astype(int), 0, [h - 1, w - 1])
        trim = distance[ends[:, 0], ends[:, 1]] + 2.0 / um_per_px
        a, b = int(np.ceil(trim[0])), len(path) - int(np.ceil(trim[1]))
        if b - a < 5:
            middle = len(path) // 2
            a, b = max(0, middle - 2), min(len(path), middle + 3)
        paths.append(path[a:b])
    return paths


def _extended_flow_paths(
    segments: list[Segment], distance: np.ndarray, um_per_px: float, criteria: FlowCriteria
) -> tuple[list[np.ndarray], dict[int, int], list[list[tuple[int, bool]]]]:
    """Each chained segment's path extended through junctions (:mod:`.chains`).

    Returns the distinct extended paths (trimmed like :func:`_flow_paths`), per segment that has
    one the index of its path, and the chains themselves.
    """
    centrelines = [s.path_px for s in segments]
    chains = chain_segments(
        centrelines, direction_px=8.0 / um_per_px, max_turn_deg=criteria.max_turn_deg,
        classes=[s.small for s in segments],
    )  # fmt: skip
    extended = extended_segments(
        chains,
        [s.length_um / um_per_px for s in segments],
        extend_px=criteria.extend_um / um_per_px,
    )
    distinct: dict[tuple, int] = {}
    owner = {i: distinct.setdefault(tuple(parts), len(distinct)) for i, parts in extended.items()}
    paths = _flow_paths([chain_path(centrelines, list(k)) for k in distinct], distance, um_per_px)
    return paths, owner, chains


def _path_contrasts(paths: list[np.ndarray], contrast: np.ndarray) -> list[float]:
    """Median flat-field contrast along each path (negative: darker than the tissue beside)."""
    return [
        float(np.median(ndimage.map_coordinates(contrast, path.T, order=1, mode="nearest")))
        for path in paths
    ]


def _column_depths(kymos: list[np.ndarray], contrasts: list[float]) -> list[float]:
    """How much darker each path's vessel is than the tissue beside it, in intensity units.

    From the kymograph's median level ``L`` and the flat-field contrast ``c`` of the temporal
    mean along the path (``c = L / background - 1``): ``background - L = L (-c) / (1 + c)``.
    """
    depths = []
    for kymo, c in zip(kymos, contrasts, strict=True):
        level = float(np.median(kymo))
        depths.append(level * -c / (1 + c) if -1 < c < 0 else float("nan"))
    return depths


def segmentation_image(registered: np.ndarray, motion: Motion) -> np.ndarray:
    """The temporal image vessels are segmented on (``temporal_image``, "dark"), from the
    registered frames (``apply_motion``): (H, W) float32, grey levels."""
    # vessels are found where red cells pass at some time, not only where they are on average;
    # frames that registration could not place are left out of that image (not of the flow)
    placed = motion.placed()
    still = registered[placed] if placed.sum() >= max(3, len(registered) // 2) else registered
    return temporal_image(still, statistic="dark")


def vessel_geometry(
    registered: np.ndarray,
    motion: Motion,
    valid: np.ndarray,
    *,
    um_per_px: float,
    diameters_um: tuple[float, float] = (4.0, 50.0),
    min_contrast: float = 0.03,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Segment]]:
    """The vessels of a registered stack (``apply_motion``'s frames and field): the vessel mask,
    the flat-field contrast it was made from, its dark core and the centreline segments."""
    mask, contrast = segment_vessels(
        segmentation_image(registered, motion), um_per_px=um_per_px, valid=valid,
        diameters_um=diameters_um, min_contrast=min_contrast,
    )  # fmt: skip
    lumen = lumen_mask(mask, contrast, min_contrast=min_contrast)
    # centrelines follow the vessels' dark cores; the wider mask still bounds them (flow, figures)
    core = core_mask(mask, contrast, um_per_px=um_per_px)
    segments = vessel_segments(
        core, um_per_px=um_per_px, lumen=lumen, contrast=contrast, field=valid
    )
    return mask, contrast, core, segments


def analyse_video(
    frames: np.ndarray,
    *,
    fps: float,
    um_per_px: float,
    full_scale: float = 255.0,
    diameters_um: tuple[float, float] = (4.0, 50.0),
    min_contrast: float = 0.03,
    flow: FlowCriteria = FlowCriteria(),
    quality: QualityCriteria = QualityCriteria(),
) -> Analysis:
    """Stabilise, segment, skeletonise, follow the flow and compute the consensus metrics.

    Parameters
    ----------
    frames : (T, H, W) uint8 or uint16 ndarray
        Grey frames of one video.
    fps : float
        Frames per second.
    um_per_px : float
        Pixel size, µm.
    full_scale : float
        The sensor's white (255 for 8-bit, 65535 for 16-bit).
    diameters_um : (min, max)
        Vessel diameters searched, µm.
    min_contrast : float
        Least relative darkness of a vessel against its background.
    flow, quality : criteria of the flow classification and of acceptable quality.

    Returns
    -------
    Analysis

    Examples
    --------
    >>> result = analyse_video(frames, fps=25, um_per_px=1.2)  # doctest: +SKIP
    >>> result.metrics["tvd_mm_per_mm2"]  # doctest: +SKIP
    """
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got shape {frames.shape}")
    if fps <= 0 or um_per_px <= 0:
        raise ValueError("fps and um_per_px must be positive")
    flags, messages, figures = check_quality(
        frames, fps=fps, um_per_px=um_per_px, full_scale=full_scale, criteria=quality
    )
    if {"too_short", "too_dark", "saturated"} & set(flags):
        return Analysis(_empty_metrics(), {}, figures, flags, messages)
    motion = estimate_motion(frames, um_per_px=um_per_px, fps=fps)
    registered, valid = apply_motion(frames, motion)
    mean_image = temporal_image(registered)
    flags, messages, figures = check_quality(
        registered, fps=fps, um_per_px=um_per_px, full_scale=full_scale,
        mean_image=np.where(valid, mean_image, mean_image[valid].mean()), criteria=quality,
    )  # fmt: skip
    motion_summary = motion.summary(um_per_px)
    if flags:
        return Analysis(_empty_metrics(), motion_summary, figures, flags, messages)
    mask, contrast, _, segments = vessel_geometry(
        registered, motion, valid, um_per_px=um_per_px, diameters_um=diameters_um,
        min_contrast=min_contrast,
    )  # fmt: skip
    distance = ndimage.distance_transform_edt(mask)
    paths = _flow_paths([s.path_px for s in segments], distance, um_per_px)
    long_paths, long_path_of, chains = _extended_flow_paths(segments, distance, um_per_px, flow)
    every = kymographs(registered, paths + long_paths)
    kymos, long_kymos = every[: len(paths)], every[len(paths) :]
    background = ~ndimage.binary_dilation(mask, iterations=max(2, round(5 / um_per_px))) & valid
    sigma2 = noise_variance(registered, background)
    unit = unit_noise_variance(paths + long_paths, mask.shape, fps=fps, window_s=flow.window_s)
    # cells too fast for a short segment are followed along its extension through junctions
    long_velocity = [
        path_velocity(k, fps=fps, um_per_px=um_per_px, noise_variance=sigma2 * u, criteria=flow)
        for k, u in zip(long_kymos, unit[len(paths) :], strict=True)
    ]
    mean_contrast = flat_field(mean_image, um_per_px=um_per_px)
    contrasts = _path_contrasts(paths, mean_contrast)
    depths = _column_depths(kymos, contrasts)
    flows = [
        segment_flow(
            k, fps=fps, um_per_px=um_per_px, noise_variance=sigma2 * u, criteria=flow,
            path_velocity_um_per_s=(
                long_velocity[long_path_of[i]] if i in long_path_of else float("nan")
            ),
            column_depth=depth,
        )
        for i, (k, u, depth) in enumerate(zip(kymos, unit[: len(paths)], depths, strict=True))
    ]  # fmt: skip
    metrics = video_metrics(segments, flows, valid, um_per_px=um_per_px)
    # float32 as the geometry file stores them: a review without edits counts exactly the same
    metrics["n_vessels"] = count_vessels(
        [s.path_px.astype(np.float32) for s in segments], [s.length_um for s in segments],
        um_per_px=um_per_px, min_um=SPUR_UM,
    )  # fmt: skip
    small = [c for c, s in zip(contrasts, segments, strict=True) if s.small]
    metrics["small_vessel_contrast"] = float(np.nanmedian(small)) if small else float("nan")
    ratio, faint = faint_vessel_warning(
        metrics["small_vessel_contrast"], mean_contrast[background], quality
    )
    metrics["small_vessel_contrast_to_texture"] = ratio
    warnings = {"faint_vessels": faint} if faint else {}
    if not small:
        warnings["no_small_vessels"] = (
            "no small vessels (< 20 µm) found: small-vessel TVD is 0 and PPV, PVD and MFI are "
            "undefined; check focus, contrast and µm/px"
        )
    return Analysis(
        metrics, motion_summary, figures, [], [], segments, flows, kymos, mask, mean_image, valid,
        contrasts=contrasts, warnings=list(warnings), warning_messages=list(warnings.values()),
        chains=[list(chain) for chain in chains],
    )  # fmt: skip
