"""Evaluation of a trained run: metrics.json, tables, figures, threshold, CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sepsiscope.classifier.evaluate import EvaluateSettings, judge, small_split_note
from sepsiscope.classifier.scores import LEVELS, METRICS, level_tables
from sepsiscope.cli import app
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _predictions(n_patients, *, split, seed=0, one_class=None):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        y = one_class if one_class is not None else i % 2
        for v in range(2):
            for f in range(3):
                rows.append(
                    dict(patient_id=f"{split}{i}", video_id=f"{split}{i}-{v}", frame_index=f, y=y,
                         probability=float(np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2), 0, 1)),
                         split=split)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_judge_fixes_threshold_on_validation_and_reports_every_level():
    val, test = _predictions(8, split="val", seed=1), _predictions(10, split="test", seed=2)
    result, chosen, tables = judge(test, val, EvaluateSettings(n_bootstrap=30))
    assert chosen["method"] == "youden" and chosen["split"] == "val"
    assert chosen["n_validation_cases"] == 8  # patient-level validation scores
    for level in LEVELS:
        assert set(METRICS) <= set(result[level])
        assert len(result[level]["auc"]["interval"]) == 2
    assert len(tables["patient"]) == 10 and set(tables["patient"]["split"]) == {"test"}
    fixed = judge(test, val, EvaluateSettings(n_bootstrap=5, threshold=0.9))[1]
    assert fixed == {"threshold": 0.9, "method": "fixed", "youden_j": None, "level": "patient",
                     "video_rule": "mean", "split": "val"}  # fmt: skip


def test_empty_split_is_a_clear_error_and_one_class_gives_null_auc():
    val = _predictions(4, split="val")
    with pytest.raises(InputError, match="test split holds no usable frames"):
        judge(_predictions(0, split="test"), val, EvaluateSettings(n_bootstrap=5))
    result, _, _ = judge(_predictions(3, split="test", one_class=1), val,
                         EvaluateSettings(n_bootstrap=5))  # fmt: skip
    assert result["patient"]["auc"]["value"] is None
    assert result["patient"]["auc"]["reason"]
    assert result["patient"]["sensitivity"]["value"] is not None
    one_class_val = judge(_predictions(3, split="test"), _predictions(2, split="val", one_class=0),
                          EvaluateSettings(n_bootstrap=5))[1]  # fmt: skip
    assert one_class_val["threshold"] == 0.5 and "one class" in one_class_val["reason"]


def test_small_splits_are_flagged_as_uninformative():
    def split(n_septic, n_other):  # two frames per patient
        ids = [f"s{i}" for i in range(n_septic)] + [f"n{i}" for i in range(n_other)]
        frames = pd.DataFrame({"patient_id": ids, "y": [1] * n_septic + [0] * n_other})
        return pd.concat([frames, frames], ignore_index=True)

    note = small_split_note(split(2, 3), "test")
    assert note.startswith("only 5 test patients (2 septic, 3 non-septic)")
    assert "not informative" in note
    assert "move a lot" in small_split_note(split(5, 6), "test")
    assert small_split_note(split(10, 12), "test") is None


def test_figures_are_valid_pngs(tmp_path):
    from sepsiscope.classifier._figures import confusion_figure, reliability_figure, roc_figure

    test = _predictions(6, split="test")
    result, _, tables = judge(test, _predictions(4, split="val"), EvaluateSettings(n_bootstrap=5))
    paths = [
        roc_figure(tables, result, tmp_path / "roc.png", split="test", baseline=level_tables(test)),
        confusion_figure(tables, tmp_path / "confusion.png", threshold=0.5, split="test"),
        reliability_figure(tables, tmp_path / "reliability.png", split="test"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_run_without_a_model_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 2
    assert "run `sepsiscope train` first" in result.output
    assert not RunLayout(tmp_path / "run").evaluation.exists()


# --- end to end: simulate -> ingest -> train (1 epoch) -> evaluate --------------------------------


TINY_TRAIN = {"epochs": 1, "batch_size": 8, "seed": 0, "num_workers": 0}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A real store: 10 simulated patients (5 septic), one 1-s video each, 2 folds."""
    from sepsiscope.data.ingest import IngestSettings, ingest
    from sepsiscope.simulate import SimulateSettings, simulate_cohort

    root = tmp_path_factory.mktemp("evaluate")
    simulate_cohort(
        root / "cohort",
        SimulateSettings(patients=10, videos_per_patient=1, seconds=1.0, width=96, height=80),
        quiet=True,
    )
    ingest(
        root / "cohort" / "manifest.csv",
        root / "store",
        IngestSettings(size=32, rate_hz=6, folds=2, min_duration_s=0, optimal_duration_s=0),
        quiet=True,
    )
    return root / "store"


@pytest.fixture(scope="module")
def trained_run(store_dir):
    from sepsiscope.classifier.train import TrainSettings, train

    train(store_dir, store_dir.parent / "run", TrainSettings.build(**TINY_TRAIN), quiet=True)
    return store_dir.parent


