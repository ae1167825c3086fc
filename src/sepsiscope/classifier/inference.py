"""Load a trained classifier and turn store samples into septic probabilities.

Example
-------
>>> model, settings = load_classifier("run")                          # doctest: +SKIP
>>> probs = infer(model, samples, input_mode=settings.input_mode)     # doctest: +SKIP  (n,)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import SepsisNet, prepare_batch
from sepsiscope.models.precision import use_bf16

if TYPE_CHECKING:
    from sepsiscope.classifier.train import TrainSettings
    from sepsiscope.data.store import FrameStore


def load_model_file(path: str | os.PathLike, model: torch.nn.Module) -> Any:
    """Load weights from a safetensors file into ``model``; InputError when it is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found: run `sepsiscope train` first")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a safetensors model file ({exc})") from exc
    differs = state_dict_differences(model.state_dict(), state)
    if differs:
        what = type(model).__name__
        article = "an" if what[0] in "AEIOU" else "a"
        raise InputError(f"{path}: does not hold {article} {what} classifier ({differs})")
    model.load_state_dict(state, strict=True)
    return model


def state_dict_differences(
    expected: dict[str, Any], found: dict[str, Any], *, shown: int = 3
) -> str:
    """What keeps ``found`` from loading into a model with ``expected`` weights: missing and
    unexpected names, and shapes that differ ("" when it fits)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} is {tuple(found[k].shape)}, not {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]

    def listed(names: list[str]) -> str:
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    parts = []
    if missing:
        parts.append(f"missing {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected {listed(unexpected)}")
    if shapes:
        parts.append(listed(shapes))
    return "; ".join(parts)


def load_classifier(run_dir: str | os.PathLike) -> tuple[SepsisNet, TrainSettings]:
    """The trained network of a run (eval mode, CPU) and the settings it was trained with.

    An ensemble run (``crossval``'s ``RUN/ensemble``) gives an
    :class:`~sepsiscope.models.ensemble.EnsembleNet`, which is used as a SepsisNet is.
    """
    from sepsiscope.classifier.train import TrainSettings
    from sepsiscope.models.ensemble import EnsembleNet

    layout = RunLayout(run_dir).require_classifier()
    try:
        settings = TrainSettings.load(layout.model_settings)
        members = int((layout.saved_training().get("ensemble") or {}).get("members", 0))
    except Exception as exc:
        raise InputError(f"{layout.model_settings}: cannot read training settings ({exc})") from exc
    empty = (
        EnsembleNet(members, dropout=settings.dropout)
        if members
        else SepsisNet(dropout=settings.dropout)
    )
    model = load_model_file(layout.model, empty)
    return model.eval(), settings


def infer(
    model: SepsisNet,
    samples_uint8: np.ndarray,
    *,
    input_mode: str,
    batch_size: int = 64,
    precision: str = "auto",
    with_features: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Septic probabilities of store samples.

    Parameters
    ----------
    model : a SepsisNet (its device is used; it is put in eval mode)
    samples_uint8 : (n, 3, S, S) uint8 ndarray, channels = frames t, t+k, t+2k
    input_mode : 'time' or 'single', as the model was trained (``TrainSettings.input_mode``)
    precision : 'auto', 'fp32' or 'bf16' (autocast)
    with_features : also return the 128-d pooled features of the last convolutional layer

    Returns
    -------
    probs : (n,) float32 ndarray in [0, 1]; and features : (n, 128) float32 when asked.
    """
    samples_uint8 = np.asarray(samples_uint8)
    if samples_uint8.ndim != 4 or samples_uint8.shape[1] != 3:
        raise InputError(f"samples must be (n, 3, S, S), got shape {samples_uint8.shape}")
    model.eval()
    device = next(model.parameters()).device
    bf16 = use_bf16(precision, device)
    model = model.to(memory_format=torch.channels_last)
    probs, feats = [], []
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        for start in range(0, len(samples_uint8), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(samples_uint8[start : start + batch_size]))
            x = prepare_batch(x.to(device), input_mode).contiguous(
                memory_format=torch.channels_last
            )
            features = model.forward_features(x)
            probs.append(torch.sigmoid(model.forward_head(features).float()).cpu())
            if with_features:
                feats.append(features.float().cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros(0, np.float32)
    if not with_features:
        return p
    f = torch.cat(feats).numpy() if feats else np.zeros((0, 128), np.float32)
    return p, f


def dihedral_views(samples: np.ndarray) -> np.ndarray:
    """The 8 flips and quarter turns of ``(n, C, S, S)`` samples, stacked ``(8 n, C, S, S)``
    (view-major: the first n are the samples themselves)."""
    views = []
    for flipped in (samples, samples[..., ::-1]):
        views += [np.rot90(flipped, k, axes=(2, 3)) for k in range(4)]
    return np.ascontiguousarray(np.concatenate(views))


def with_tta(score: Callable[[np.ndarray], np.ndarray], samples: np.ndarray) -> np.ndarray:
    """Test-time augmentation: ``score`` (uint8 samples -> probabilities) averaged over the 8
    flips and quarter turns of each sample. A vessel pattern has no up or left, so each view is
    as likely as the original; 8x the cost."""
    if len(samples) == 0:
        return np.asarray(score(samples), dtype=np.float32)
    probs = np.asarray(score(dihedral_views(np.asarray(samples))), dtype=np.float32)
    return probs.reshape(8, len(samples)).mean(axis=0)


def predict_store(
    model: SepsisNet,
    settings: TrainSettings,
    store: FrameStore,
    table: pd.DataFrame,
    *,
    batch_size: int = 64,
    precision: str = "auto",
    chunk_frames: int = 2048,
    tta: bool = False,
) -> pd.DataFrame:
    """Per-frame probabilities for store frame rows ``table``.

    Returns a copy of ``table`` (index reset) with a ``probability`` column (septic, float).
    Samples are read ``chunk_frames`` at a time, so any store size fits in memory. ``tta``:
    averaged over the 8 flips and turns (:func:`with_tta`).
    """
    out = table.reset_index(drop=True).copy()
    probs = np.zeros(len(out), np.float32)

    def score(samples: np.ndarray) -> np.ndarray:
        return infer(model, samples, input_mode=settings.input_mode, batch_size=batch_size,
                     precision=precision)  # fmt: skip

    for start in range(0, len(out), chunk_frames):
        samples = store.read_table(out.iloc[start : start + chunk_frames])
        probs[start : start + len(samples)] = with_tta(score, samples) if tta else score(samples)
    out["probability"] = probs
    return out
