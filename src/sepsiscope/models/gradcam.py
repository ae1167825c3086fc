"""Grad-CAM on the classifier's last convolutional layer, and its overlay.

Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2): the channel weights are the spatial means of
the gradient of the target score with respect to ``layer2``'s activations ``A`` (128 channels at
1/8 of the input side); the map is ``ReLU(sum_c w_c A_c)``, upsampled bilinearly to the input and
scaled to [0, 1] per sample. With one logit (septic), the target "septic" is the logit and
"non-septic" its negative; "predicted" takes the class the threshold gives. Written with hooks;
no MONAI dependency.

An ensemble (:class:`~sepsiscope.models.ensemble.EnsembleNet`): the target is the ensemble's
averaged logit, each member's map is computed from its own ``layer2`` for that target, scaled
to [0, 1], and the maps are averaged (then scaled to [0, 1] again): where the members agree the
map stays bright.

Sanity checks (:func:`gradcam_sanity`, after Adebayo et al., NeurIPS 2018): the map is
non-negative and input-sized, it changes when the input changes, and it changes when ``layer2``'s
weights are randomised (a map that survives randomisation explains the image, not the model).

Here, below the stages, because both ``explain`` and ``predict``'s annotated video draw it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sepsiscope.errors import InputError
from sepsiscope.models.classifier import prepare_batch

TARGETS = ("predicted", "septic", "non-septic")


class GradCAM:
    """Grad-CAM maps for a SepsisNet (or any model with a ``layer2``).

    Example
    -------
    >>> cams, probs = GradCAM(model, input_mode="time")(samples)  # doctest: +SKIP
    >>> cams.shape                                                  # (n, S, S) in [0, 1]
    """

    def __init__(self, model: nn.Module, *, input_mode: str, layer: str = "layer2") -> None:
        from sepsiscope.models.ensemble import members_of

        self.model = model.eval()
        self.input_mode = input_mode
        self.layers = [getattr(member, layer) for member in members_of(model)]

    def __call__(
        self,
        samples: np.ndarray,
        *,
        target: str = "predicted",
        threshold: float = 0.5,
        batch_size: int = 32,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maps ``(n, S, S)`` float32 in [0, 1] and probabilities ``(n,)`` for uint8 samples
        ``(n, 3, S, S)``."""
        if target not in TARGETS:
            raise InputError(f"unknown target {target!r}: use one of {TARGETS}")
        cams, probs = [], []
        for start in range(0, len(samples), batch_size):
            cam, prob = self._batch(samples[start : start + batch_size], target, threshold)
            cams.append(cam)
            probs.append(prob)
        if not cams:
            side = samples.shape[-1]
            return np.zeros((0, side, side), np.float32), np.zeros(0, np.float32)
        return np.concatenate(cams), np.concatenate(probs)

    def _batch(self, samples: np.ndarray, target: str, threshold: float):
        captured: list[torch.Tensor | None] = [None] * len(self.layers)

        def hook_for(i: int) -> Any:
            def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
                captured[i] = output

            return hook

        handles = [layer.register_forward_hook(hook_for(i)) for i, layer in enumerate(self.layers)]
        try:
            device = next(self.model.parameters()).device
            x = prepare_batch(
                torch.from_numpy(np.ascontiguousarray(samples)).to(device), self.input_mode
            ).requires_grad_(True)
            with torch.enable_grad():
                logits = self.model(x).float()
                prob = torch.sigmoid(logits).detach()
                if target == "septic":
                    sign = torch.ones_like(logits)
                elif target == "non-septic":
                    sign = -torch.ones_like(logits)
                else:
                    sign = torch.where(prob >= threshold, 1.0, -1.0)
                grads = torch.autograd.grad((sign * logits).sum(), captured)
        finally:
            for handle in handles:
                handle.remove()
        maps = [
            _cam(a.detach(), g, samples.shape[-2:]) for a, g in zip(captured, grads, strict=True)
        ]
        cam = maps[0] if len(maps) == 1 else _unit(torch.stack(maps).mean(0))
        return cam.cpu().numpy().astype(np.float32), prob.cpu().numpy().astype(np.float32)


def _cam(activation: torch.Tensor, grad: torch.Tensor, size: Any) -> torch.Tensor:
    """Grad-CAM of one layer, upsampled to ``size`` and scaled to [0, 1] per sample."""
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    return _unit(cam[:, 0].clamp_min(0))


def _unit(cam: torch.Tensor) -> torch.Tensor:
    top = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return torch.where(top > 1e-12, cam / top, torch.zeros_like(cam))


def gradcam_sanity(model: nn.Module, samples: np.ndarray, *, input_mode: str) -> dict[str, Any]:
    """Property checks of Grad-CAM on ``samples`` (see module notes); all booleans should hold.

    ``input_change``: mean |Δmap| when each sample is flipped left-right (maps compared after
    flipping back); ``randomisation_correlation``: mean correlation between the maps of the model
    and of a copy whose ``layer2`` weights are re-drawn (low = the map depends on the model).
    """
    cams, _ = GradCAM(model, input_mode=input_mode)(samples, target="septic")
    flipped, _ = GradCAM(model, input_mode=input_mode)(
        np.ascontiguousarray(samples[..., ::-1]), target="septic"
    )
    input_change = float(np.abs(flipped[..., ::-1] - cams).mean())
    random_model = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    from sepsiscope.models.ensemble import members_of

    with torch.no_grad():
        layers = [m.layer2 for m in members_of(random_model)]
        for module in (module for layer in layers for module in layer.modules()):
            if isinstance(module, nn.Conv2d):
                std = module.weight.std().item() or 0.05
                noise = torch.randn(module.weight.shape, generator=generator)
                module.weight.copy_(noise * std)
    random_cams, _ = GradCAM(random_model, input_mode=input_mode)(samples, target="septic")
    corr = [_correlation(a, b) for a, b in zip(cams, random_cams, strict=True)]
    return {
        "non_negative": bool((cams >= 0).all()),
        "in_unit_range": bool((cams <= 1 + 1e-6).all()),
        "input_sized": cams.shape[1:] == samples.shape[2:],
        "input_change": input_change,
        "changes_with_input": input_change > 1e-4,
        "randomisation_correlation": float(np.nanmean(corr)) if corr else float("nan"),
    }


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def overlay_rgb(grey: np.ndarray, cam: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """A heat map (``cam`` in [0, 1], jet) blended over a grey ``(S, S)`` uint8 image; RGB uint8."""
    import cv2

    heat = cv2.applyColorMap(np.clip(cam * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = heat[..., ::-1].astype(np.float32)
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    return np.clip((1 - alpha) * base + alpha * heat, 0, 255).astype(np.uint8)
