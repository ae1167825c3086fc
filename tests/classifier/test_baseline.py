"""The logistic-regression baseline on simple frame statistics."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from sepsiscope._io import write_json, write_table
from sepsiscope.classifier.baseline import (
    DEFAULT_FEATURES,
    FEATURES,
    baseline_predictions,
    fit_baseline,
    frame_statistics,
)
from sepsiscope.data.store import FrameStore, write_sample_array
from sepsiscope.errors import InputError
from sepsiscope.layout import STORE_FORMAT_VERSION, StoreLayout


def make_store(root, *, n_patients=12, videos=2, samples=6, size=32, seed=0, contrast_gap=25):
    """A store whose septic patients' frames have more contrast (fewer, sharper dark vessels).

    Patients alternate non-septic / septic; splits: 6 train, 3 val, 3 test (both classes each).
    """
    rng = np.random.default_rng(seed)
    layout = StoreLayout(root)
    frames, videos_rows = [], []
    for i in range(n_patients):
        y = i % 2
        patient = f"p{i:02d}"
        for v in range(videos):
            video_id = f"{patient}-v{v}"
            base = rng.normal(140, 8, (samples, 3, size, size))
            stripes = np.sin(np.arange(size) / 2.0 + rng.uniform(0, 6))[None, None, None, :]
            x = base + (15 + contrast_gap * y) * stripes
            write_sample_array(layout, video_id, np.clip(x, 0, 255).astype(np.uint8))
            videos_rows.append(dict(video_id=video_id, patient_id=patient, y=y))
            for r in range(samples):
                frames.append(
                    dict(video_id=video_id, row=r, patient_id=patient, y=y, frame_index=r * 5,
                         label="septic" if y else "non-septic", usable=True)
                )  # fmt: skip
    write_table(layout.frames, pd.DataFrame(frames))
    write_table(layout.videos, pd.DataFrame(videos_rows))
    ids = [f"p{i:02d}" for i in range(n_patients)]
    n_train = n_patients // 2
    n_val = (n_patients - n_train) // 2
    write_json(
        layout.splits,
        {"train": ids[:n_train], "val": ids[n_train : n_train + n_val],
         "test": ids[n_train + n_val :], "folds": [ids[k::3] for k in range(3)]},
    )  # fmt: skip
    write_json(layout.meta, {"format_version": STORE_FORMAT_VERSION, "settings": {"size": size}})
    return layout.root


def test_frame_statistics_known_values():
    flat = np.full((2, 3, 16, 16), 100, np.uint8)
    flat[1] = 200
    stats = frame_statistics(flat, features=FEATURES)
    assert stats.shape == (2, len(FEATURES))
    assert stats[:, 0] == pytest.approx([100 / 255, 200 / 255])  # mean intensity
    assert stats[:, 1:] == pytest.approx(0, abs=1e-6)  # flat: no contrast, edges, motion

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (1, 3, 32, 32)).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp[0, 0], (5, 5), 2)[None, None].repeat(3, axis=1)
    sharpness = frame_statistics(np.concatenate([sharp, blurred]), features=["sharpness"])[:, 0]
    assert sharpness[0] > sharpness[1] + 0.5  # log10 units

    moving = flat[:1].copy()
    moving[0, 1] = 110
    motion = frame_statistics(moving, features=["temporal_difference"])
    assert motion[0, 0] == pytest.approx(10 / 255)


def test_unknown_feature_and_one_class_are_clear_errors():
    with pytest.raises(InputError, match="unknown baseline features"):
        frame_statistics(np.zeros((1, 3, 8, 8), np.uint8), features=["colour"])
    with pytest.raises(InputError, match="septic and non-septic"):
        fit_baseline(np.zeros((4, 3)), np.ones(4))


def test_baseline_learns_a_statistic_that_separates_patients(tmp_path):
    store = FrameStore(make_store(tmp_path / "store"))
    tables = {name: store.samples(name) for name in ("train", "val", "test")}
    predictions, coefficients = baseline_predictions(store, tables, seed=0)
    assert set(predictions) == {"val", "test"}
    assert set(coefficients) == set(DEFAULT_FEATURES)
    assert coefficients["contrast"] > 0  # septic frames have more contrast here
    test = predictions["test"]
    assert len(test) == len(tables["test"]) and set(test.split) == {"test"}
    assert set(test.patient_id) == set(store.splits["test"])  # fitted on train patients only
    by_class = test.groupby("y")["probability"].mean()
    assert by_class[1] > by_class[0] + 0.3


def test_baseline_is_deterministic(tmp_path):
    store = FrameStore(make_store(tmp_path / "store", n_patients=6, samples=3))
    tables = {name: store.samples(name) for name in ("train", "test")}
    a, _ = baseline_predictions(store, tables, seed=1)
    b, _ = baseline_predictions(store, tables, seed=1)
    pd.testing.assert_frame_equal(a["test"], b["test"])
