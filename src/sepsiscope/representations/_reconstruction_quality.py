"""Per-image reconstruction quality: MSE, PSNR and SSIM on batches of images in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_SSIM_SIGMA = 1.5  # Wang et al. 2004: an 11 x 11 Gaussian window, sigma 1.5
_SSIM_RADIUS = 5
_C1 = 0.01**2  # (K1 L)^2 with data range L = 1
_C2 = 0.03**2


def mse_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each image, ``(n,)``; ``x``, ``y`` are ``(n, C, H, W)``."""
    return ((x.float() - y.float()) ** 2).flatten(1).mean(1)


def psnr_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of each image in dB, for data range 1, ``(n,)``."""
    return -10.0 * torch.log10(mse_per_image(x, y).clamp_min(1e-10))


def r2_per_image(x: Tensor, reconstruction: Tensor) -> Tensor:
    """Share of each image's pixel variance that the reconstruction explains, ``(n,)``.

    1 is a perfect copy; 0 is no better than the image's mean grey. Unlike PSNR it is comparable
    between low-contrast frames and high-contrast noise, which the identity check needs.
    """
    variance = x.float().flatten(1).var(1, unbiased=False).clamp_min(1e-12)
    return 1.0 - mse_per_image(x, reconstruction) / variance


def ssim_per_image(x: Tensor, y: Tensor) -> Tensor:
    """Structural similarity of each image, averaged over channels and valid pixels, ``(n,)``.

    Gaussian window (sigma 1.5, 11 px), data range 1, as Wang et al. 2004; equals
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)``.
    """
    x, y = x.float(), y.float()
    channels = x.shape[1]
    offsets = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float32, device=x.device)
    g = torch.exp(-(offsets**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / (
        (mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2)
    )
    return ssim_map.flatten(1).mean(1)
