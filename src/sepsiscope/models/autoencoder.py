"""The study's convolutional autoencoder: three convolutions down, three transposed convolutions up.

No skip connections, so everything the decoder draws has to pass through the bottleneck. For a
``224 x 224 x 3`` frame the encoder goes 224 -> 56 -> 28 -> 12 px::

    conv 8x8 / 4, 32 ch, BN, ReLU     (3, 224, 224) -> (32, 56, 56)
    conv 4x4 / 2, 64 ch, BN, ReLU                   -> (64, 28, 28)
    conv 6x6 / 2, C ch (linear)                     -> (C, 12, 12)   bottleneck = C x 144

and the decoder mirrors it with transposed convolutions and a final sigmoid, so reconstructions lie
in [0, 1] like the input. Batch normalisation after the hidden convolutions (not a skip: nothing
bypasses the bottleneck) matters on small data sets: without it the network sat on the mean grey
for the first few hundred steps on synthetic frames (reconstruction contrast 0.10 of the input's
after 100 steps of 16 frames at 96 px, against 0.53 with it).

The bottleneck size varies through the channel count ``C`` at a fixed 12 x 12 grid: C = 2, 4,
8, 16 give 288, 576, 1152 (the study's size, the default) and 2304 features. Keeping the grid
fixed keeps the features spatial (each of the 144 cells summarises a ~19 px patch), which suits
vessel images more than a few global channels would.

Other sample sizes work when ``size`` is a multiple of 16 and at least 48 (64 -> grid 2 x 2,
96 -> 4 x 4, 128 -> 6 x 6, in general ``(size / 8 - 6) / 2 + 1``). A bottleneck is named by its
size at 224 px (``--bottleneck 1152`` = 8 channels); at another sample size the channel count is
kept and the number of features scales with the grid (8 channels at 64 px give 32 features).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sepsiscope.errors import InputError

DEFAULT_BOTTLENECK = 1152
SWEEP_BOTTLENECKS = (288, 576, 1152, 2304)
HIDDEN_CHANNELS = (32, 64)
REFERENCE_GRID = 12  # bottleneck grid side for 224 px inputs
# (kernel, stride, padding) of the three encoder convolutions; the decoder mirrors them.
_GEOMETRY = ((8, 4, 2), (4, 2, 1), (6, 2, 0))


def grid_side(size: int) -> int:
    """Side of the bottleneck grid for square inputs of side ``size`` px (12 for 224)."""
    if size < 48 or size % 16:
        raise InputError(
            f"autoencoder input side must be a multiple of 16 and >= 48 px, got {size}"
        )
    return (size // 8 - 6) // 2 + 1


def bottleneck_channels(bottleneck: int) -> int:
    """Channels ``C`` of a bottleneck named by its size at 224 px (``C * 144``)."""
    cells = REFERENCE_GRID**2
    if bottleneck <= 0 or bottleneck % cells:
        raise InputError(
            f"bottleneck {bottleneck} is not a multiple of the {cells} grid cells of a 224 px "
            f"frame; use e.g. {', '.join(str(b) for b in SWEEP_BOTTLENECKS)}"
        )
    return bottleneck // cells


class ConvAutoencoder(nn.Module):
    """Encoder and decoder of three convolutional layers each, no skip connections.

    Parameters
    ----------
    bottleneck : int
        Bottleneck size at 224 px, a multiple of 144 (288, 576, 1152, 2304); the model's own
        feature count is ``feature_dim`` (equal to ``bottleneck`` when ``size`` is 224).
    size : int
        Side of the square input, px.
    in_channels : int
        Input channels (3: the store's three channels, or one grey frame repeated).

    ``forward`` maps ``(n, in_channels, size, size)`` floats in [0, 1] to reconstructions of the
    same shape in [0, 1]; ``encode`` gives ``(n, feature_dim)`` features, ``decode`` inverts it.
    """

    def __init__(
        self, bottleneck: int = DEFAULT_BOTTLENECK, *, size: int = 224, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.size = size
        self.grid = grid_side(size)
        self.code_channels = bottleneck_channels(bottleneck)
        self.bottleneck = bottleneck
        self.feature_dim = self.code_channels * self.grid**2
        c1, c2 = HIDDEN_CHANNELS
        (k1, s1, p1), (k2, s2, p2), (k3, s3, p3) = _GEOMETRY
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, k1, s1, p1),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, k2, s2, p2),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c2, self.code_channels, k3, s3, p3),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(self.code_channels, c2, k3, s3, p3),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c2, c1, k2, s2, p2),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c1, in_channels, k1, s1, p1),
            nn.Sigmoid(),
        )

    def encode(self, x: Tensor) -> Tensor:
        """Bottleneck features ``(n, feature_dim)`` of inputs ``(n, C, size, size)`` in [0, 1]."""
        if x.shape[-2:] != (self.size, self.size):
            raise InputError(
                f"autoencoder expects {self.size} x {self.size} px inputs, got "
                f"{tuple(x.shape[-2:])}"
            )
        return torch.flatten(self.encoder(x), 1)

    def decode(self, code: Tensor) -> Tensor:
        """Reconstructions ``(n, C, size, size)`` in [0, 1] from features ``(n, feature_dim)``."""
        if code.ndim != 2 or code.shape[1] != self.feature_dim:
            raise InputError(
                f"bottleneck features must be (n, {self.feature_dim}), got {tuple(code.shape)}"
            )
        return self.decoder(code.view(-1, self.code_channels, self.grid, self.grid))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def to_unit_range(x: Tensor, mode: str = "single") -> Tensor:
    """Store samples ``(n, 3, S, S)`` uint8 to autoencoder input: floats in [0, 1].

    ``mode="single"`` (the study's input) repeats the grey frame at ``t`` (channel 0) in all three
    channels; ``mode="time"`` keeps the frames at ``t``, ``t + k`` and ``t + 2k``, so the
    bottleneck may also carry motion. No per-sample standardisation: the sigmoid output is
    compared with the input itself.
    """
    if mode not in ("single", "time"):
        raise InputError(f"unknown input mode {mode!r}: use single or time")
    x = x.float() / 255.0
    if mode == "single":
        x = x[:, :1].expand(-1, 3, -1, -1)
    return x.contiguous()
