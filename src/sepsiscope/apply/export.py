"""``sepsiscope export``: the classifier, preprocessing included, as one self-contained ONNX file.

RUN/classifier/model.onnx takes ``samples`` uint8 ``(n, 3, S, S)`` (n dynamic) and returns
``probability`` and ``logit``, both ``(n,)`` float32; its metadata names the input mode, the size
and the SHA-256 of the weights it came from, so the ``onnx`` back end can refuse a stale export.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sepsiscope import __version__
from sepsiscope._io import atomic_path
from sepsiscope.apply.backends import (
    ONNX_INPUT,
    OnnxBackend,
    TorchBackend,
    _run_model,
    file_sha256,
)
from sepsiscope.errors import SepsiscopeError
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import prepare_batch

ONNX_OPSET = 17


class _Exported(nn.Module):
    """uint8 samples in, (probability, logit) out: the preprocessing travels in the graph."""

    def __init__(self, model: nn.Module, input_mode: str) -> None:
        super().__init__()
        self.model = model
        self.input_mode = input_mode

    def forward(self, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.model(prepare_batch(samples, self.input_mode))
        return torch.sigmoid(logit), logit


def export_model_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_mode: str,
    size: int,
    opset: int = ONNX_OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` with its preprocessing as one self-contained .onnx, checked by onnx.checker.

    The graph takes ``samples`` ``(n, 3, size, size)`` uint8 (n dynamic) and returns
    ``probability`` and ``logit``, both ``(n,)`` float32.
    """
    import warnings

    import onnx

    wrapper = _Exported(copy.deepcopy(model).float().cpu(), input_mode).eval()
    example = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter needs no onnxscript, and the graph is static.
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=[ONNX_INPUT],
            output_names=["probability", "logit"],
            dynamic_axes={ONNX_INPUT: {0: "n"}, "probability": {0: "n"}, "logit": {0: "n"}},
            opset_version=opset,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        meta = {"input_mode": input_mode, "size": str(size), "sepsiscope": __version__}
        meta.update(metadata or {})
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        proto.doc_string = (
            "sepsiscope SepsisNet: uint8 samples (n, 3, S, S) of grey frames t, t+k, t+2k -> "
            "probability of the septic class. Research use only, not for diagnosis."
        )
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    return path


def export(
    run_dir: str | os.PathLike, *, out: str | os.PathLike | None = None, opset: int = ONNX_OPSET
) -> dict[str, Any]:
    """``sepsiscope export``: write RUN/classifier/model.onnx and check it against torch.

    Returns ``{"onnx", "opset", "input", "outputs", "max_abs_diff", "n_check", "bytes"}``;
    ``max_abs_diff`` is the largest probability difference to torch fp32 on 16 random samples.
    """
    layout = RunLayout(run_dir)
    model, input_mode, size = _run_model(run_dir)
    path = Path(out) if out else layout.onnx
    export_model_onnx(
        model,
        path,
        input_mode=input_mode,
        size=size,
        opset=opset,
        metadata={"weights_sha256": file_sha256(layout.model)},
    )
    check = np.random.default_rng(0).integers(0, 256, (16, 3, size, size), dtype=np.uint8)
    reference = TorchBackend(model, input_mode=input_mode)(check)
    diff = float(np.abs(OnnxBackend(path)(check) - reference).max())
    if diff > 1e-3:
        raise SepsiscopeError(f"{path}: ONNX and torch disagree by {diff:.2g}; export is unusable")
    return {
        "onnx": str(path),
        "opset": opset,
        "input": {"name": ONNX_INPUT, "dtype": "uint8", "shape": ["n", 3, size, size]},
        "input_mode": input_mode,
        "outputs": ["probability", "logit"],
        "max_abs_diff": diff,
        "n_check": len(check),
        "bytes": path.stat().st_size,
    }
