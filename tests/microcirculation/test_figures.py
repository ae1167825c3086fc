"""The flow overlay: colours a reader can tell apart on dark vessels, a legend with counts."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from _vessel_render import Vessel, line, render

from sepsiscope.microcirculation import analyse_video
from sepsiscope.microcirculation._figures import CATEGORY_BGR, OUTLINE_BGR, save_overlay


def luminance(bgr: tuple[int, int, int]) -> float:
    b, g, r = bgr
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_category_colours_stand_out_of_dark_vessels_and_from_each_other():
    assert set(CATEGORY_BGR) == {"continuous", "sluggish", "intermittent", "none"}
    assert all(luminance(c) >= 100 for c in CATEGORY_BGR.values())  # a dark vessel is < 60
    for a, b in itertools.combinations(CATEGORY_BGR.values(), 2):
        assert np.abs(np.subtract(a, b)).sum() >= 90  # no two categories nearly alike
    assert luminance(OUTLINE_BGR) < 20


def test_overlay_draws_each_segment_in_its_category_colour(tmp_path):
    vessels = [
        Vessel(line(20, 10, 20, 150), 8.0, 600.0),
        Vessel(line(60, 10, 140, 150), 8.0, 300.0),
        # a stopped vessel across: on a textureless field of straight flowing vessels alone,
        # registration follows the cells (the aperture problem) and the field is lost
        Vessel(line(150, 20, 40, 60), 12.0, 0.0),
    ]
    analysis = analyse_video(render(vessels, seconds=1.6, fps=25.0, seed=4), fps=25.0, um_per_px=1)
    assert {"continuous", "none"} <= {flow.category for flow in analysis.flows}
    path = save_overlay(tmp_path / "overlay.png", analysis)
    image = cv2.imread(str(path))
    scale = image.shape[0] // 160
    assert image.shape[:2] == (160 * scale, 160 * scale)  # the video's own field, enlarged
    for segment, flow in zip(analysis.segments, analysis.flows, strict=True):
        r, c = np.rint(segment.path_px[len(segment.path_px) // 2] * scale).astype(int)
        patch = image[r - 2 : r + 3, c - 2 : c + 3].reshape(-1, 3)
        distance = np.abs(patch.astype(int) - CATEGORY_BGR[flow.category]).sum(1)
        assert distance.min() < 40, (flow.category, patch)
