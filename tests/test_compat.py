"""A run folder made before the package was regrouped (tests/fixtures/run_v0_1, made by commit
a49fcbb) still loads, predicts, evaluates, reports and resumes training with today's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
    """A copy of the old folder whose training names a store on "the machine it came from" (a
    path that does not exist here), as a run folder copied from elsewhere does."""
    root = Path(shutil.copytree(FIXTURE, tmp_path / "old"))
    settings = root / "run" / "classifier" / "settings.json"
    recorded = json.loads(settings.read_text())
    assert recorded["store"] == "/tmp/legacy/store"  # as commit a49fcbb wrote it
    recorded["store"] = str(tmp_path / "machine-it-came-from" / "store")
    settings.write_text(json.dumps(recorded))
    return root


def test_old_run_loads_with_its_sampling_and_threshold(old):
    model, info = load_run(old / "run")
    assert (info.size, info.input_mode, info.crop, info.rate_hz) == (48, "time", "center", 10.0)
    assert info.threshold == pytest.approx(0.4508333203501268)
    assert not model.training
    autoencoder, settings = load_autoencoder(old / "run")
    assert autoencoder.bottleneck == 1152 and tuple(settings.bottleneck) == (1152,)


def test_old_run_predicts_a_video(old, tmp_path):
    result = predict(old / "run", old / VIDEO, PredictSettings(out=tmp_path / "p"), quiet=True)
    assert 0 < result["probability"] < 1 and result["frames_used"] > 0
    assert result["verdict"] in ("septic", "non-septic")


def test_old_run_evaluates_on_its_store_named_or_beside(old):
    run = RunLayout(old / "run")
    assert run.trained_store() == old.parent / "machine-it-came-from" / "store"
    with pytest.raises(InputError, match="not there now"):
        evaluate(old / "run", EvaluateSettings())
    result = evaluate(old / "run", EvaluateSettings(store=old / "store"), quiet=True)
    patients = pd.read_parquet(run.evaluation_patients)
    assert (result["split"], result["n_patients"], len(patients)) == ("test", 2, 2)
    # today's code fixes the same threshold on the old run's validation patients
    assert result["threshold"] == pytest.approx(0.4508333203501268)


def test_old_run_reports_finding_the_store_beside_it(old):
    result = report(old / "run", quiet=True)
    assert result["store"] == str(old / "store")
    expected_missing = {"crossval"}  # the old demo ran no cross-validation
    assert {k for k, v in result["sections"].items() if v != "ok"} == expected_missing
    assert Path(result["report"]).stat().st_size > 10_000


def test_old_measurements_feed_interpret(old):
    result = interpret(old / "run" / "measurements")
    assert result["models"][0]["n_patients"] == 6


def test_old_checkpoint_resumes_training_in_the_copied_folder(old):
    run = RunLayout(old / "run")
    # a one-epoch run: its best.ckpt held the same weights as last.ckpt (left out of the fixture)
    shutil.copy(run.checkpoints / "last.ckpt", run.checkpoints / "best.ckpt")
    saved = TrainSettings.load(run.model_settings)
    settings = saved.model_copy(update={"epochs": 2, "bn_calibration_samples": 64})
    result = train(old / "store", old / "run", settings, quiet=True, resume=True)
    assert result["epochs_run"] == 2 and result["global_step"] >= 2
    # epoch 1 only: the fixture left out the old run's Lightning logs (epoch 0)
    assert list(pd.read_csv(run.train_log)["epoch"]) == [1]
    model, _ = load_run(old / "run")
    assert not model.training
    assert RunLayout(old / "run").trained_store() == (old / "store").resolve()
