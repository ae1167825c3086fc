"""A run folder made before the package was regrouped (tests/fixtures/run_v0_1, made by commit
a49fcbb) still loads, predicts, evaluates, reports and resumes training with today's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsiscope.apply._runinfo import load_run
from sepsiscope.apply.predict import PredictSettings, predict
from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate
from sepsiscope.classifier.train import TrainSettings, train
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.microcirculation.interpret import interpret
from sepsiscope.reporting.report import report
from sepsiscope.representations.autoencode import load_autoencoder

FIXTURE = Path(__file__).parent / "fixtures" / "run_v0_1"
VIDEO = "cohort/videos/P001_site1.avi"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A copy of the old folder: its JSON still names /tmp/legacy, as a copied run's does."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "old"))


def test_old_run_loads_with_its_sampling_and_threshold(old):
    model, info = load_run(old / "run")
    assert (info.size, info.input_mode, info.crop, info.rate_hz) == (48, "time", "center", 10.0)
    assert info.threshold == pytest.approx(0.4508333203501268)
    assert not model.training
    autoencoder, settings = load_autoencoder(old / "run")
    assert settings.bottlenecks == [1152] or 1152 in settings.bottlenecks


def test_old_run_predicts_a_video(old, tmp_path):
    result = predict(old / "run", old / VIDEO, PredictSettings(out=tmp_path / "p"), quiet=True)
    assert 0 < result["probability"] < 1 and result["frames_used"] > 0
    assert result["verdict"] in ("septic", "non-septic")


def test_old_run_evaluates_on_its_store_named_or_beside(old):
    run = RunLayout(old / "run")
    assert str(run.trained_store()) == "/tmp/legacy/store"  # what the old run recorded
    with pytest.raises(InputError, match="not there now"):
        evaluate(old / "run", EvaluateSettings())
    result = evaluate(old / "run", EvaluateSettings(store=old / "store"), quiet=True)
    patients = pd.read_parquet(run.evaluation_patients)
    assert set(patients["split"]) <= {"val", "test"} and len(patients) >= 2
    assert "test" in result["levels"] or "metrics" in result


def test_old_run_reports_finding_the_store_beside_it(old):
    result = report(old / "run", quiet=True)
    assert result["store"] == str(old / "store")
    assert result["sections"]["classifier"] == "ok" or "ok" in result["sections"].values()
    assert Path(result["report"]).stat().st_size > 10_000


def test_old_measurements_feed_interpret(old):
    result = interpret(old / "run" / "measurements")
    assert result["models"][0]["n_patients"] == 6


def test_old_checkpoint_resumes_training_in_the_copied_folder(old):
    run = RunLayout(old / "run")
    # a one-epoch run: its best.ckpt held the same weights as last.ckpt (left out of the fixture)
    shutil.copy(run.checkpoints / "last.ckpt", run.checkpoints / "best.ckpt")
    before = run.model.read_bytes()
    saved = TrainSettings.load(run.model_settings)
    settings = saved.model_copy(update={"epochs": 2, "bn_calibration_samples": 64})
    result = train(old / "store", old / "run", settings, quiet=True, resume=True)
    assert result["epochs_run"] == 2 and result["global_step"] >= 2
    assert run.model.read_bytes() != before or np.isfinite(result["pos_weight"])
    assert RunLayout(old / "run").trained_store() == (old / "store").resolve()
