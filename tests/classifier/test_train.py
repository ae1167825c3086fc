"""Training on a tiny store: outputs, model loading, resume, reproducibility, bad inputs, CLI."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from _train_store import write_tiny_store
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from sepsiscope._io import write_json
from sepsiscope.classifier import train as train_mod
from sepsiscope.classifier._augment import augment_batch
from sepsiscope.classifier._train_data import spread_rows
from sepsiscope.classifier.inference import infer, load_classifier, predict_store
from sepsiscope.classifier.train import (
    NonFiniteError,
    TrainSettings,
    recalibrate_batchnorm,
    split_tables,
    train,
)
from sepsiscope.cli import app
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import SepsisNet, prepare_batch

FAST = dict(batch_size=8, precision="fp32", schedule="none", checkpoint_every_n_steps=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_tiny_store(tmp_path_factory.mktemp("train") / "store").root


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    settings = TrainSettings(epochs=2, **{**FAST, "schedule": "cosine"})
    return run, train(store, run, settings, quiet=True)


def _weights(path):
    return load_file(str(path))


def _ckpt_weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_training_writes_model_checkpoints_logs_and_result(trained):
    run, result = trained
    layout = RunLayout(run)
    for path in (layout.model, layout.model_settings, layout.train_log, layout.train_result,
                 layout.checkpoints / "last.ckpt", layout.checkpoints / "best.ckpt"):  # fmt: skip
        assert path.exists(), path
    log = pd.read_csv(layout.train_log)
    assert list(log["epoch"]) == [0, 1]
    assert {"train_loss", "val_loss", "val_patient_auc", "val_frame_auc"} <= set(log.columns)
    assert result["epochs_run"] == 2 and result["global_step"] == 8  # 32 train frames / 8
    assert result["train_patients"] == 4 and result["val_patients"] == 4
    assert result["best_val_patient_auc"] == pytest.approx(log["val_patient_auc"].max())
    assert result["in_memory"] and result["pos_weight"] == 1.0
    assert json.loads(layout.train_result.read_text())["model"] == str(layout.model)
    saved = json.loads(layout.model_settings.read_text())
    assert saved["settings"]["input_mode"] == "single" and saved["store"]
    assert not list(layout.classifier.glob("**/*.tmp"))


def test_final_model_is_the_best_checkpoint_and_reproduces_its_val_auc(trained, store):
    run, result = trained
    layout = RunLayout(run)
    best = {
        k.removeprefix("model."): v
        for k, v in _ckpt_weights(layout.checkpoints / "best.ckpt").items()
    }
    for key, value in _weights(layout.model).items():
        assert torch.equal(value, best[key])
    model, settings = load_classifier(run)
    assert settings.input_mode == "single" and not model.training
    frames = FrameStore(store)
    predicted = predict_store(model, settings, frames, frames.samples("val"), precision="fp32")
    # the patient score of `evaluate`: mean of each video, then of the patient's videos
    by_video = predicted.groupby(["patient_id", "video_id"])[["probability", "y"]].mean()
    by_patient = by_video.groupby("patient_id").mean()
    auc = roc_auc_score(by_patient["y"], by_patient["probability"])
    assert auc == pytest.approx(result["best_val_patient_auc"], abs=1e-6)
    samples = frames.read_table(frames.samples("val").head(5))
    probs, feats = infer(model, samples, input_mode="single", precision="fp32", with_features=True)
    assert probs.shape == (5,) and feats.shape == (5, 128)
    np.testing.assert_allclose(probs, predicted["probability"].head(5), atol=1e-6)
    bf16 = infer(model, samples, input_mode="single", precision="bf16")
    np.testing.assert_allclose(bf16, probs, atol=0.05)


def _bn_stats_of_one_batch(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Running mean/var that BatchNorm computes from ``x`` as a single batch (momentum 1)."""
    model = copy.deepcopy(model).train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        model(x)
    return {
        k: v for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))
    }


