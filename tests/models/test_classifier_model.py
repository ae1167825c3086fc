"""The 10-layer ResNet18-based network: shapes, size, torchvision-named initialisation, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sepsiscope.errors import InputError
from sepsiscope.models.classifier import (
    FEATURE_DIM,
    BasicBlock,
    SepsisNet,
    count_weighted_layers,
    load_resnet18_trunk,
    prepare_batch,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _TorchvisionResNet18(nn.Module):
    """The full ResNet18 with torchvision's parameter names (layer3, layer4, fc 1000)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.fc = nn.Linear(512, 1000)


def _imagenet_like_state(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = _TorchvisionResNet18().state_dict()
    return {
        k: (torch.randn_like(v.float()) if v.is_floating_point() else v) for k, v in state.items()
    }


def test_shapes_features_and_head():
    model = SepsisNet().eval()
    x = prepare_batch(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert model.forward_feature_map(x).shape == (2, 128, 8, 8)
    features = model.forward_features(x)
    assert features.shape == (2, FEATURE_DIM)
    logits = model(x)
    assert logits.shape == (2,)
    assert torch.allclose(model.forward_head(features), logits)


def test_parameter_count_and_ten_weighted_layers():
    model = SepsisNet()
    assert sum(p.numel() for p in model.parameters()) == 683_201
    assert count_weighted_layers(model) == 10


def test_torchvision_resnet18_state_dict_initialises_the_trunk_only(tmp_path):
    from safetensors.torch import save_file

    state = _imagenet_like_state()
    assert {"layer3.0.conv1.weight", "layer4.1.bn2.running_var", "fc.weight"} <= set(state)
    model = SepsisNet()
    head_before = model.fc.weight.clone()
    loaded = load_resnet18_trunk(model, state)
    own = model.state_dict()
    assert loaded == sum(k.startswith(("conv1.", "bn1.", "layer1.", "layer2.")) for k in state)
    for key in ("conv1.weight", "layer2.1.conv2.weight", "layer2.0.downsample.0.weight"):
        assert torch.equal(own[key], state[key])
    assert torch.equal(model.fc.weight, head_before)  # the 1000-class head is ignored
    # the same from files: safetensors and a torch.save'd DataParallel-style dict
    save_file(state, str(tmp_path / "r18.safetensors"))
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "r18.pth")
    for path in (tmp_path / "r18.safetensors", tmp_path / "r18.pth"):
        other = SepsisNet()
        assert load_resnet18_trunk(other, path) == loaded
        assert torch.equal(other.state_dict()["layer1.0.bn1.running_mean"],
                           state["layer1.0.bn1.running_mean"])  # fmt: skip


def test_bad_initialisation_sources_are_clear_errors(tmp_path):
    state = _imagenet_like_state()
    missing = {k: v for k, v in state.items() if not k.startswith("layer2.1.")}
    with pytest.raises(InputError, match="missing"):
        load_resnet18_trunk(SepsisNet(), missing)
    wrong = dict(state, **{"conv1.weight": torch.zeros(64, 1, 7, 7)})
    with pytest.raises(InputError, match="shape"):
        load_resnet18_trunk(SepsisNet(), wrong)
    junk = tmp_path / "weights.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not a loadable state dict"):
        load_resnet18_trunk(SepsisNet(), junk)


def test_no_nan_on_flat_dark_and_bright_frames_in_fp32_and_bf16():
    model = SepsisNet().eval()
    x = torch.stack([torch.zeros(3, 48, 48), torch.full((3, 48, 48), 255.0),
                     torch.randint(0, 256, (3, 48, 48)).float()]).to(torch.uint8)  # fmt: skip
    inputs = prepare_batch(x)
    assert torch.isfinite(inputs).all()
    assert torch.equal(inputs[0], torch.zeros_like(inputs[0]))  # flat frame -> zeros, not NaN
    with torch.no_grad():
        assert torch.isfinite(model(inputs)).all()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.isfinite(model(inputs).float()).all()


def test_prepare_batch_modes():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    single = prepare_batch(x, "single")
    assert torch.equal(single[:, 0], single[:, 1]) and torch.equal(single[:, 0], single[:, 2])
    time = prepare_batch(x, "time")
    assert not torch.equal(time[:, 0], time[:, 1])
    for out in (single, time):
        assert out.dtype == torch.float32 and out.shape == x.shape
        np.testing.assert_allclose(out.mean(dim=(1, 2, 3)).numpy(), 0, atol=1e-5)
    with pytest.raises(ValueError, match="unknown input mode"):
        prepare_batch(x, "video")


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), shift=st.integers(0, 55))
def test_prepare_batch_ignores_a_uniform_brightness_shift(seed, shift):
    """Per-sample standardisation: illumination offsets between cameras do not reach the net."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 201, (2, 3, 8, 8), dtype=np.uint8))
    torch.testing.assert_close(prepare_batch(x + shift), prepare_batch(x), atol=1e-5, rtol=0)
