"""Vessels counted as the consensus counts them: pieces merged through junctions, spurs left out,
crossings split into two junctions and short breaks mended."""

from __future__ import annotations

import numpy as np
import pytest
from _vessel_render import line

from sepsiscope.microcirculation.chains import chain_segments, count_vessels, vessel_chains


def _piece(r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """A straight skeleton piece with points about 1 px apart."""
    return line(r0, c0, r1, c1, int(np.ceil(np.hypot(r1 - r0, c1 - c0))) + 1)


def _lengths_um(paths: list[np.ndarray], um_per_px: float = 1.0) -> list[float]:
    return [float(np.hypot(*np.diff(p, axis=0).T).sum()) * um_per_px for p in paths]


def _count(paths: list[np.ndarray], um_per_px: float = 1.0, min_um: float = 15.0) -> int:
    return count_vessels(paths, _lengths_um(paths, um_per_px), um_per_px=um_per_px, min_um=min_um)


def test_a_drawn_network_with_junctions_and_a_spur():
    # a vessel cut in two by a side branch at (50, 50), the branch itself, and a 6-px whisker
    left, right = line(50, 0, 50, 50, 51), line(50, 50, 50, 100, 51)
    branch = line(50, 50, 0, 50, 51)
    separate = line(80, 10, 80, 90, 81)
    spur = line(80, 40, 86, 40, 7)
    paths = [left, right, branch, separate, spur]
    chains = chain_segments(paths, direction_px=8.0)
    assert sorted(len(c) for c in chains) == [1, 1, 1, 2]  # the flow's chains: left + right
    assert _count(paths) == 3  # the vessel, its branch, the other
    assert _count(paths, min_um=0) == 4  # the spur counted when allowed


def test_a_crossing_split_into_two_junctions_is_two_vessels():
    # C crosses A; the skeleton meets it at two junctions 8 px apart, joined by a bridge of A
    a_left, bridge, a_right = (
        _piece(100, 0, 100, 146),
        _piece(100, 146, 100, 154),
        _piece(100, 154, 100, 300),
    )
    c_upper, c_lower = _piece(20, 130, 100, 146), _piece(100, 154, 180, 170)
    paths = [a_left, bridge, a_right, c_upper, c_lower]
    assert _count(paths) == 2
    # the flow's chains are left as they were: C stays in two halves there
    assert len(chain_segments(paths, direction_px=8.0)) == 3


def test_two_branches_leaving_close_together_are_not_a_crossing():
    parent = [_piece(100, 0, 100, 100), _piece(100, 100, 100, 108), _piece(100, 108, 100, 250)]
    branches = [_piece(100, 100, 30, 90), _piece(100, 108, 30, 118)]
    assert _count(parent + branches) == 3


def test_a_short_break_is_mended_and_a_long_one_is_not():
    assert _count([_piece(50, 10, 50, 60), _piece(50, 66, 50, 150)]) == 1  # 6 µm lost
    assert _count([_piece(50, 10, 50, 60), _piece(50, 80, 50, 150)]) == 2  # 20 µm: two
    # ends 6 µm apart side by side, not facing each other: two vessels
    assert _count([_piece(50, 10, 50, 60), _piece(56, 60, 56, 150)]) == 2


def test_a_vessel_runs_on_through_a_pruned_spur_and_a_bent_branch_point():
    # D with an 8-px spur at (150, 90): one vessel, the spur left out
    d = [_piece(150, 10, 150, 90), _piece(150, 90, 150, 200), _piece(150, 90, 158, 90)]
    assert _count(d) == 1
    assert sorted(len(v) for v in vessel_chains(d, _lengths_um(d), um_per_px=1.0)) == [2]
    # E bends by 50° where F branches off: E is one vessel (the straightest pair always continues)
    bend, heading_f = np.radians(50), np.radians(70)
    e = [
        _piece(220, 10, 220, 60),
        _piece(220, 60, 220 + 60 * np.sin(bend), 60 + 60 * np.cos(bend)),
        _piece(220, 60, 220 - 60 * np.sin(heading_f), 60 + 60 * np.cos(heading_f)),
    ]
    assert _count(e) == 2


def test_a_network_with_every_kind_of_break_at_another_scale():
    um_per_px = 1.2
    paths = [
        # A, a side branch B at (100, 60) and a crossing vessel C split into two junctions
        _piece(100, 0, 100, 60), _piece(100, 60, 100, 146), _piece(100, 146, 100, 152),
        _piece(100, 152, 100, 250), _piece(100, 250, 100, 300),
        _piece(100, 60, 20, 60), _piece(20, 130, 100, 146), _piece(100, 152, 180, 168),
        _piece(100, 250, 92, 250),  # a spur on A
        # D, broken for 5 px, and a short isolated fleck
        _piece(200, 10, 200, 60), _piece(200, 65, 200, 150), _piece(230, 200, 230, 208),
    ]  # fmt: skip
    assert _count(paths, um_per_px) == 4  # A, B, C, D
    assert _count(paths[:9], um_per_px) == 3


@pytest.mark.parametrize("n", [0, 1])
def test_few_segments(n):
    paths = [_piece(0, 0, 0, 30)][:n]
    assert _count(paths) == n