def test_recalibrate_batchnorm_replaces_wrong_statistics_and_restores_the_layers():
    torch.manual_seed(0)
    model = SepsisNet().eval()
    x = prepare_batch(torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:  # deliberately wrong, as after a few steps of a lagging running average
        m.running_mean.fill_(5.0)
        m.running_var.fill_(100.0)
        m.num_batches_tracked.fill_(7)
    wrong = model(x)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    assert recalibrate_batchnorm(model, []) == 0  # nothing seen: statistics kept
    assert all(float(m.running_var[0]) == 100.0 for m in norms)
    expected = _bn_stats_of_one_batch(model, x)
    assert recalibrate_batchnorm(model, [x]) == 12
    state = model.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(state[k], v) for k, v in weights.items())  # incl. num_batches_tracked
    assert not model.training and all(not m.training and m.momentum == 0.1 for m in norms)
    assert (model(x) - wrong).abs().max() > 0.1
    # two equal halves: the first layer's mean is the mean of the halves' means, i.e. exact
    recalibrate_batchnorm(model, [x[:6], x[6:]])
    torch.testing.assert_close(model.bn1.running_mean, expected["bn1.running_mean"])


def test_checkpoints_hold_batchnorm_statistics_of_the_unaugmented_train_samples(store, tmp_path):
    # batch 16: the calibration batches (2 x 16) hold all 32 train samples at once, so the
    # statistics equal those of one batch of them exactly
    settings = TrainSettings(epochs=2, **{**FAST, "batch_size": 16})
    result = train(store, tmp_path / "run", settings, quiet=True)
    layout = RunLayout(tmp_path / "run")
    frames = FrameStore(store)
    x = prepare_batch(torch.from_numpy(frames.read_table(frames.samples("train"))), "single")
    for ckpt in ("last", "best"):
        weights = _ckpt_weights(layout.checkpoints / f"{ckpt}.ckpt")
        state = {k.removeprefix("model."): v for k, v in weights.items()}
        model = SepsisNet()
        model.load_state_dict(state)
        for key, value in _bn_stats_of_one_batch(model, x).items():
            torch.testing.assert_close(state[key], value, rtol=1e-4, atol=1e-5, msg=key)
        if ckpt == "best":  # the exported model carries them too
            saved = _weights(result["model"])
            assert all(torch.equal(saved[k], state[k]) for k in state if "running" in k)
    # the statistics do not steer training (train mode normalises by the batch): same weights
    off = settings.model_copy(update={"bn_calibration_samples": 0})
    train(store, tmp_path / "off", off, quiet=True)
    on, without = (_ckpt_weights(tmp_path / f"{r}/classifier/checkpoints/last.ckpt")
                   for r in ("run", "off"))  # fmt: skip
    assert all(torch.equal(on[k], without[k]) for k in on if "running" not in k)
    assert not torch.equal(on["model.bn1.running_var"], without["model.bn1.running_var"])


def test_spread_rows_gives_patients_and_videos_equal_shares_under_the_cap():
    table = pd.DataFrame({
        "patient_id": ["a"] * 60 + ["b"] * 30 + ["c"] * 10,
        "video_id": ["a0"] * 50 + ["a1"] * 10 + ["b0"] * 30 + ["c0"] * 10,
    })  # fmt: skip
    assert np.array_equal(spread_rows(table, 100, seed=0), np.arange(100))
    rows = spread_rows(table, 45, seed=0)
    assert len(rows) == 45 and len(set(rows)) == 45 and np.all(np.diff(rows) > 0)
    chosen = table.iloc[rows]
    # c has only 10 rows; a and b share the rest equally, a's two videos alike
    assert chosen["patient_id"].value_counts().to_dict() == {"a": 18, "b": 17, "c": 10}
    assert chosen["video_id"].value_counts()[["a0", "a1"]].tolist() == [9, 9]
    assert np.array_equal(rows, spread_rows(table, 45, seed=0))
    assert not np.array_equal(rows, spread_rows(table, 45, seed=1))


