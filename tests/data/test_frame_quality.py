"""Samples (crop, area resize, channel order) and the computable Massey quality parts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from _ingest_media import vessel_frames
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.data import frame_quality as fq


def test_center_sample_keeps_channel_order_and_averages():
    frames = np.stack([np.full((480, 640), v, np.uint8) for v in (10, 100, 200)])
    frames[:, :, :80] = 255  # outside the centre square: must not leak in
    out = fq.make_samples(frames)
    assert out.shape == (1, 3, 224, 224) and out.dtype == np.uint8
    assert [int(out[0, c].min()) for c in range(3)] == [10, 100, 200]
    assert [int(out[0, c].max()) for c in range(3)] == [10, 100, 200]


def test_area_interpolation_preserves_the_mean_of_fine_texture():
    checker = (np.indices((448, 448)).sum(0) % 2 * 200).astype(np.uint8)  # 1-px checkerboard
    out = fq.make_samples(np.stack([checker] * 3))
    assert np.abs(out.astype(float) - 100).max() <= 1  # averaged, not aliased to 0 or 200


def test_tiles_cover_the_whole_field_near_native_scale():
    frames = np.zeros((3, 720, 960), np.uint8)
    out = fq.make_samples(frames, crop="tiles")
    boxes = fq.crop_boxes(720, 960, crop="tiles")
    assert out.shape == (len(boxes), 3, 224, 224) and len(boxes) == 6  # 2 rows x 3 columns
    assert {side for _, _, side in boxes} == {360}


@settings(max_examples=50, deadline=None)
@given(h=st.integers(224, 3000), w=st.integers(224, 4000), crop=st.sampled_from(fq.CROPS))
def test_crop_boxes_are_inside_and_tiles_cover_every_pixel(h, w, crop):
    boxes = fq.crop_boxes(h, w, crop=crop)
    covered = np.zeros((h, w), bool)
    for y, x, side in boxes:
        assert y >= 0 and y + side <= h and x >= 0 and x + side <= w and side >= 224
        covered[y : y + side, x : x + side] = True
    if crop == "tiles":
        assert covered.all()


def test_make_samples_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="uint8"):
        fq.make_samples(np.zeros((3, 300, 300), np.float32))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        fq.make_samples(np.zeros((300, 300), np.uint8))


def test_illumination_scores():
    good = vessel_frames(1)[0]
    assert fq.frame_quality(good)["illumination_score"] == 0
    dark = (good // 8).astype(np.uint8)
    q = fq.frame_quality(dark)
    assert q["mean_intensity"] < 25 and q["illumination_score"] == 10
    bright = np.clip(good.astype(int) + 150, 0, 255).astype(np.uint8)
    q = fq.frame_quality(bright)
    assert q["saturated_fraction"] > 0.5 and q["illumination_score"] == 10


def test_focus_falls_with_blur_and_rejects_featureless_frames():
    sharp = vessel_frames(1, 480, 640)[0]
    scores = [fq.frame_quality(sharp)["focus"]]
    for sigma in (3, 8):
        scores.append(fq.frame_quality(cv2.GaussianBlur(sharp, (0, 0), sigma))["focus"])
    assert scores[0] > scores[1] > scores[2]
    assert fq.frame_quality(sharp)["focus_score"] == 0
    flat = np.full((480, 640), 150, np.uint8)
    assert fq.frame_quality(flat)["focus_score"] == 10
    assert fq.focus_score(4.0, video_median=20.0) == 10  # a focus pull in a sharp video


def test_shift_by_phase_correlation_in_original_pixels():
    a, b = vessel_frames(2, 480, 640, drift_px=12, noise=2)
    assert fq.frame_shift_px(a, b) == pytest.approx(12, abs=1.0)
    assert fq.frame_shift_px(a, a) == pytest.approx(0, abs=0.3)


def test_stability_and_duration_scores():
    assert [fq.stability_score(v) for v in (0.0, 0.5, 3.0)] == [0, 1, 10]
    assert [fq.duration_score(s) for s in (6, 4, 1)] == [0, 1, 10]
    assert fq.duration_score(1, min_s=0) == 1


def test_white_level_follows_the_sensor_depth():
    assert fq.white_level(np.zeros((2, 2), np.uint8)) == 255
    assert fq.white_level(np.full((2, 2), 4000, np.uint16)) == 4095
    assert fq.white_level(np.full((2, 2), 40000, np.uint16)) == 65535


def _counting(frames):
    """The frames as a generator, and a list that records how many were pulled from it."""
    pulled = []

    def gen():
        for f in frames:
            pulled.append(1)
            yield f

    return gen(), pulled


def test_white_level_of_a_stack_is_that_of_its_maximum():
    stack = np.stack([np.full((2, 2), 900, np.uint16), np.full((2, 2), 3000, np.uint16)])
    assert fq.white_level(stack) == 4095 and fq.white_level(stack[:1]) == 1023


def test_white_level_comes_from_the_opening_frames_and_decodes_once():
    dim = np.full((4, 4), 900, np.uint16)  # a 12-bit camera's dim first frame (< 1023)
    frames = [dim, dim + 1000, dim + 2100, dim]  # reaches 3000 in the third
    items, pulled = _counting(enumerate(frames))
    white, again = fq.peek_white_level(items, fps=25, frame=lambda item: item[1])
    assert white == 4095 and len(pulled) == 4  # fewer frames than the window: all peeked
    back = list(again)
    assert [i for i, _ in back] == [0, 1, 2, 3] and len(pulled) == 4  # chained, not re-read
    assert all(f is g for (_, f), g in zip(back, frames, strict=True))
    # only the first second counts: a frame after it does not change the white
    late = [dim] * 25 + [np.full((4, 4), 60000, np.uint16)]
    assert fq.peek_white_level(late, fps=25)[0] == 1023
    assert fq.peek_white_level(late[20:], fps=25)[0] == 65535
    assert fq.peek_white_level([dim] * 5 + late[-1:], fps=5)[0] == 1023  # 1 s = 5 frames


def test_an_8_bit_video_is_decided_by_its_first_frame():
    items, pulled = _counting([np.zeros((2, 2), np.uint8)] * 30)
    white, again = fq.peek_white_level(items, fps=25)
    assert white == 255 and len(pulled) == 1  # a live 8-bit camera waits for nothing
    assert len(list(again)) == 30
    assert fq.peek_white_level([], fps=25)[0] == 255


@given(
    st.lists(st.integers(0, 65535), min_size=1, max_size=40),
    st.floats(min_value=1, max_value=120),
)
def test_peeked_white_is_the_white_of_the_window_maximum(tops, fps):
    frames = [np.full((1, 2), t, np.uint16) for t in tops]
    white, again = fq.peek_white_level(iter(frames), fps=fps)
    window = fq.white_level_frames(fps)
    assert 1 <= window <= 25 and window <= max(1, round(fps))
    assert white == fq.white_level(np.stack(frames[:window]))
    assert all(f is g for f, g in zip(again, frames, strict=True))
    assert white >= max(tops[:window])  # nothing in the window clips
