"""Vessel segmentation on one temporal image of a registered stack.

Red cells absorb green light, so a perfused vessel is dark on average over time even when single
frames show plasma gaps. Segmentation therefore runs once, on the temporal mean, not per frame:
flat-field correction, multi-scale dark-ridge vesselness (Sato's tubeness) with scales chosen from
the vessel diameters in µm, for small and large vessels apart, hysteresis thresholding relative to
the field's background response, a darkness test, joining of pieces across short dark gaps
(:func:`join_gaps`) and removal of small objects.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import filters, morphology

from sepsiscope.microcirculation.skeleton import SMALL_VESSEL_UM


def robust_sd(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (1.4826 x MAD): what a
    field's background varies by, little moved by the vessels in it."""
    values = np.asarray(values, float)
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def temporal_image(frames: np.ndarray, *, statistic: str = "mean") -> np.ndarray:
    """One image summarising a registered stack over time.

    Parameters
    ----------
    frames : (T, H, W) ndarray
    statistic : {"mean", "dark", "median", "min"}
        ``mean`` keeps every vessel holding red cells at any time; ``dark`` is the mean minus
        one temporal standard deviation: where red cells pass only now and then (sparse or fast
        flow) it is nearly as dark as the cells, while static tissue only shifts by the sensor
        noise, about uniformly (the flat-field contrast removes that); ``median`` ignores
        passing cells in a vessel that is mostly empty.

    Returns
    -------
    (H, W) float32 ndarray, in the frames' intensity units.
    """
    if frames.ndim != 3:
        raise ValueError(f"frames must be (T, H, W), got shape {frames.shape}")
    if statistic in ("mean", "dark"):
        total = np.zeros(frames.shape[1:], np.float64)
        squares = np.zeros(frames.shape[1:], np.float64) if statistic == "dark" else None
        for frame in frames:  # no (T, H, W) float copy
            frame = frame.astype(np.float64)
            total += frame
            if squares is not None:
                squares += frame * frame
        mean = total / len(frames)
        if squares is None:
            return mean.astype(np.float32)
        sd = np.sqrt(np.maximum(squares / len(frames) - mean * mean, 0.0))
        return (mean - sd).astype(np.float32)
    if statistic == "median":
        return np.median(frames[:: max(1, len(frames) // 50)], axis=0).astype(np.float32)
    if statistic == "min":
        return frames.min(axis=0).astype(np.float32)
    raise ValueError(f"unknown statistic {statistic!r}")


def flat_field(image: np.ndarray, *, um_per_px: float, background_um: float = 80.0) -> np.ndarray:
    """Relative contrast: ``image / smooth background - 1`` (vessels negative), dimensionless.

    ``background_um`` must exceed the widest vessel so that the background is not pulled down.
    """
    sigma = background_um / um_per_px
    image = image.astype(np.float32)
    # a closing by a disc wider than vessels removes them before the blur estimates the background
    small = max(1, int(round(sigma / 4)))
    reduced = cv2.resize(image, None, fx=1 / small, fy=1 / small, interpolation=cv2.INTER_AREA)
    radius = max(1, int(round(sigma / 2 / small)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(reduced, cv2.MORPH_CLOSE, kernel)
    closed = cv2.GaussianBlur(closed, (0, 0), max(1.0, sigma / small / 2))
    background = cv2.resize(closed, image.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return image / np.maximum(background, 1e-3) - 1.0


def vesselness(
    contrast: np.ndarray,
    *,
    um_per_px: float,
    diameters_um: tuple[float, float] = (4.0, 50.0),
    n_scales: int = 5,
) -> np.ndarray:
    """Multi-scale dark-ridge tubeness (Sato et al. 1998, ``skimage.filters.sato``).

    Parameters
    ----------
    contrast : (H, W) float ndarray
        Flat-field image, vessels dark.
    um_per_px : float
    diameters_um : (min, max)
        Range of vessel diameters to respond to, µm. A bar of width ``d`` answers best at
        ``sigma ~ d / (2 sqrt 3)``; scales are spaced geometrically over that range.
    n_scales : int

    Returns
    -------
    (H, W) float32 ndarray >= 0.
    """
    lo, hi = (d / (2 * np.sqrt(3)) / um_per_px for d in diameters_um)
    sigmas = np.geomspace(max(lo, 0.7), max(hi, 0.8), n_scales)
    return filters.sato(contrast, sigmas=sigmas, black_ridges=True, mode="reflect").astype(
        np.float32
    )


def segment_vessels(
    frames_mean: np.ndarray,
    *,
    um_per_px: float,
    valid: np.ndarray | None = None,
    diameters_um: tuple[float, float] = (4.0, 50.0),
    min_contrast: float = 0.03,
    min_area_um2: float = 300.0,
    max_hole_um2: float = 15.0,
    threshold_sd: float = 4.0,
    join_gap_um: float = 35.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Binary vessel mask of a temporal image.

    Parameters
    ----------
    frames_mean : (H, W) float ndarray
        From :func:`temporal_image`.
    um_per_px : float
    valid : (H, W) bool ndarray, optional
        The analysed field (see ``stabilise.apply_motion``); outside it nothing is a vessel.
    diameters_um : (min, max)
        Vessel diameters searched, µm.
    min_contrast : float
        A vessel pixel is at least this much darker than its background (relative, 0.03 = 3 %).
    min_area_um2 : float
        Connected objects smaller than this are noise, not vessels.
    max_hole_um2 : float
        Holes in the mask up to this size (about 4 µm across) are filled as noise. Larger ones
        are tissue enclosed by vessels (between two capillaries crossing at a shallow angle, in a
        loop): filled, the skeleton cuts across the blob. Filling up to 75 µm², as before, lost
        1.3 % of the true centreline length on the validation cohort.
    threshold_sd : float
        Hysteresis high threshold on the vesselness: the field's median plus this many robust
        standard deviations (low threshold: half of it), for small (< 20 µm) and large vessels
        separately.
    join_gap_um : float
        Pieces whose ends face each other across at most this gap, µm, are joined before small
        objects are removed (:func:`join_gaps`): a stopped column of sparse cells is a row of
        dark beads, each too short for the tube filter. 0 turns joining off.

    Returns
    -------
    mask : (H, W) bool ndarray
    contrast : (H, W) float32 ndarray
        The flat-field contrast the mask was made from (vessels negative).

    Examples
    --------
    >>> mask, contrast = segment_vessels(temporal_image(frames), um_per_px=1.0)  # doctest: +SKIP
    """
    contrast = flat_field(frames_mean, um_per_px=um_per_px)
    field = np.ones(contrast.shape, bool) if valid is None else valid
    mask = ridge_mask(contrast, um_per_px=um_per_px, field=field, diameters_um=diameters_um,
                      threshold_sd=threshold_sd)  # fmt: skip
    mask &= dark_enough(contrast, um_per_px=um_per_px, min_contrast=min_contrast)
    mask = morphology.remove_small_holes(mask, max_size=int(max_hole_um2 / um_per_px**2))
    if join_gap_um > 0:
        mask = join_gaps(mask, contrast, um_per_px=um_per_px, field=field, gap_um=join_gap_um)
    mask = morphology.remove_small_objects(mask, max_size=int(min_area_um2 / um_per_px**2))
    return mask, contrast


def ridge_mask(
    contrast: np.ndarray,
    *,
    um_per_px: float,
    field: np.ndarray,
    diameters_um: tuple[float, float] = (4.0, 50.0),
    threshold_sd: float = 4.0,
) -> np.ndarray:
    """Where the tube filter answers well above the field's background (step 1 of
    :func:`segment_vessels`; parameters as there), within ``field``: (H, W) bool."""
    mask = np.zeros(contrast.shape, bool)
    # small and large vessels are found apart: in one multi-scale maximum, the large scales'
    # answer to tissue texture sets a threshold above a faint capillary's small-scale answer
    # (on a field crowded with venules every capillary was lost)
    low, high_um = diameters_um
    bands = [(low, SMALL_VESSEL_UM), (SMALL_VESSEL_UM, high_um)]
    if not low < SMALL_VESSEL_UM < high_um:
        bands = [(low, high_um)]
    for band in bands:
        ridge = vesselness(contrast, um_per_px=um_per_px, diameters_um=band, n_scales=3)
        values = ridge[field]
        if values.size == 0 or values.max() <= 0:
            continue
        # most of a field is background, so its median and MAD describe the filter's answer to
        # tissue texture and noise; Otsu would split venules from everything else and lose
        # the faint capillaries that matter most
        high = float(np.median(values)) + threshold_sd * max(robust_sd(values), 1e-6)
        mask |= filters.apply_hysteresis_threshold(ridge, high / 2, high)
    return mask & field


def dark_enough(
    contrast: np.ndarray, *, um_per_px: float, min_contrast: float = 0.03
) -> np.ndarray:
    """(H, W) bool: dark enough to hold red cells (step 2 of :func:`segment_vessels`)."""
    # ridges of illumination or noise are not; the contrast is smoothed over about a cell
    # (3 µm) so that a stopped column's plasma gaps stay connected
    smoothed = cv2.GaussianBlur(contrast, (0, 0), max(0.5, 3.0 / um_per_px))
    return smoothed < -min_contrast


def core_mask(
    mask: np.ndarray,
    contrast: np.ndarray,
    *,
    um_per_px: float,
    depth_fraction: float = 0.4,
    reach_um: float = 6.0,
    smooth_um: float = 2.0,
    min_area_um2: float = 40.0,
    max_hole_um2: float = 15.0,
    bridge_um: float = 25.0,
    join_gap_um: float = 35.0,
) -> np.ndarray:
    """The dark core of a vessel mask, whose skeleton follows each vessel's centreline.

    A mask thresholded low enough to keep faint capillaries is much wider than the vessels (it
    reaches the foot of each dark profile), so nearby vessels merge in it and its skeleton cuts
    corners, leaves tips a wide radius short and bends into blob ends. A mask pixel belongs to
    the core when it is darker than ``depth_fraction`` of the darkest contrast within
    ``reach_um``: about the vessel's width at that fraction of its own depth, whatever its
    contrast. On the default validation cohort the share of the true centreline length lying
    more than 4 µm from a measured centreline fell from 14 % to 5 % (docs/measurement.md).

    Parameters
    ----------
    mask : (H, W) bool ndarray
        From :func:`segment_vessels`.
    contrast : (H, W) float ndarray
        Flat-field contrast, vessels negative.
    um_per_px : float
    depth_fraction : float
        Fraction of the local depth a core pixel reaches (0.5 would be the half-depth width).
    reach_um : float
        Radius within which the local depth is taken, µm: about the widest capillary's
        half-width, so that a vessel is judged against itself rather than a darker neighbour.
    smooth_um : float
        Gaussian smoothing of the contrast first, µm: noise, and the plasma gaps of a stopped
        column, which would otherwise cut its core into pieces (1.5 µm did; 2.5 µm merged two
        capillaries 13 µm apart).
    min_area_um2, max_hole_um2 : float
        Core fragments smaller than this are dropped, holes up to this size filled, µm².
    bridge_um : float
        Where the mask's centreline joins two parts of the core across at most this length, µm,
        it is kept as part of the core (a faint capillary meeting a dark venule).
    join_gap_um : float
        Core pieces of one mask object whose ends face each other across at most this gap, µm,
        are joined (:func:`join_gaps`) before small fragments are dropped: the cores of a
        stopped column's separate cells are each smaller than ``min_area_um2``. 0: off.

    Returns
    -------
    (H, W) bool ndarray, a subset of ``mask``.
    """
    smoothed = cv2.GaussianBlur(
        contrast.astype(np.float32), (0, 0), max(0.5, smooth_um / um_per_px)
    )
    radius = max(1, int(round(reach_um / um_per_px)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    darkest = cv2.erode(np.where(mask, smoothed, 0.0).astype(np.float32), disc)
    core = mask & (smoothed < depth_fraction * darkest)
    core = morphology.remove_small_holes(core, max_size=int(max_hole_um2 / um_per_px**2))
    min_size = int(min_area_um2 / um_per_px**2)
    kept = morphology.remove_small_objects(core, max_size=min_size)
    bridges = _bridges(mask, kept, max_length_px=bridge_um / um_per_px)
    if join_gap_um <= 0:
        return kept | bridges
    # pieces a bridge already joins count as one, so that no second, straight path is drawn
    joined = join_gaps(core | bridges, contrast, um_per_px=um_per_px, within=mask,
                       gap_um=join_gap_um) & mask  # fmt: skip
    return morphology.remove_small_objects(joined, max_size=min_size) | bridges


def _gap_ends(
    pieces: np.ndarray, um_per_px: float, *, blob_um: float, direction_um: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The places where labelled pieces may be joined: a round piece's centre (no direction), an
    elongated piece's free skeleton ends with the outward direction over ``direction_um``.

    Returns ``(points (K, 2) px, unit directions (K, 2), piece labels (K,), half-widths (K,) px)``;
    a round piece's direction is (0, 0).
    """
    skeleton = morphology.skeletonize(pieces > 0)
    distance = ndimage.distance_transform_edt(pieces > 0)
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8),
                                  mode="constant") - 1  # fmt: skip
    reach = max(2.0, direction_um / um_per_px)
    points, directions, labels, halves = [], [], [], []
    for label, box in enumerate(ndimage.find_objects(pieces), start=1):
        if box is None:
            continue
        inside = pieces[box] == label
        origin = np.array([box[0].start, box[1].start], float)
        line = np.argwhere(skeleton[box] & inside).astype(float)
        if len(line) == 0:
            line = np.argwhere(inside).astype(float)
        if float(np.hypot(*np.ptp(line, axis=0))) * um_per_px < blob_um:  # a bead: its centre
            points.append(np.argwhere(inside).mean(axis=0) + origin)
            directions.append(np.zeros(2))
            labels.append(label)
            halves.append(float(distance[box][inside].max()))
            continue
        for end in np.argwhere((neighbours[box] == 1) & skeleton[box] & inside).astype(float):
            gap = np.hypot(*(line - end).T)
            near = line[(gap > 0) & (gap <= reach)]
            outward = end - near.mean(axis=0) if len(near) >= 2 else np.zeros(2)
            norm = float(np.hypot(*outward))
            if norm < 1e-6:
                continue
            points.append(end + origin)
            directions.append(outward / norm)
            labels.append(label)
            halves.append(float(distance[tuple((end + origin).astype(int))]))
    return (np.reshape(points, (-1, 2)), np.reshape(directions, (-1, 2)),
            np.asarray(labels, int), np.asarray(halves, float))  # fmt: skip


def join_gaps(
    mask: np.ndarray,
    contrast: np.ndarray,
    *,
    um_per_px: float,
    field: np.ndarray | None = None,
    within: np.ndarray | None = None,
    gap_um: float = 35.0,
    angle_deg: float = 30.0,
    blob_um: float = 12.0,
    direction_um: float = 8.0,
    smooth_um: float = 2.0,
) -> np.ndarray:
    """Join pieces of a mask across short straight gaps that are darker than the tissue.

    A stopped capillary whose red cells stand apart is a row of dark beads with plasma gaps of
    up to 35 µm between them; each bead is too short for the tube filter and the gaps are too
    light for the darkness test, so the pieces would be removed as small objects and the vessel
    lost. Pieces are joined, never found: the gap is drawn into the mask (as wide as the
    narrower of the two pieces) only where

    * two elongated pieces' free ends face each other: the gap lies within ``angle_deg`` of
      both ends' outward directions; or
    * an elongated piece's free end faces a round piece (a bead, under ``blob_um`` long); or
    * a round piece lies between two others on a line: the gaps to both point in opposite
      directions within ``angle_deg`` (a row of three or more beads);

    and the contrast along the straight gap, outside both pieces and smoothed over
    ``smooth_um``, is darker than the tissue on average (mean below 0).

    Parameters
    ----------
    mask : (H, W) bool ndarray
        Pieces of vessels.
    contrast : (H, W) float ndarray
        Flat-field contrast, vessels negative, tissue about 0.
    um_per_px : float
    field : (H, W) bool ndarray, optional
        Nothing is drawn outside it.
    within : (H, W) bool ndarray, optional
        Join only pieces lying in one connected object of this mask (the vessel mask, when
        joining the pieces of its core).
    gap_um : float
        The longest gap joined, µm (between ends, or to a bead's centre).
    angle_deg : float
        The largest angle between a gap and an end's direction, or between two gaps at a bead.
    blob_um : float
        Pieces whose skeleton spans less than this, µm, are beads (no direction of their own).
    direction_um : float
        An end's direction is taken over this much skeleton behind it, µm.
    smooth_um : float
        Gaussian smoothing of the contrast before the gap's darkness is measured, µm.

    Returns
    -------
    (H, W) bool ndarray, ``mask`` with the gaps drawn in.

    Notes
    -----
    Averaging darkness along lines as a *detector* instead added a halo of false length around
    every dark vessel; joining only what was found does not (figures in docs/measurement.md).
    """
    pieces, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n < 2:
        return mask.copy()
    points, directions, labels, halves = _gap_ends(
        pieces, um_per_px, blob_um=blob_um, direction_um=direction_um
    )
    if len(points) < 2:
        return mask.copy()
    bead = ~directions.any(axis=1)
    cos_max = float(np.cos(np.radians(angle_deg)))
    objects = ndimage.label(within, structure=np.ones((3, 3)))[0] if within is not None else None
    h, w = mask.shape
    cells = np.clip(np.round(points).astype(int), 0, [h - 1, w - 1])
    gaps: dict[tuple[int, int], np.ndarray] = {}  # (a, b) -> unit vector from a to b
    for a, b in cKDTree(points).query_pairs(gap_um / um_per_px, output_type="ndarray"):
        if labels[a] == labels[b]:
            continue
        if objects is not None:
            here = objects[tuple(cells[a])]
            if here == 0 or here != objects[tuple(cells[b])]:
                continue
        step = points[b] - points[a]
        length = float(np.hypot(*step))
        if length < 1e-6:
            continue
        unit = step / length
        if (not bead[a] and directions[a] @ unit < cos_max) or (
            not bead[b] and -(directions[b] @ unit) < cos_max
        ):
            continue  # an end that does not face the other piece
        gaps[(a, b)] = unit
    chosen = {pair for pair in gaps if not (bead[pair[0]] and bead[pair[1]])}
    at: dict[int, list[tuple[int, np.ndarray]]] = {}
    for (a, b), unit in gaps.items():
        at.setdefault(a, []).append((b, unit))
        at.setdefault(b, []).append((a, -unit))
    for middle, options in at.items():
        if not bead[middle]:
            continue
        for i, (p, to_p) in enumerate(options):
            for q, to_q in options[i + 1 :]:
                if labels[p] != labels[q] and -(to_p @ to_q) >= cos_max:
                    chosen |= {tuple(sorted((middle, p))), tuple(sorted((middle, q)))}
    smoothed = cv2.GaussianBlur(
        contrast.astype(np.float32), (0, 0), max(0.5, smooth_um / um_per_px)
    )
    drawn = np.zeros(mask.shape, np.uint8)
    for a, b in chosen:
        count = max(2, int(np.ceil(np.hypot(*(points[b] - points[a])))) + 1)
        line = points[a] + np.linspace(0.0, 1.0, count)[:, None] * (points[b] - points[a])
        on = pieces[tuple(np.clip(np.round(line).astype(int), 0, [h - 1, w - 1]).T)]
        outside = line[(on != labels[a]) & (on != labels[b])]
        if len(outside) and ndimage.map_coordinates(smoothed, outside.T, order=1).mean() >= 0:
            continue  # the gap is no darker than the tissue
        width = max(1, int(round(2 * min(halves[a], halves[b]))))
        start, end = np.round(points[[a, b], ::-1]).astype(int).tolist()
        cv2.line(drawn, tuple(start), tuple(end), 1, width)
    joined = mask | drawn.astype(bool)
    return joined & field if field is not None else joined


def _bridges(mask: np.ndarray, core: np.ndarray, *, max_length_px: float) -> np.ndarray:
    """Pieces of the mask's skeleton that join two separate parts of the core, up to a length.

    A faint capillary's core stops short of a much darker vessel it joins (near the dark vessel
    the local depth is the dark vessel's); the mask's own centreline still runs through the gap.
    """
    pieces, n = ndimage.label(morphology.skeletonize(mask) & ~core, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros_like(core)
    parts, _ = ndimage.label(core, structure=np.ones((3, 3)))
    padded = np.pad(pieces, 1)
    h, w = pieces.shape
    pairs = []  # (piece, core part) for every piece pixel beside a core pixel, all 8 directions
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            beside = padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
            both = (beside > 0) & (parts > 0)
            pairs.append(np.stack([beside[both], parts[both]]))
    pairs = np.unique(np.concatenate(pairs, axis=1), axis=1)
    joins = np.bincount(pairs[0], minlength=n + 1)
    sizes = np.bincount(pieces.ravel(), minlength=n + 1)
    keep = (joins >= 2) & (sizes <= max_length_px)
    keep[0] = False
    return keep[pieces]


def lumen_mask(mask: np.ndarray, contrast: np.ndarray, *, min_contrast: float = 0.03):
    """The pixels of a vessel mask that are themselves dark, for measuring diameters.

    A vesselness mask is smoothed at the vessel's scale; the unsmoothed contrast marks the lumen
    more tightly (plasma gaps of a stopped column drop out, which ``skeleton`` allows for).
    """
    return mask & (contrast < -min_contrast)
