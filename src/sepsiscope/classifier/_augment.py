"""Batch augmentations for dark-field frames, done in the training step on the whole batch.

Every op is drawn per sample and applied identically to the sample's three channels, so the
time channels (frames t, t+k, t+2k) stay registered. Geometry: the 8 flips and 90-degree turns (the
field of view has no preferred orientation) and a small rotation. Intensity: gamma, contrast and
brightness (illumination and camera gain differ between devices and patients), Gaussian blur (focus)
and Gaussian noise (sensor). The per-sample standardisation in :func:`prepare_batch` undoes a pure
brightness or contrast change except where it clips, so those two mainly teach saturation; gamma,
blur and noise survive it. On CPU the geometry, blur and gamma run on uint8 with OpenCV (fast
on 2 cores); on a GPU they are tensor ops.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

MAX_ROTATION_DEG = 15.0
P_ROTATE = 0.5
GAMMA_LOG_RANGE = 0.3  # gamma in [e^-0.3, e^0.3] = [0.74, 1.35]
CONTRAST_LOG_RANGE = 0.25  # factor in [0.78, 1.28]
BRIGHTNESS_RANGE = 0.08  # of full scale
P_BLUR, BLUR_SIGMA_PX = 0.3, (0.4, 1.5)
P_NOISE, NOISE_STD = 0.5, 0.03  # of full scale, at most
_BLUR_RADIUS = 3


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def _dihedral(x: Tensor, g: torch.Generator) -> Tensor:
    """One of the 8 flips/90-degree turns per sample (square samples)."""
    choice = torch.randint(0, 8, (x.shape[0],), generator=g, device=x.device)
    out = x.clone()
    for t in range(1, 8):
        idx = (choice == t).nonzero().squeeze(1)
        if idx.numel():
            part = torch.rot90(x[idx], t % 4, dims=(-2, -1))
            out[idx] = part.flip(-1) if t >= 4 else part
    return out


def _rotate(x: Tensor, g: torch.Generator) -> Tensor:
    """Rotate a random half of the samples by up to MAX_ROTATION_DEG, reflecting at the border."""
    n = x.shape[0]
    idx = (torch.rand(n, generator=g, device=x.device) < P_ROTATE).nonzero().squeeze(1)
    if not idx.numel():
        return x
    angle = _uniform(idx.numel(), -1, 1, g, x.device) * math.radians(MAX_ROTATION_DEG)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(idx.numel(), 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(x[idx].shape), align_corners=False)
    x = x.clone()
    x[idx] = F.grid_sample(x[idx], grid, padding_mode="reflection", align_corners=False)
    return x


def _blur(x: Tensor, g: torch.Generator) -> Tensor:
    """Separable Gaussian blur with a per-sample sigma on a random subset (others unchanged)."""
    n, c, h, w = x.shape
    sigma = _uniform(n, *BLUR_SIGMA_PX, g, x.device)
    chosen = torch.rand(n, generator=g, device=x.device) < P_BLUR
    if not bool(chosen.any()):
        return x
    offsets = torch.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    identity = (offsets == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(chosen[:, None], kernel, identity).repeat_interleave(c, 0)  # (n*c, k)
    k = kernel.shape[1]
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (_BLUR_RADIUS,) * 2 + (0, 0), mode="reflect"),
                    kernel.view(n * c, 1, 1, k), groups=n * c)  # fmt: skip
    flat = F.conv2d(F.pad(flat, (0, 0) + (_BLUR_RADIUS,) * 2, mode="reflect"),
                    kernel.view(n * c, 1, k, 1), groups=n * c)  # fmt: skip
    return flat.view(n, c, h, w)


def _augment_cpu(x: Tensor, g: torch.Generator) -> Tensor:
    """All but the noise on uint8 CPU samples with OpenCV, sample by sample; float 0-255 out.

    On uint8 images OpenCV's SIMD kernels are several times faster than grid_sample and a
    grouped convolution on float tensors, which matters on a 2-core CPU; the intensity changes
    are two 256-entry lookup tables.
    """
    import cv2

    n, _, h, w = x.shape
    turn = torch.randint(0, 8, (n,), generator=g).tolist()
    rotate = (torch.rand(n, generator=g) < P_ROTATE).tolist()
    angle = _uniform(n, -MAX_ROTATION_DEG, MAX_ROTATION_DEG, g, "cpu").tolist()
    blur = (torch.rand(n, generator=g) < P_BLUR).tolist()
    sigma = _uniform(n, *BLUR_SIGMA_PX, g, "cpu").tolist()
    gamma = torch.exp(_uniform(n, -GAMMA_LOG_RANGE, GAMMA_LOG_RANGE, g, "cpu")).tolist()
    contrast = torch.exp(_uniform(n, -CONTRAST_LOG_RANGE, CONTRAST_LOG_RANGE, g, "cpu")).tolist()
    brightness = (_uniform(n, -BRIGHTNESS_RANGE, BRIGHTNESS_RANGE, g, "cpu") * 255.0).tolist()
    levels = np.arange(256, dtype=np.float64)
    src, out = x.numpy(), np.empty(x.shape, np.uint8)
    for i in range(n):
        sample = np.rot90(src[i], turn[i] % 4, axes=(1, 2))
        if turn[i] >= 4:
            sample = sample[:, :, ::-1]
        sample = np.ascontiguousarray(sample.transpose(1, 2, 0))  # HWC: one call, 3 channels
        if rotate[i]:
            matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle[i], 1.0)
            sample = cv2.warpAffine(sample, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
        if blur[i]:
            sample = cv2.GaussianBlur(sample, (0, 0), sigma[i], borderType=cv2.BORDER_REFLECT_101)
        lut = np.clip(np.rint(255.0 * (levels / 255.0) ** gamma[i]), 0, 255).astype(np.uint8)
        sample = cv2.LUT(sample, lut)
        mean = float(np.mean(cv2.mean(sample)[: src.shape[1]]))
        lut = (levels - mean) * contrast[i] + mean + brightness[i]
        sample = cv2.LUT(sample, np.clip(np.rint(lut), 0, 255).astype(np.uint8))
        out[i] = sample.reshape(h, w, -1).transpose(2, 0, 1)
    return torch.from_numpy(out).float()


def _augment_torch(x: Tensor, g: torch.Generator) -> Tensor:
    """The same as :func:`_augment_cpu` with tensor ops (GPU); float 0-255 out."""
    n, dev = x.shape[0], x.device
    per_sample = (n, 1, 1, 1)
    x = _blur(_rotate(_dihedral(x.float() / 255.0, g), g), g)
    gamma = torch.exp(_uniform(n, -GAMMA_LOG_RANGE, GAMMA_LOG_RANGE, g, dev)).view(per_sample)
    x = x.clamp(1e-6, 1.0).pow(gamma) * 255.0
    contrast = torch.exp(_uniform(n, -CONTRAST_LOG_RANGE, CONTRAST_LOG_RANGE, g, dev))
    brightness = _uniform(n, -BRIGHTNESS_RANGE, BRIGHTNESS_RANGE, g, dev) * 255.0
    mean = x.mean(dim=(1, 2, 3))
    # (x - mean) * c + mean + b, as one multiply-add
    offset = (mean * (1 - contrast) + brightness).view(per_sample)
    return torch.addcmul(offset, x, contrast.view(per_sample)).clamp_(0.0, 255.0)


def augment_batch(x: Tensor, generator: torch.Generator) -> Tensor:
    """Augment a batch of store samples.

    Parameters
    ----------
    x : (n, 3, S, S) uint8 tensor (on CPU the OpenCV path; on other devices tensor ops)
    generator : a torch.Generator on ``x``'s device; the same seed gives the same batch.

    Returns
    -------
    (n, 3, S, S) float32 tensor in 0-255 (the store's scale, which :func:`prepare_batch`'s
    ``std + 1`` guard assumes), ready for :func:`prepare_batch`.

    Order: flips/turns, rotation, blur (defocus is optical, so before the sensor's response),
    gamma, contrast, brightness, noise.
    """
    g, dev = generator, x.device
    n = x.shape[0]
    on_cpu = dev.type == "cpu" and x.dtype == torch.uint8
    x = _augment_cpu(x, g) if on_cpu else _augment_torch(x, g)
    noisy = (torch.rand(n, generator=g, device=dev) < P_NOISE).nonzero().squeeze(1)
    if noisy.numel():
        std = _uniform(noisy.numel(), 0.0, NOISE_STD * 255.0, g, dev).view(-1, 1, 1, 1)
        noise = torch.randn((noisy.numel(), *x.shape[1:]), generator=g, device=dev)
        x[noisy] = (x[noisy] + noise * std).clamp_(0.0, 255.0)
    return x
