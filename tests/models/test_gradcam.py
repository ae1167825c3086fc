"""Grad-CAM: properties of the maps, sanity checks and the overlay."""

from __future__ import annotations

import numpy as np
import pytest
from _predict_fixtures import SIZE, tiny_model, vessel_frames

from sepsiscope.data.frame_quality import make_samples
from sepsiscope.models.gradcam import GradCAM, gradcam_sanity, overlay_rgb


@pytest.fixture(scope="module")
def samples():
    frames = vessel_frames(8)
    return np.concatenate([make_samples(np.stack(frames[i : i + 3]), size=SIZE) for i in (0, 3)])


def test_gradcam_maps_are_input_sized_non_negative_and_scaled(samples):
    model = tiny_model()
    cams, probs = GradCAM(model, input_mode="time")(samples)
    assert cams.shape == (len(samples), SIZE, SIZE) and cams.dtype == np.float32
    assert (cams >= 0).all() and (cams <= 1).all()
    assert np.allclose(cams.reshape(len(cams), -1).max(1), 1.0) or (cams == 0).all()
    assert ((probs > 0) & (probs < 1)).all()
    septic, _ = GradCAM(model, input_mode="time")(samples, target="septic")
    other, _ = GradCAM(model, input_mode="time")(samples, target="non-septic")
    assert not np.allclose(septic, other)  # opposite classes highlight different regions
    # hooks are removed: the model is untouched and Grad-CAM gives the same maps twice
    assert not model.layer2._forward_hooks
    again, _ = GradCAM(model, input_mode="time")(samples)
    np.testing.assert_allclose(again, cams, atol=1e-5)


def test_gradcam_sanity_checks(samples):
    checks = gradcam_sanity(tiny_model(), samples, input_mode="time")
    assert checks["non_negative"] and checks["in_unit_range"] and checks["input_sized"]
    assert checks["changes_with_input"]
    assert checks["randomisation_correlation"] < 0.95


def test_overlay_is_rgb_of_the_input_size():
    grey = np.full((SIZE, SIZE), 100, np.uint8)
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[:8, :8] = 1.0
    rgb = overlay_rgb(grey, cam)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[-1, -1])  # the hot corner differs from the rest
