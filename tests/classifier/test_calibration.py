"""Temperature scaling, Brier score and expected calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.classifier.calibration import (
    brier,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    logit,
    scale,
)


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from true probabilities, and a model that reports them 3x too sharp."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return 1 / (1 + np.exp(-3 * true_logit)), y


def test_brier_and_ece_by_hand():
    assert brier([0.9, 0.2], [1, 0]) == pytest.approx((0.01 + 0.04) / 2)
    # two bins: [0.1, 0.1] with outcomes [0, 1] (gap 0.4), [0.9] with outcome 1 (gap 0.1)
    ece = expected_calibration_error([0.1, 0.1, 0.9], [0, 1, 1], n_bins=2)
    assert ece == pytest.approx((2 * 0.4 + 1 * 0.1) / 3)


def test_temperature_scaling_recovers_an_overconfident_model():
    p, y = overconfident()
    temperature = fit_temperature(p, y)
    assert temperature == pytest.approx(3.0, rel=0.15)
    calibrated = scale(p, temperature)
    assert expected_calibration_error(calibrated, y) < 0.5 * expected_calibration_error(p, y)
    assert brier(calibrated, y) < brier(p, y)


def test_one_class_or_nothing_to_fit_leaves_probabilities_alone():
    assert fit_temperature([0.2, 0.7, 0.9], [1, 1, 1]) == 1.0
    np.testing.assert_allclose(scale(np.array([0.2, 0.7]), 1.0), [0.2, 0.7])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.001, 0.999), min_size=2, max_size=30), st.floats(0.1, 10))
def test_scaling_keeps_the_order_and_the_side_of_one_half(p, temperature):
    p = np.array(p)
    q = scale(p, temperature)
    assert np.all(np.diff(q[np.argsort(p)]) >= -1e-12)  # monotone: AUC unchanged
    assert np.all(np.sign(logit(q)) == np.sign(logit(p)))


def test_report_by_level_on_a_prediction_table():
    p, y = overconfident(600, seed=1)
    i = np.arange(600)
    frames = pd.DataFrame({
        "patient_id": [f"p{k}" for k in i % 60], "video_id": [f"v{k}" for k in i % 120],
        "frame_index": i, "y": 0, "probability": p,
    })  # fmt: skip
    frames["y"] = (frames["patient_id"].str[1:].astype(int) % 2).astype(int)
    report = calibration_report(frames, 2.0)
    assert report["temperature"] == 2.0
    assert (report["frame"]["n"], report["video"]["n"], report["patient"]["n"]) == (600, 120, 60)
    for level in ("frame", "video", "patient"):
        assert set(report[level]) == {"n", "brier_before", "brier_after", "ece_before", "ece_after"}


def test_test_time_augmentation_averages_the_eight_views():
    from sepsiscope.classifier.inference import dihedral_views, with_tta

    rng = np.random.default_rng(0)
    samples = rng.integers(0, 255, (3, 3, 8, 8), dtype=np.uint8)
    views = dihedral_views(samples)
    assert views.shape == (24, 3, 8, 8)
    np.testing.assert_array_equal(views[:3], samples)  # the first view is the sample itself
    assert len({v.tobytes() for v in views[::3]}) == 8  # 8 different views of one sample

    def top_left(x: np.ndarray) -> np.ndarray:  # a "network" that cares about orientation
        return x[:, 0, :4, :4].mean(axis=(1, 2)) / 255

    flipped = np.ascontiguousarray(samples[..., ::-1])
    turned = np.ascontiguousarray(np.rot90(samples, 1, axes=(2, 3)))
    assert not np.allclose(top_left(samples), top_left(flipped))
    np.testing.assert_allclose(with_tta(top_left, samples), with_tta(top_left, flipped), atol=1e-6)
    np.testing.assert_allclose(with_tta(top_left, samples), with_tta(top_left, turned), atol=1e-6)
    assert with_tta(top_left, samples[:0]).shape == (0,)
