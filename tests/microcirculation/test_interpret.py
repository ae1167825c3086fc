"""The interpretable metrics classifier: metrics no patient has are dropped before fitting."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sepsiscope.errors import InputError
from sepsiscope.layout import MeasurementLayout
from sepsiscope.microcirculation.interpret import (
    DEFAULT_FEATURES,
    auc_row,
    interpret,
    summary_text,
)


def _measurements(tmp_path, velocity) -> MeasurementLayout:
    """12 patients, one video each; PPV separates the classes; velocity as given per patient."""
    rng = np.random.default_rng(1)
    septic = np.arange(12) % 2 == 0
    table = pd.DataFrame(
        {"patient_id": [f"P{i:02d}" for i in range(12)], "status": "ok",
         "label": np.where(septic, "septic", "non-septic"),
         "tvd_mm_per_mm2": rng.normal(18, 2, 12), "tvd_small_mm_per_mm2": rng.normal(15, 2, 12),
         "ppv_percent": np.where(septic, 70.0, 97.0) + rng.normal(0, 2, 12),
         "pvd_mm_per_mm2": rng.normal(13, 2, 12), "mfi": rng.normal(2.6, 0.3, 12),
         "mean_velocity_um_per_s": velocity}
    )  # fmt: skip
    layout = MeasurementLayout(tmp_path / "m")
    layout.root.mkdir()
    table.to_parquet(layout.videos)
    return layout


def test_a_metric_measured_in_no_patient_is_dropped_with_a_note_and_no_warning(tmp_path):
    layout = _measurements(tmp_path, np.nan)  # velocity: every vessel too fast to follow
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's "Skipping features without any observed values"
        result = interpret(layout.root)
    metrics = {c["metric"] for c in result["coefficients"]}
    assert metrics == set(DEFAULT_FEATURES) - {"mean_velocity_um_per_s"}
    assert result["notes"] == ["left out, measured in no patient: mean_velocity_um_per_s"]
    assert result["models"][0]["auc"] > 0.9  # PPV still separates the classes
    assert "note: left out, measured in no patient: mean_velocity_um_per_s" in summary_text(result)


def test_a_metric_missing_from_a_whole_training_fold_is_imputed_silently(tmp_path):
    velocity = np.full(12, np.nan)
    velocity[0] = 900.0  # one patient only: some training folds have none
    layout = _measurements(tmp_path, velocity)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = interpret(layout.root)
    assert len(result["coefficients"]) == len(DEFAULT_FEATURES)
    assert result["notes"] == [
        "mean_velocity_um_per_s: missing in 11 of 12 patients, imputed with the median of the "
        "training patients (0 after standardisation where a fold's training patients have none)"
    ]


def test_no_metric_at_all_is_an_input_error(tmp_path):
    layout = _measurements(tmp_path, np.nan)
    table = pd.read_parquet(layout.videos)
    table[list(DEFAULT_FEATURES)] = np.nan
    table.to_parquet(layout.videos)
    with pytest.raises(InputError, match="no metric was measured in any patient"):
        interpret(layout.root)


def test_auc_intervals_resample_patients_within_each_class():
    y = np.array([0] * 10 + [1] * 10)
    separated = auc_row("m", "all", y, y + 0.01 * np.arange(20))
    # every resample separates perfectly; the interval is the binormal bound for 10 + 10
    assert separated["auc"] == separated["auc_high"] == 1.0
    assert separated["auc_low"] == pytest.approx(0.866, abs=0.005)
    noisy = np.random.default_rng(0).random(20)
    row = auc_row("m", "all", y, noisy)
    assert row["n_patients"] == 20 and row["auc_low"] < row["auc"] < row["auc_high"]
    # about +-0.25 for 10 + 10 patients (Hanley-McNeil SE ~0.13 at AUC 0.5)
    assert 0.3 < row["auc_high"] - row["auc_low"] < 0.7
