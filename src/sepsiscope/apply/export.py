"""``sepsiscope export``: the classifier, preprocessing included, as one self-contained ONNX file.

RUN/classifier/model.onnx takes ``samples`` uint8 ``(n, 3, S, S)`` (n dynamic) and returns
``probability`` and ``logit``, both ``(n,)`` float32; its metadata names the input mode, the size
and the SHA-256 of the weights it came from, so the ``onnx`` back end can refuse a stale export.

``--int8`` also writes RUN/classifier/model.int8.onnx: ONNX Runtime's static quantisation (QDQ
format; convolutions and the linear head with per-channel int8 weights and uint8 activations),
calibrated on samples of the run's own training split, and checked against the fp32 export on
validation samples (largest and mean |Δp|, decisions that flip at the run's threshold), which are
returned and stored in the file's metadata. ONNX Runtime rather than OpenVINO: it is already the
``onnx`` back end's engine, it runs everywhere pip does, and its int8 kernels use AVX2 (VNNI
where present), the CPUs this back end is for.
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
    run_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    opset: int = ONNX_OPSET,
    int8: bool = False,
    store: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """``sepsiscope export``: write RUN/classifier/model.onnx and check it against torch.

    Returns ``{"onnx", "opset", "input", "outputs", "max_abs_diff", "n_check", "bytes"}``;
    ``max_abs_diff`` is the largest probability difference to torch fp32 on 16 random samples.
    With ``int8`` also ``"int8"``: the quantised file and its agreement (:func:`quantize_int8`).
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
    result = {
        "onnx": str(path),
        "opset": opset,
        "input": {"name": ONNX_INPUT, "dtype": "uint8", "shape": ["n", 3, size, size]},
        "input_mode": input_mode,
        "outputs": ["probability", "logit"],
        "max_abs_diff": diff,
        "n_check": len(check),
        "bytes": path.stat().st_size,
    }
    if int8:
        result["int8"] = quantize_int8(run_dir, path, store=store)
    return result


def _store_samples(
    run_dir: str | os.PathLike, store: str | os.PathLike | None, split: str, n: int, seed: int
) -> np.ndarray:
    """Up to ``n`` usable samples of one split of the run's store (or ``store``), drawn at
    random (seeded), ``(n, 3, S, S)`` uint8."""
    from sepsiscope.data.store import FrameStore

    frames = FrameStore(RunLayout(run_dir).store_dir(store))
    table = frames.samples(split)
    if len(table) == 0:
        table = frames.samples()
    if len(table) > n:
        table = table.sample(n, random_state=seed).sort_index()
    return frames.read_table(table)


class _Calibration:
    """ONNX Runtime's calibration reader over store samples, 16 at a time."""

    def __init__(self, samples: np.ndarray) -> None:
        self.batches = iter([samples[i : i + 16] for i in range(0, len(samples), 16)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {ONNX_INPUT: batch}


def quantize_int8(
    run_dir: str | os.PathLike,
    fp32_path: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    n_calibration: int = 256,
    n_check: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Write RUN/classifier/model.int8.onnx from the fp32 export; its agreement with fp32.

    Calibration: ``n_calibration`` samples of the store's train split; the check: up to
    ``n_check`` of its validation split (other samples if it has none). Returns ``{"onnx",
    "bytes", "n_calibration", "n_check", "max_abs_diff", "mean_abs_diff", "flips",
    "threshold"}`` (``flips``: samples whose side of the run's threshold changes).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from sepsiscope.apply._runinfo import read_threshold

    layout = RunLayout(run_dir)
    calibration = _store_samples(run_dir, store, "train", n_calibration, seed)
    check = _store_samples(run_dir, store, "val", n_check, seed + 1)
    out = layout.onnx_int8
    with atomic_path(out) as tmp:
        quantize_static(
            str(fp32_path), str(tmp), _Calibration(calibration), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "Gemm", "MatMul"],
        )  # fmt: skip
        fp32, int8 = OnnxBackend(fp32_path)(check), OnnxBackend(tmp, name="int8")(check)
        threshold = read_threshold(layout)[0]
        diff = np.abs(int8 - fp32)
        agreement = {
            "n_calibration": len(calibration), "n_check": len(check),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "flips": int(((int8 >= threshold) != (fp32 >= threshold)).sum()),
            "threshold": threshold,
        }  # fmt: skip
        proto = onnx.load(str(tmp))
        source = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
        source.update(quantization="static int8, QDQ, per-channel weights",
                      **{f"agreement_{k}": str(v) for k, v in agreement.items()})  # fmt: skip
        del proto.metadata_props[:]
        for key, value in source.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)
        onnx.save(proto, str(tmp))
    return {"onnx": str(out), "bytes": out.stat().st_size, **agreement}
