"""Tiny runs and videos for the prediction, back-end and explanation tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from sepsiscope._io import write_json
from sepsiscope.data.video import write_video
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import SepsisNet

SIZE = 64
FPS = 25.0
SAMPLING = {"size": SIZE, "crop": "center", "channel_offset_s": 0.08, "rate_hz": 5.0}


def tiny_model(seed: int = 0) -> SepsisNet:
    """A random SepsisNet whose head is rescaled so probabilities spread around 0.5."""
    from sepsiscope.models.classifier import prepare_batch

    torch.manual_seed(seed)
    model = SepsisNet().eval()
    rng = np.random.default_rng(seed)
    frames = np.stack(vessel_frames(3, seed=seed))[:, :SIZE, :SIZE]
    reference = np.concatenate(
        [frames[None], rng.integers(0, 256, (7, 3, SIZE, SIZE), dtype=np.uint8)]
    )
    reference[1:4] = np.clip(reference[1:4] // 3 + frames[None] // 2, 0, 255)
    with torch.no_grad():
        logits = model(prepare_batch(torch.from_numpy(reference)))
        scale = 1.5 / max(float(logits.std()), 1e-6)
        model.fc.weight.mul_(scale)
        model.fc.bias.copy_(model.fc.bias * scale - (logits.mean() * scale - 0.0))
    return model


def make_run(root: Path, *, input_mode: str = "time", threshold: float | None = 0.5) -> Path:
    from safetensors.torch import save_file

    layout = RunLayout(root)
    layout.classifier.mkdir(parents=True, exist_ok=True)
    save_file(tiny_model().state_dict(), str(layout.model))
    from sepsiscope.classifier.train import TrainSettings

    settings = TrainSettings(input_mode=input_mode).model_dump(mode="json")
    write_json(layout.model_settings, {"settings": settings, "sampling": SAMPLING})
    if threshold is not None:
        write_json(
            layout.threshold, {"threshold": threshold, "level": "video", "video_rule": "mean"}
        )
    return root


def vessel_frames(n: int = 50, *, height: int = 96, width: int = 128, seed: int = 0):
    """Grey frames of dark vessel-like lines drifting slowly over a textured background."""
    rng = np.random.default_rng(seed)
    big = np.full((height + 40, width + 40), 150, np.uint8)
    for _ in range(14):
        p0 = tuple(int(v) for v in rng.integers(0, big.shape[::-1]))
        p1 = tuple(int(v) for v in rng.integers(0, big.shape[::-1]))
        cv2.line(big, p0, p1, int(rng.integers(40, 90)), int(rng.integers(2, 5)))
    big = cv2.GaussianBlur(big, (0, 0), 0.8)
    frames = []
    for i in range(n):
        dy, dx = i % 3, (i // 2) % 3
        frame = big[dy : dy + height, dx : dx + width].astype(np.int16)
        frame += rng.integers(-6, 7, frame.shape, dtype=np.int16)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def write_test_video(
    path: Path,
    *,
    n: int = 50,
    black: tuple[int, ...] = (),
    blurred: tuple[int, ...] = (),
    seed: int = 0,
) -> Path:
    frames = vessel_frames(n, seed=seed)
    for i in black:
        frames[i] = np.zeros_like(frames[i])
    for i in blurred:
        frames[i] = np.full_like(frames[i], int(frames[i].mean()))
    return write_video(path, frames, FPS)
