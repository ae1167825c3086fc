"""Vessels counted as the consensus counts them: pieces merged straight through junctions, spurs
left out."""

from __future__ import annotations

import numpy as np
from _vessel_render import line

from sepsiscope.microcirculation.chains import chain_segments, count_vessels


def test_a_drawn_network_with_junctions_and_a_spur():
    # a vessel cut in two by a side branch at (50, 50), the branch itself, and a 6-px whisker
    left, right = line(50, 0, 50, 50, 51), line(50, 50, 50, 100, 51)
    branch = line(50, 50, 0, 50, 51)
    separate = line(80, 10, 80, 90, 81)
    spur = line(80, 40, 86, 40, 7)
    paths = [left, right, branch, separate, spur]
    chains = chain_segments(paths, direction_px=8.0)
    lengths_um = [float(np.hypot(*np.diff(p, axis=0).T).sum()) for p in paths]  # 1 µm/px
    assert count_vessels(chains, lengths_um, min_um=15) == 3  # the vessel, its branch, the other
    assert count_vessels(chains, lengths_um, min_um=0) == 4  # the spur counted when allowed