@pytest.mark.slow
def test_evaluate_end_to_end_writes_metrics_tables_figures(trained_run):
    run = RunLayout(trained_run / "run")
    result = runner.invoke(
        app, ["evaluate", str(run.root), "--bootstrap", "40", "--quiet", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["metrics"] == str(run.evaluation_metrics)
    assert summary["split"] == "test" and summary["n_patients"] == 2
    assert set(summary["patient_auc"]) == {"value", "interval"}
    assert 0 <= summary["threshold"] <= 1
    metrics = json.loads(run.evaluation_metrics.read_text())
    for level in LEVELS:
        for m in METRICS:
            assert {"value", "interval", "n_resamples"} <= set(metrics[level][m])
    assert set(metrics["baseline"]) >= {*LEVELS, "network_minus_baseline", "coefficients"}
    gain = metrics["baseline"]["network_minus_baseline"]["patient"]["auc"]
    network = metrics["patient"]["auc"]["value"]
    assert gain["value"] == pytest.approx(network - metrics["baseline"]["patient"]["auc"]["value"])
    assert summary["network_minus_baseline_patient_auc"]["value"] == gain["value"]
    threshold = json.loads(run.threshold.read_text())
    assert threshold["threshold"] == summary["threshold"] and threshold["split"] == "val"
    patients = pd.read_parquet(run.evaluation_patients)
    assert list(patients.columns[:5]) == ["patient_id", "label", "y", "probability", "n_videos"]
    assert set(patients["split"]) == {"test"}
    frames = pd.read_parquet(run.evaluation_frames)
    assert frames["probability"].between(0, 1).all()
    # The patient score is the mean of its videos, each the mean of its frames.
    video_means = frames.groupby(["patient_id", "video_id"])["probability"].mean()
    expected = video_means.groupby("patient_id").mean()
    got = patients.set_index("patient_id")["probability"]
    assert np.allclose(got.sort_index(), expected.sort_index())
    for png in (run.roc_figure, run.confusion_figure, run.reliability_figure,
                run.reliability_calibrated_figure):  # fmt: skip
        assert png.read_bytes()[:8] == PNG_MAGIC
    # calibration: a temperature fitted on validation, Brier and ECE before and after, per level
    temperature = json.loads(run.calibration.read_text())["temperature"]
    assert metrics["calibration"]["temperature"] == temperature > 0
    assert summary["calibration"]["temperature"] == temperature
    for level in LEVELS:
        assert {"brier_before", "brier_after", "ece_before", "ece_after"} <= set(
            metrics["calibration"][level]
        )


@pytest.mark.slow
def test_frame_split_run_is_flagged_as_leaky(store_dir):
    from sepsiscope.classifier.evaluate import evaluate
    from sepsiscope.classifier.train import TrainSettings, train

    run = store_dir.parent / "run_frame"
    train(store_dir, run, TrainSettings.build(**TINY_TRAIN, split_by="frame"), quiet=True)
    summary = evaluate(run, EvaluateSettings(n_bootstrap=10, baseline=False), quiet=True)
    metrics = json.loads(RunLayout(run).evaluation_metrics.read_text())
    assert metrics["split_by"] == "frame" and metrics["baseline"] is None
    assert any("LEAKAGE" in note for note in summary["notes"])
    # The evaluated frames come from patients that also gave training frames.
    frames = pd.read_parquet(RunLayout(run).evaluation_frames)
    assert frames["patient_id"].nunique() > 2


@pytest.mark.slow
def test_crossval_gives_every_patient_one_out_of_fold_score(store_dir):
    from sepsiscope.data.store import FrameStore

    out = store_dir.parent / "cv"
    args = ["crossval", "--store", str(store_dir), "--out", str(out), "--epochs", "1",
            "--bootstrap", "20", "--quiet", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_folds"] == 2 and summary["n_patients"] == 10
    layout = RunLayout(out)
    patients = pd.read_parquet(layout.oof_patients)
    folds = FrameStore(store_dir).splits["folds"]
    assert sorted(patients["patient_id"]) == sorted(sum(folds, []))  # each patient once
    for i, fold in enumerate(folds):
        assert set(patients.loc[patients["fold"] == i, "patient_id"]) == set(fold)
    metrics = json.loads(layout.crossval_metrics.read_text())
    for level in LEVELS:
        assert {"mean", "std", "min", "max", "n_folds"} <= set(metrics["folds"][level]["auc"])
        assert {"value", "interval"} <= set(metrics["pooled"][level]["auc"])
        assert {"brier_before", "ece_after"} <= set(metrics["calibration"][level])
    # calibrated out of fold: each fold's temperature is the one its own evaluation fitted
    fold_t = [json.loads(layout.fold(i).calibration.read_text())["temperature"]
              for i in range(len(folds))]  # fmt: skip
    assert metrics["calibration"]["temperature_by_fold"] == pytest.approx(fold_t)
    # Finished folds are kept: a second call trains nothing and gives the same figures.
    model_time = layout.fold(0).model.stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["pooled_patient_auc"] == summary["pooled_patient_auc"]
    assert layout.fold(0).model.stat().st_mtime_ns == model_time
    wrong = runner.invoke(app, [*args[:5], "--folds", "5", "--json"])
    assert wrong.exit_code == 2 and "holds 2 folds" in wrong.output
