"""Joining vessel pieces across short dark gaps (``segment.join_gaps``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _vessel_render import line

from sepsiscope.microcirculation.segment import core_mask, join_gaps, segment_vessels
from sepsiscope.microcirculation.skeleton import path_length, vessel_segments

SIZE_UM = (200.0, 300.0)


def _image(draw, *, um_per_px: float, seed: int = 0) -> np.ndarray:
    """A temporal image, 150 grey, of what ``draw(darkness, um_per_px)`` paints (0-1 darkness),
    with a 2 µm optical blur and noise of 1 grey level."""
    h, w = (int(round(s / um_per_px)) for s in SIZE_UM)
    darkness = np.zeros((h, w), np.float32)
    draw(darkness, um_per_px)
    blurred = cv2.GaussianBlur(150 * (1 - darkness), (0, 0), 2.0 / um_per_px)
    return blurred + np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)


def _cells(path_um: np.ndarray, gaps_um: list[float], cell_um: float = 6.0) -> np.ndarray:
    """Centres (row, col) µm of cells along a path, separated by the given plasma gaps."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path_um, axis=0).T))])
    where = np.cumsum([0.0] + [cell_um + g for g in gaps_um])
    return np.stack([np.interp(where, arc, path_um[:, k]) for k in range(2)], axis=1)


def _disc(darkness: np.ndarray, um_per_px: float, centre_um, diameter_um: float, depth: float):
    rows, cols = np.mgrid[0 : darkness.shape[0], 0 : darkness.shape[1]] * um_per_px
    inside = np.hypot(rows - centre_um[0], cols - centre_um[1]) <= diameter_um / 2
    darkness[inside] = np.maximum(darkness[inside], depth)


def _bar(darkness: np.ndarray, um_per_px: float, r0, c0, r1, c1, width_um: float, depth: float):
    canvas = np.zeros(darkness.shape, np.uint8)
    ends = [(int(round(c / um_per_px)), int(round(r / um_per_px))) for r, c in ((r0, c0), (r1, c1))]
    cv2.line(canvas, ends[0], ends[1], 1, max(1, int(round(width_um / um_per_px))))
    darkness[canvas > 0] = np.maximum(darkness[canvas > 0], depth)


def _segments(image: np.ndarray, um_per_px: float, **join):
    mask, contrast = segment_vessels(image, um_per_px=um_per_px, **join)
    core = core_mask(mask, contrast, um_per_px=um_per_px, **join)
    field = np.ones_like(mask)
    return mask, vessel_segments(core, um_per_px=um_per_px, contrast=contrast, field=field)


# a stopped capillary: separate 6 µm cells with bright plasma gaps of 15-28 µm between them
# (cell centres up to 34 µm apart; join_gaps reaches 35 µm between a bead's centre and the next)
GAPS_UM = [18.0, 25.0, 15.0, 28.0, 22.0, 17.0, 27.0, 20.0]
PATH_UM = line(30, 20, 170, 280)


@pytest.mark.parametrize("um_per_px", [1.0, 1.4])
def test_a_stopped_column_of_separate_cells_gets_one_centreline(um_per_px):
    centres = _cells(PATH_UM, GAPS_UM)

    def draw(darkness, um):
        for centre in centres:
            _disc(darkness, um, centre, 6.0, 0.5)

    image = _image(draw, um_per_px=um_per_px)
    true_um = path_length(centres) + 6.0  # first cell's near edge to the last cell's far edge
    _, without = _segments(image, um_per_px, join_gap_um=0.0)
    assert sum(s.length_um for s in without) < 0.3 * true_um  # single cells are lost
    _, joined = _segments(image, um_per_px)
    assert sum(s.length_um for s in joined) == pytest.approx(true_um, rel=0.1)
    # one chain: at most a junction where a cell's round end leaves a stub
    ends = np.array([s.path_px[k] for s in joined for k in (0, -1)])
    for point in ends:
        assert (
            (np.hypot(*(ends - point).T) < 2).sum() >= 2
            or len(joined) == 1
            or (np.hypot(*(point - centres[[0, -1]] / um_per_px).T).min() < 8 / um_per_px)
        )


@pytest.mark.parametrize("um_per_px", [1.0, 1.4])
def test_two_parallel_capillaries_side_by_side_are_not_joined(um_per_px):
    # one capillary ends, another starts 10 µm further on but 25 µm to the side: not facing
    def draw(darkness, um):
        _bar(darkness, um, 80, 30, 80, 150, 7.0, 0.4)
        _bar(darkness, um, 105, 160, 105, 270, 7.0, 0.4)

    image = _image(draw, um_per_px=um_per_px)
    mask, segments = _segments(image, um_per_px)
    assert mask.any()
    rows, cols = np.nonzero(mask)
    between = (cols * um_per_px > 150) & (cols * um_per_px < 160)
    assert not (between & (np.abs(rows * um_per_px - 92.5) < 4)).any()
    assert len(segments) == 2
    _, apart = _segments(image, um_per_px, join_gap_um=0.0)
    assert [s.length_um for s in segments] == pytest.approx([s.length_um for s in apart])


@pytest.mark.parametrize("um_per_px", [1.0, 1.4])
def test_a_dark_blob_beside_a_vessel_is_not_joined(um_per_px):
    # a capillary and, 18 µm to its side, a cell-sized dark blob: the blob is no vessel
    def draw(darkness, um):
        _bar(darkness, um, 80, 40, 80, 260, 7.0, 0.4)
        _disc(darkness, um, (98 + 3.5, 150), 8.0, 0.5)

    image = _image(draw, um_per_px=um_per_px)
    mask, segments = _segments(image, um_per_px)
    assert not mask[int(round(101.5 / um_per_px)), int(round(150 / um_per_px))]
    assert len(segments) == 1
    _, alone = _segments(image, um_per_px, join_gap_um=0.0)
    assert [s.length_um for s in segments] == pytest.approx([s.length_um for s in alone])


def test_join_gaps_needs_facing_ends_and_a_dark_gap():
    um = 1.0
    contrast = np.zeros((60, 200), np.float32)
    mask = np.zeros((60, 200), bool)
    mask[27:34, 10:80] = mask[27:34, 105:190] = True  # two pieces in line, 25 µm apart
    contrast[mask] = -0.3
    contrast[25:36, 80:105] = 0.1  # bright plasma
    light = join_gaps(mask, contrast, um_per_px=um)
    assert not light[30, 80:105].any()  # the gap is lighter than the tissue
    contrast[25:36, 80:105] = -0.05  # a faint column of plasma and cells
    dark = join_gaps(mask, contrast, um_per_px=um)
    assert dark[30, 80:105].all()
    assert not (dark & ~mask)[:25].any() and not (dark & ~mask)[36:].any()
    # the second piece turned away by 60 degrees: its end no longer faces the first
    turned = mask.copy()
    turned[27:34, 105:190] = False
    rr, cc = np.mgrid[0:60, 0:200]
    turned |= (
        (np.abs((cc - 105) * np.sin(np.radians(60)) - (rr - 30) * np.cos(np.radians(60))) < 3.5)
        & (cc >= 105)
        & (cc < 140)
    )
    contrast[turned] = -0.3
    assert not (join_gaps(turned, contrast, um_per_px=um) & ~turned)[:, 80:105].any()
