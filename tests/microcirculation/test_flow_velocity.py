"""Red-cell velocity from space-time diagrams: known streaks in, their speed out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.microcirculation.chains import chain_path, chain_segments, extended_segments
from sepsiscope.microcirculation.flow import kymographs, path_velocity, segment_flow

try:  # tests/ is a package in some checkouts and a plain folder in others
    from ._vessel_render import line
except ImportError:
    from _vessel_render import line

FPS = 25.0


def streaks(length: int, px_per_frame: float, *, frames: int = 50, seed: int = 0) -> np.ndarray:
    """Kymograph ``K[t, s] = f(s - v t)`` of random 6-px cells with gaps, plus pixel noise."""
    rng = np.random.default_rng(seed)
    period = length + int(abs(px_per_frame) * frames) + 20
    cells = np.zeros(period)
    start = 0.0
    while start < period:
        cells[int(start) : int(start) + 6] = 1.0
        start += 6 + rng.exponential(4.0)
    s = np.arange(length)[None, :] - px_per_frame * np.arange(frames)[:, None]
    k = 150.0 - 60.0 * np.interp(s % period, np.arange(period), cells, period=period)
    return (k + rng.normal(0, 2.0, k.shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("length", "px_per_frame"),
    [(120, 4.0), (120, -12.0), (150, 48.0), (150, 90.0)],  # 100 µm/s .. 2.25 mm/s at 25 fps
)
def test_velocity_of_known_streaks(length, px_per_frame):
    """Within 3 %; 90 px/frame on 150 px is farther than half the path (out of the old search)."""
    flow = segment_flow(streaks(length, px_per_frame), fps=FPS, um_per_px=1.0, noise_variance=1.0)
    assert flow.category == ("continuous" if abs(px_per_frame) * FPS >= 300 else "sluggish")
    assert flow.velocity_um_per_s == pytest.approx(abs(px_per_frame) * FPS, rel=0.03)


def test_cells_faster_than_the_path_give_no_velocity_not_a_low_one():
    kymograph = streaks(50, 60.0)  # cells jump farther than the path is long
    flow = segment_flow(kymograph, fps=FPS, um_per_px=1.0, noise_variance=1.0)
    assert flow.category == "continuous" and np.isnan(flow.velocity_um_per_s)
    long_path = path_velocity(streaks(200, 60.0), fps=FPS, um_per_px=1.0, noise_variance=1.0)
    assert long_path == pytest.approx(1500, rel=0.03)
    with_path = segment_flow(kymograph, fps=FPS, um_per_px=1.0, noise_variance=1.0,
                             path_velocity_um_per_s=long_path)  # fmt: skip
    assert with_path.velocity_um_per_s == long_path


def test_chains_continue_straight_through_junctions_not_into_side_branches():
    pieces = [
        line(50, 0, 50, 40),
        line(50, 40, 50, 80),
        line(50, 120, 50, 80),
        line(50, 40, 90, 40),
    ]
    chains = chain_segments(pieces, max_turn_deg=55)
    assert sorted(sorted(i for i, _ in c) for c in chains) == [[0, 1, 2], [3]]
    main = next(c for c in chains if len(c) == 3)
    path = chain_path(pieces, main)
    assert np.allclose(np.abs(np.diff(path[[0, -1], 1])), 120)  # one straight run end to end
    assert np.all(np.abs(np.diff(path[:, 1])) <= 1.0)  # in order, no jump back
    # a capillary (small) does not carry on as the venule it runs into
    assert len(chain_segments(pieces, classes=[True, True, False, True])) == 3
    extended = extended_segments(chains, [40.0, 40.0, 40.0, 40.0], extend_px=30)
    assert sorted(i for i, _ in extended[0]) == [0, 1]  # an end piece: one neighbour
    assert sorted(i for i, _ in extended[1]) == [0, 1, 2]
    assert 3 not in extended


def test_fast_cells_in_short_pieces_are_followed_along_the_chained_vessel():
    """1.2 mm/s (48 px per frame) along a capillary cut into 40-px pieces at two junctions."""
    rng = np.random.default_rng(4)
    frames_n, width = 50, 160 + 48 * 50 + 10
    cells = np.repeat(rng.random(width // 6 + 1) < 0.6, 6)[:width].astype(np.float32)
    frames = np.full((frames_n, 40, 160), 150.0, np.float32)
    for t in range(frames_n):  # the capillary along row 20, cells moving to +col
        frames[t, 19:22] -= 60 * cells[np.arange(160) - 48 * t + 48 * frames_n][None, :]
    frames += rng.normal(0, 2.0, frames.shape).astype(np.float32)
    pieces = [line(20, 20, 20, 60, 41), line(20, 60, 20, 100, 41), line(20, 140, 20, 100, 41)]
    own = kymographs(frames, pieces)
    for k in own:
        flow = segment_flow(k, fps=FPS, um_per_px=1.0, noise_variance=1.0)
        assert flow.category == "continuous" and np.isnan(flow.velocity_um_per_s)
    (chain,) = chain_segments(pieces)
    (kymograph,) = kymographs(frames, [chain_path(pieces, chain)])
    velocity = path_velocity(kymograph, fps=FPS, um_per_px=1.0, noise_variance=1.0)
    assert velocity == pytest.approx(1200, rel=0.03)


@given(length=st.integers(1, 8), frames=st.integers(2, 40), seed=st.integers(0, 10**6))
@settings(max_examples=40, deadline=None)
def test_any_short_path_gets_a_flow_category(length, frames, seed):
    # a segment trimmed out of the vessels it joins can keep one or two samples; one such
    # path in a 32-video validation cohort had stopped the whole video with an argmax error
    kymograph = 120 + 20 * np.random.default_rng(seed).random((frames, length))
    flow = segment_flow(kymograph, fps=25.0, um_per_px=1.0, noise_variance=1.0)
    assert flow.category in {"none", "intermittent", "sluggish", "continuous"}
    assert 0.0 <= flow.moving_fraction <= 1.0
