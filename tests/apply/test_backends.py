"""Inference back ends agree; the ONNX export is self-contained and fails clearly when broken."""

from __future__ import annotations

import numpy as np
import pytest
from _predict_fixtures import SIZE, make_run, tiny_model, vessel_frames, write_test_video
from typer.testing import CliRunner

from sepsiscope.apply.backends import OnnxBackend, TorchBackend, load_backend
from sepsiscope.apply.export import export_model_onnx
from sepsiscope.cli import app
from sepsiscope.data.frame_quality import make_samples
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout

ONNX_TOLERANCE = 1e-4  # max |Δp|, ONNX Runtime vs torch fp32
BF16_TOLERANCE = 0.02  # max |Δp|, torch bf16 autocast vs fp32 (measured ~5e-3 here)


def _samples(n: int = 12) -> np.ndarray:
    frames = vessel_frames(n + 2)
    real = np.concatenate(
        [make_samples(np.stack(frames[i : i + 3]), size=SIZE) for i in range(n // 2)]
    )
    noise = np.random.default_rng(1).integers(0, 256, (n - len(real), 3, SIZE, SIZE), np.uint8)
    return np.concatenate([real, noise])


@pytest.mark.parametrize("mode", ["time", "single"])
def test_onnx_and_bf16_agree_with_fp32(tmp_path, mode):
    model, samples = tiny_model(), _samples()
    fp32 = TorchBackend(model, input_mode=mode, freeze=False)(samples)  # eager: the reference
    assert fp32.shape == (len(samples),) and ((fp32 >= 0) & (fp32 <= 1)).all()
    assert fp32.std() > 1e-3  # the check means something only if outputs vary
    path = export_model_onnx(model, tmp_path / "m.onnx", input_mode=mode, size=SIZE)
    onnx = OnnxBackend(path)
    assert onnx.metadata["input_mode"] == mode
    assert np.abs(onnx(samples) - fp32).max() < ONNX_TOLERANCE
    assert np.abs(onnx(samples[:1]) - fp32[:1]).max() < ONNX_TOLERANCE  # dynamic batch
    # the full batch is frozen the second time it comes; the partial tail always runs eager
    frozen = TorchBackend(model, input_mode=mode, batch_size=8)
    for _ in range(2):
        assert np.abs(frozen(samples) - fp32).max() < 1e-5
    assert list(frozen._frozen) == [(8, 3, SIZE, SIZE)]
    bf16 = TorchBackend(model, input_mode=mode, precision="bf16", batch_size=len(samples))
    for _ in range(2):  # eager autocast, then the frozen bf16 graph
        assert np.abs(bf16(samples) - fp32).max() < BF16_TOLERANCE
    assert len(bf16._frozen) == 1


def test_single_mode_ignores_later_channels():
    samples = _samples(4)
    changed = samples.copy()
    changed[:, 1:] = 255 - changed[:, 1:]
    backend = TorchBackend(tiny_model(), input_mode="single")
    np.testing.assert_allclose(backend(samples), backend(changed), atol=1e-6)


def test_corrupted_onnx_and_missing_model_give_clear_messages(tmp_path):
    run = make_run(tmp_path / "run")
    RunLayout(run).onnx.write_bytes(b"this is not a protobuf")
    with pytest.raises(InputError, match="not a valid ONNX model"):
        load_backend(run, "onnx")
    runner = CliRunner()
    video = write_test_video(tmp_path / "v.avi", n=8)
    result = runner.invoke(app, ["predict", str(run), str(video), "--backend", "onnx", "--json"])
    assert result.exit_code == 2 and "not a valid ONNX model" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["export", str(empty), "--json"])
    assert result.exit_code == 2 and "sepsiscope train" in result.output
    with pytest.raises(InputError, match="unknown back end"):
        load_backend(run, "tpu")


def test_export_cli_json_and_auto_backend(tmp_path):
    import json

    import onnx
    from safetensors.torch import save_file

    run = make_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["export", str(run), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    layout = RunLayout(run)
    assert payload["onnx"] == str(layout.onnx) and payload["opset"] >= 17
    assert payload["max_abs_diff"] < ONNX_TOLERANCE and payload["input"]["dtype"] == "uint8"
    onnx.checker.check_model(onnx.load(payload["onnx"]), full_check=True)
    assert load_backend(run, "auto").name == "onnx"
    assert load_backend(run, "fp32").name == "fp32"
    # weights replaced after the export: the stale ONNX file is refused, auto falls back
    save_file(tiny_model(seed=3).state_dict(), str(layout.model))
    with pytest.raises(InputError, match="other weights"):
        load_backend(run, "onnx")
    assert load_backend(run, "auto").name == "fp32"


def test_model_files_that_claim_other_settings_name_what_differs(tmp_path):
    import torch
    from safetensors.torch import save_file

    from sepsiscope._io import read_json, write_json
    from sepsiscope.classifier.inference import load_classifier

    run = make_run(tmp_path / "run")
    layout = RunLayout(run)
    assert CliRunner().invoke(app, ["export", str(run)]).exit_code == 0
    saved = read_json(layout.model_settings)
    saved["sampling"] = {**saved["sampling"], "size": SIZE * 2}  # the run now says other samples
    write_json(layout.model_settings, saved)
    with pytest.raises(InputError, match=rf"model.onnx does not match .*size {SIZE} in the file, "
                       rf"{SIZE * 2} in the run"):  # fmt: skip
        load_backend(run, "onnx")
    state = tiny_model().state_dict()
    state["fc.weight"] = torch.zeros(1, 64)  # another head
    del state["conv1.weight"]
    save_file(state, str(layout.model))
    differs = r"missing conv1.weight; fc.weight is \(1, 64\), not \(1, 128\)"
    with pytest.raises(InputError, match=rf"model.safetensors: .*SepsisNet classifier \({differs}"):
        load_classifier(run)


def test_int8_export_agrees_with_fp32_and_refuses_stale_weights(tmp_path):
    from pathlib import Path

    from _repr_data import make_classifier_run, make_store
    from safetensors.torch import save_file

    from sepsiscope.apply.export import export

    store = make_store(tmp_path / "store", size=64)
    run = make_classifier_run(tmp_path / "run", store)
    save_file(tiny_model().state_dict(), str(run.model))  # probabilities spread around 0.5
    result = export(run.root, int8=True)
    q = result["int8"]
    assert Path(q["onnx"]) == run.onnx_int8 and q["bytes"] < 0.5 * result["bytes"]
    assert q["n_calibration"] > 0 and q["n_check"] > 0
    assert q["max_abs_diff"] < 0.08 and q["mean_abs_diff"] < 0.02, q
    int8 = load_backend(run.root, "int8")
    assert int8.name == "int8" and int8.metadata["agreement_flips"] == str(q["flips"])
    from sepsiscope.data.store import FrameStore

    frames = FrameStore(store)  # in-distribution samples (noise is not what it was calibrated on)
    samples = frames.read_table(frames.samples("test"))
    assert np.abs(int8(samples) - load_backend(run.root, "onnx")(samples)).max() < 0.08
    assert load_backend(run.root, "auto").name == "onnx"  # int8 is never chosen silently
    save_file(tiny_model(seed=5).state_dict(), str(run.model))
    with pytest.raises(InputError, match="other weights.*--int8"):
        load_backend(run.root, "int8")
