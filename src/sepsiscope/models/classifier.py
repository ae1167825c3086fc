"""The reference study's 10-layer network based on ResNet18 (Javia et al., ICMLA 2018).

ResNet18's stem (1 conv), ``layer1`` (2 basic blocks, 4 convs, 64 channels) and ``layer2``
(2 basic blocks, 4 convs, 128 channels), global average pooling and a linear head: 10 weighted
layers (the 1x1 shortcut projection is not counted, as in ResNet's own count). The pooled output of
``layer2`` is the 128-d feature vector. Parameter names follow torchvision's ``resnet18`` so an
ImageNet state dict initialises the trunk (:func:`load_resnet18_trunk`); nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from sepsiscope.errors import InputError

FEATURE_DIM = 128
INPUT_MODES = ("single", "time")
_TRUNK_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.")


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block, named as in torchvision."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SepsisNet(nn.Module):
    """ResNet18 truncated after ``layer2``, with a linear head giving one logit (septic).

    Input ``(n, 3, H, W)`` float (see :func:`prepare_batch`); ``forward`` gives ``(n,)`` logits.
    """

    def __init__(self, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        """``layer2``'s output, ``(n, 128, H/8, W/8)``: the last convolutional layer."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer2(self.layer1(x))

    def forward_features(self, x: Tensor) -> Tensor:
        """The 128-d pooled features of the last convolutional layer, ``(n, 128)``."""
        return torch.flatten(self.avgpool(self.forward_feature_map(x)), 1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits ``(n,)`` from 128-d features."""
        return self.fc(self.dropout(features)).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def count_weighted_layers(model: nn.Module) -> int:
    """Convolutions and linear layers, not counting 1x1 shortcut projections."""
    return sum(
        1
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and "downsample" not in name
    )


def prepare_batch(x: Tensor, mode: str = "time") -> Tensor:
    """Store samples ``(n, 3, H, W)`` uint8 to the network's float input.

    ``mode="time"`` keeps the three channels (frames t, t+k, t+2k); ``mode="single"`` repeats
    channel 0, the study's grey frame in three channels. Each sample is standardised on its own
    (zero mean, unit variance over its pixels), which removes the illumination and gain
    differences between patients and cameras that a network could otherwise learn as identity.
    """
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown input mode {mode!r}: use one of {INPUT_MODES}")
    x = x.float()
    if mode == "single":
        x = x[:, :1].expand(-1, 3, -1, -1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + 1.0)


def _load_state_dict_file(path: Path) -> Mapping[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"{path}: not a loadable state dict ({exc}); give a .safetensors file or a "
            "torch state dict saved with torch.save(model.state_dict(), ...)"
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def load_resnet18_trunk(model: SepsisNet, source: str | os.PathLike | Mapping[str, Tensor]) -> int:
    """Initialise the stem, ``layer1`` and ``layer2`` from a torchvision ResNet18 state dict.

    ``source`` is a state dict or a file (.safetensors or a torch.save'd state dict, read with
    ``weights_only=True``). ``layer3``, ``layer4`` and ``fc`` are ignored. Returns the number of
    tensors loaded; raises :class:`InputError` when the trunk is incomplete or shapes differ.
    """
    state = source if isinstance(source, Mapping) else _load_state_dict_file(Path(source))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    trunk = {k: v for k, v in state.items() if k.startswith(_TRUNK_PREFIXES)}
    missing = [k for k in own if k.startswith(_TRUNK_PREFIXES) and k not in trunk]
    if missing:
        raise InputError(
            f"not a ResNet18 state dict: missing {len(missing)} keys, e.g. {missing[0]}"
        )
    for key, value in trunk.items():
        if key not in own:
            raise InputError(f"not a ResNet18 state dict: unexpected key {key}")
        if own[key].shape != value.shape:
            raise InputError(f"{key}: shape {tuple(value.shape)} != {tuple(own[key].shape)}")
    model.load_state_dict(trunk, strict=False)
    return len(trunk)