def test_same_seed_gives_identical_weights(store, tmp_path):
    runs = [train(store, tmp_path / f"r{i}", TrainSettings(epochs=1, **FAST), quiet=True)
            for i in range(2)]  # fmt: skip
    a, b = (_weights(r["model"]) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(store, tmp_path / "r2", TrainSettings(epochs=1, seed=1, **FAST), quiet=True)
    assert not torch.equal(_weights(other["model"])["fc.weight"], a["fc.weight"])


def test_lazy_store_reading_trains_the_same_model_as_in_memory(store, tmp_path, trained):
    run, result = trained
    lazy = TrainSettings(epochs=2, in_memory_limit_gb=0, num_workers=0,
                         **{**FAST, "schedule": "cosine"})  # fmt: skip
    lazy_result = train(store, tmp_path / "lazy", lazy, quiet=True)
    assert not lazy_result["in_memory"] and result["in_memory"]
    a, b = _weights(lazy_result["model"]), _weights(RunLayout(run).model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_killed_mid_epoch_resumes_to_the_same_weights(store, tmp_path, monkeypatch):
    settings = TrainSettings(epochs=2, **FAST)
    train(store, tmp_path / "whole", settings, quiet=True)
    original = train_mod.SepsisModule.training_step

    def killed_at_step_6(self, batch, batch_idx):  # 4 steps per epoch: dies mid-epoch 2
        if self.global_step == 6:
            raise RuntimeError("simulated kill")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(train_mod.SepsisModule, "training_step", killed_at_step_6)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(store, tmp_path / "killed", settings, quiet=True)
    assert not RunLayout(tmp_path / "killed").model.exists()
    last = tmp_path / "killed/classifier/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 6
    monkeypatch.setattr(train_mod.SepsisModule, "training_step", original)
    with pytest.raises(InputError, match="--resume"):  # no silent restart over a run
        train(store, tmp_path / "killed", settings, quiet=True)
    result = train(store, tmp_path / "killed", settings, quiet=True, resume=True)
    assert result["global_step"] == 8
    whole, resumed = (_ckpt_weights(tmp_path / f"{r}/classifier/checkpoints/last.ckpt")
                      for r in ("whole", "killed"))  # fmt: skip
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_a_run_resumes_with_the_input_mode_it_was_trained_on(store, tmp_path):
    # runs from before session 7 were trained on time channels, today's default is single
    run = tmp_path / "time"
    train(store, run, TrainSettings(epochs=1, input_mode="time", **FAST), quiet=True)
    train(store, run, TrainSettings(epochs=2, **FAST), quiet=True, resume=True)
    assert TrainSettings.load(RunLayout(run).model_settings).input_mode == "time"
    with pytest.raises(InputError, match="resume with --input-mode time"):
        train(store, run, TrainSettings(epochs=3, input_mode="single", **FAST), quiet=True,
              resume=True)  # fmt: skip


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_checkpoints(store, tmp_path):
    with pytest.raises(NonFiniteError, match="learning rate"):
        train(store, tmp_path / "run", TrainSettings(epochs=2, **{**FAST, "lr": 1e30}), quiet=True)
    layout = RunLayout(tmp_path / "run")
    assert not layout.model.exists()
    for ckpt in layout.checkpoints.glob("*.ckpt"):
        assert all(torch.isfinite(v).all() for v in _ckpt_weights(ckpt).values()
                   if v.is_floating_point())  # fmt: skip


def test_bad_stores_and_files_are_refused_before_training(tmp_path, store, trained):
    one_class = write_tiny_store(tmp_path / "one", only_label=1).root
    with pytest.raises(InputError, match="only septic"):
        train(one_class, tmp_path / "r1", TrainSettings(epochs=1, **FAST), quiet=True)
    assert not (tmp_path / "r1").exists()
    empty_val = write_tiny_store(tmp_path / "ev", per_class=2, splits={
        "train": ["sep0", "non0", "sep1", "non1"], "val": [], "test": []}).root  # fmt: skip
    with pytest.raises(InputError, match="val split has no usable frames"):
        train(empty_val, tmp_path / "r2", TrainSettings(epochs=1, **FAST), quiet=True)
    old = write_tiny_store(tmp_path / "old", per_class=2)
    write_json(old.meta, {"format_version": 0, "settings": {"size": 32}})
    with pytest.raises(InputError, match="format 0 is not supported"):
        train(old.root, tmp_path / "r3", TrainSettings(epochs=1, **FAST), quiet=True)
    run = tmp_path / "copy"
    train(store, run, TrainSettings(epochs=1, **FAST), quiet=True)
    layout = RunLayout(run)
    (layout.checkpoints / "last.ckpt").write_bytes(b"\x80garbage")
    with pytest.raises(InputError, match="corrupted checkpoint"):
        train(store, run, TrainSettings(epochs=2, **FAST), quiet=True, resume=True)
    layout.model.write_bytes(b"PK\x03\x04 a zip, not safetensors")
    with pytest.raises(InputError, match="not a safetensors model file"):
        load_classifier(run)


def test_frame_split_is_leaky_and_says_so(store, tmp_path, caplog):
    settings = TrainSettings(epochs=1, split_by="frame", **FAST)
    tables = split_tables(FrameStore(store), split_by="frame")
    train_p, val_p = set(tables["train"]["patient_id"]), set(tables["val"]["patient_id"])
    assert train_p & val_p  # the leak this mode exists to measure
    assert sum(len(t) for t in tables.values()) == 80
    with caplog.at_level(logging.WARNING):
        result = train(store, tmp_path / "run", settings, quiet=True)
    assert "LEAKY SPLIT" in caplog.text and "LEAKY SPLIT" in result["warning"]
    split = pd.read_csv(result["frame_split"])
    assert set(split["split"]) == {"train", "val", "test"}


def test_fold_holds_its_patients_out_as_test(store):
    frames = FrameStore(store)
    folds = frames.splits["folds"]
    for i in range(3):
        tables = split_tables(frames, fold=i)
        parts = {n: set(t["patient_id"]) for n, t in tables.items()}
        assert parts["test"] == set(folds[i]) and parts["val"] == set(folds[(i + 1) % 3])
        assert not parts["train"] & (parts["val"] | parts["test"])
    with pytest.raises(InputError, match="fold 3 does not exist"):
        split_tables(frames, fold=3)


def test_augmentation_is_seeded_in_range_and_keeps_time_channels_registered():
    rng = np.random.default_rng(0)
    frame = torch.from_numpy(rng.integers(0, 256, (6, 1, 24, 24), dtype=np.uint8))
    x = frame.expand(-1, 3, -1, -1).contiguous()
    out = [augment_batch(x, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(out[0], out[1])
    assert out[0].shape == x.shape and out[0].min() >= 0 and out[0].max() <= 255
    assert not torch.equal(out[0], x.float())
    # identical channels stay aligned: only the per-channel sensor noise separates them
    assert (out[0][:, 0] - out[0][:, 2]).abs().mean() < 0.05 * 255
    on_gpu_path = augment_batch(x.float(), torch.Generator().manual_seed(5))  # tensor-op path
    assert on_gpu_path.shape == x.shape and 0 <= on_gpu_path.min() <= on_gpu_path.max() <= 255
    assert (on_gpu_path[:, 0] - on_gpu_path[:, 2]).abs().mean() < 0.05 * 255


def test_cli_train_json_and_bad_input_exit_status(store, tmp_path):
    runner = CliRunner()
    args = ["train", "--store", str(store), "--out", str(tmp_path / "run"), "--epochs", "1",
            "--batch-size", "16", "--precision", "fp32", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # the progress bar (not --quiet) stays off stdout
    assert payload["epochs_run"] == 1 and payload["input_mode"] == "single"
    assert "Epoch 1/1" in result.stderr and "Epoch 0" not in result.stderr  # counted from 1
    assert payload["precision_reason"] == "fp32 (as asked)"
    text = runner.invoke(app, args[:-1] + ["--overwrite", "--quiet"]).output
    assert "at epoch 1 of 1; precision fp32 (as asked)" in " ".join(text.split())
    assert RunLayout(tmp_path / "run").model.exists()
    bad = runner.invoke(app, ["train", "--store", str(tmp_path / "nowhere"), "--out",
                              str(tmp_path / "r2"), "--json"])  # fmt: skip
    assert bad.exit_code == 2 and "run `sepsiscope ingest` first" in bad.output


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(store, tmp_path):
    settings = TrainSettings(epochs=1, **FAST, accelerator="cpu", devices=2, strategy="ddp_spawn")
    result = train(store, tmp_path / "run", settings, quiet=True)
    assert result["global_step"] == 2  # 32 frames / 2 processes / 8 frames per batch
    assert RunLayout(tmp_path / "run").model.exists()


def test_the_progress_bar_pickles_as_ddp_spawn_needs():
    import pickle

    from sepsiscope._progress import lightning_progress

    (bar,) = lightning_progress(False)
    assert type(pickle.loads(pickle.dumps(bar))).__name__ == "EpochBar"
