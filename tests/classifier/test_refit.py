"""crossval --refit: one network on every patient, for the epochs the folds kept, no selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_store import write_tiny_store
from safetensors.torch import load_file

from sepsiscope._io import read_json
from sepsiscope.classifier.crossval import CrossvalSettings, crossval
from sepsiscope.classifier.ensemble import crossval_model
from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate
from sepsiscope.classifier.inference import infer, load_classifier
from sepsiscope.data.splits import split_tables
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.microcirculation.interpret import _network_patients

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(batch_size=8, precision="fp32", schedule="none", checkpoint_every_n_steps=1)


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory):
    store = write_tiny_store(tmp_path_factory.mktemp("refit") / "store").root
    run = tmp_path_factory.mktemp("cv") / "cv"
    settings = CrossvalSettings(train={**FAST, "epochs": 3, "patience": 1},
                                evaluate=EvaluateSettings(n_bootstrap=20), refit=True)  # fmt: skip
    result = crossval(store, run, settings, quiet=True)
    return store, RunLayout(run), result


def test_every_patient_trains_and_nothing_is_held_out(refit_run):
    store, _, _ = refit_run
    tables = split_tables(FrameStore(store), split_by="all")
    assert len(tables["val"]) == len(tables["test"]) == 0
    assert tables["train"]["patient_id"].nunique() == 10
    with pytest.raises(InputError, match="cannot be combined"):
        split_tables(FrameStore(store), split_by="all", fold=0)


def test_refit_runs_the_median_epoch_the_folds_kept_without_selection(refit_run):
    _, cv, result = refit_run
    refit = cv.refit
    assert result["refit"] == str(refit.root) and crossval_model(refit.root) == "refit"
    kept = [read_json(cv.fold(i).train_result)["best_epoch"] + 1 for i in range(3)]
    trained = read_json(refit.train_result)
    assert trained["refit"] and trained["epochs_run"] == int(np.median(kept))
    assert trained["train_patients"] == 10 and trained["val_frames"] == 0
    assert trained["best_epoch"] is None and not (refit.checkpoints / "best.ckpt").exists()
    record = read_json(refit.model_settings)["refit"]
    assert record["epochs_kept_by_folds"] == kept and record["epochs"] == trained["epochs_run"]


def test_refit_weights_are_the_last_epochs_with_batchnorm_recalibrated(refit_run):
    _, cv, _ = refit_run
    saved = load_file(str(cv.refit.model))
    last = torch.load(cv.refit.checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    last = {k.removeprefix("model."): v for k, v in last["state_dict"].items()}
    for name, value in saved.items():
        if "running_" in name:  # set afresh on unaugmented train samples
            continue
        assert torch.equal(value, last[name]), name
    assert any(not torch.equal(v, last[k]) for k, v in saved.items() if "running_mean" in k)


def test_refit_threshold_is_the_pooled_out_of_fold_one_and_it_predicts(refit_run):
    store, cv, _ = refit_run
    assert (
        read_json(cv.refit.threshold)["threshold"] == read_json(cv.ensemble.threshold)["threshold"]
    )
    assert "out-of-fold" in read_json(cv.refit.threshold)["source"]
    model, settings = load_classifier(cv.refit.root)
    table = FrameStore(store).samples(None)
    p = infer(model, FrameStore(store).read_table(table), input_mode=settings.input_mode)
    assert p.shape == (len(table),) and np.isfinite(p).all()


def test_a_refit_is_judged_by_its_cross_validation_only(refit_run):
    _, cv, _ = refit_run
    with pytest.raises(InputError, match="every patient"):
        evaluate(cv.refit.root, EvaluateSettings(n_bootstrap=20), quiet=True)
    patients, source = _network_patients(cv.refit.root)
    assert source == "crossval out-of-fold (the refit's folds)" and len(patients) == 10


def test_the_report_of_a_refit_shows_its_cross_validation(refit_run):
    from sepsiscope.reporting.report import ReportSettings, report

    _, cv, _ = refit_run
    result = report(cv.refit.root, ReportSettings(synthetic=True), quiet=True)
    html = (cv.refit.root / "report.html").read_text(encoding="utf-8")
    assert result["sections"]["crossval"] == "ok"
    assert "one network refit on every patient" in html and "10 patients" in html


def test_a_second_crossval_keeps_the_finished_refit(refit_run):
    store, cv, _ = refit_run
    before = cv.refit.model.stat().st_mtime_ns
    settings = CrossvalSettings(train={**FAST, "epochs": 3, "patience": 1},
                                evaluate=EvaluateSettings(n_bootstrap=20), refit=True)  # fmt: skip
    crossval(store, cv.root, settings, quiet=True)
    assert cv.refit.model.stat().st_mtime_ns == before
