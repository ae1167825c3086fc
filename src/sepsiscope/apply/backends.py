"""Inference back ends behind one interface (the ONNX file itself is written by
:mod:`sepsiscope.apply.export`).

A back end maps store-format samples to probabilities: ``backend(samples)`` with ``samples``
``(n, 3, S, S)`` uint8 (frames t, t+k, t+2k, as :func:`sepsiscope.data.frame_quality.make_samples`
makes them) gives ``(n,)`` float32 probabilities of the septic class. The preprocessing
(:func:`~sepsiscope.models.classifier.prepare_batch`: input mode and per-sample standardisation) is
part of every back end, so all of them take the same uint8 input.

``fp32``
    torch, float32 (CPU or CUDA). The reference. On the CPU the model is traced and frozen with
    TorchScript (batch norm folded into the convolutions, oneDNN's fused kernels), channels-last,
    once a batch shape comes a second time (a short file's batches run eager: see ``_graph``).
``bf16``
    bfloat16: on the CPU, frozen like fp32 with bf16 weights (AVX512-BF16/AMX); on CUDA, autocast.
    About 3.5x eager fp32 on 2 cores of a CPU with AMX (docs/benchmarks.md); probabilities differ
    from fp32 by ~1e-3 (< 0.02 asserted in ``tests/test_backends.py``; see docs/prediction.md).
``onnx``
    ONNX Runtime (CPU execution provider, all graph optimisations) on RUN/classifier/model.onnx,
    which ``sepsiscope export`` writes: one self-contained file (weights inside), input
    ``samples`` uint8 ``(n, 3, S, S)`` with a dynamic batch axis, output ``probability`` ``(n,)``
    float32 and ``logit``. Agrees with fp32 to < 1e-4.
``int8``
    ONNX Runtime on RUN/classifier/model.int8.onnx, which ``sepsiscope export --int8`` writes:
    the same graph with weights (per channel) and activations quantised to 8 bits (static QDQ,
    calibrated on samples of the run's own training split). For CPUs without bf16 (AVX2 only);
    its agreement with fp32 is measured at export on validation samples and stored in the file
    (docs/prediction.md).
``auto``
    CUDA fp32 when a GPU is asked for; otherwise ONNX when the exported file is current,
    else torch fp32. bf16 and int8 are never chosen silently because they can move a probability
    that sits next to the threshold.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.models.classifier import INPUT_MODES, SepsisNet, prepare_batch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "fp32", "torch", "bf16", "onnx", "int8")
ONNX_INPUT = "samples"


class Backend(Protocol):
    """``backend(samples (n, 3, S, S) uint8) -> (n,) float32 probabilities``."""

    name: str

    def __call__(self, samples: np.ndarray) -> np.ndarray: ...


def _check_samples(samples: np.ndarray) -> np.ndarray:
    if samples.ndim != 4 or samples.shape[1] != 3 or samples.dtype != np.uint8:
        raise ValueError(f"samples must be (n, 3, S, S) uint8, got {samples.shape} {samples.dtype}")
    return np.ascontiguousarray(samples)


def bf16_supported(device: str = "cpu") -> bool:
    """True when bfloat16 matrix products run natively (CPU AVX512-BF16/AMX, or CUDA)."""
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchBackend:
    """torch inference in float32 or bfloat16 autocast, channels-last.

    The model is copied, so the caller's model keeps its memory format and device.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_mode: str,
        precision: str = "fp32",
        device: str = "cpu",
        batch_size: int = 64,
        freeze: bool = True,
    ) -> None:
        if input_mode not in INPUT_MODES:
            raise InputError(f"unknown input mode {input_mode!r}: use one of {INPUT_MODES}")
        if precision not in ("fp32", "bf16"):
            raise InputError(f"unknown precision {precision!r}: use fp32 or bf16")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but torch sees no CUDA GPU")
        if precision == "bf16" and not bf16_supported(device):
            log.warning("bf16 is not native on this %s; it will run, but slowly", device)
        self.name = "bf16" if precision == "bf16" else "fp32"
        self.input_mode = input_mode
        self.precision = precision
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = copy.deepcopy(model).eval().to(self.device)
        self.model = self.model.to(memory_format=torch.channels_last).requires_grad_(False)
        # TorchScript graphs by input shape: oneDNN prepacks the weights for the shape it was
        # traced with, and a graph traced at another shape runs ~30 % slower.
        self.freeze = freeze and self.device.type == "cpu"
        self._frozen: dict[tuple[int, ...], Any] = {}
        self._seen: set[tuple[int, ...]] = set()
        # An ensemble's back end keeps each member's logits of every sample since the last
        # reset_members(): their spread is the ensemble's uncertainty (predict reports it).
        from sepsiscope.models.ensemble import EnsembleNet, MemberLogits

        self.n_members = len(model.members) if isinstance(model, EnsembleNet) else 0
        if self.n_members:
            self.model = MemberLogits(self.model)
        self.member_logits: list[np.ndarray] = []

    def reset_members(self) -> None:
        self.member_logits = []

    def logits(self, samples: np.ndarray) -> np.ndarray:
        """``(n,)`` float32 logits."""
        samples = _check_samples(samples)
        out = []
        with torch.inference_mode():
            for start in range(0, len(samples), self.batch_size):
                x = torch.from_numpy(samples[start : start + self.batch_size]).to(self.device)
                x = prepare_batch(x, self.input_mode).contiguous(memory_format=torch.channels_last)
                graph = self._graph(tuple(x.shape)) if self.freeze else None
                if graph is not None:
                    out.append(self._run_frozen(graph, x))
                    continue
                with torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
                ):
                    out.append(self.model(x).float().cpu())
        if not out:
            return np.zeros(0, np.float32)
        logits = torch.cat(out).numpy()
        if self.n_members:  # (n, members): the ensemble's logit is their mean
            self.member_logits.append(logits)
            return logits.mean(axis=1).astype(np.float32)
        return logits

    def _graph(self, shape: tuple[int, ...]) -> Any:
        """The frozen graph for batches of this shape, or None to run eager. Only batch 1 (live)
        and the full batch are frozen, and only the second time their shape comes: a trace costs
        about two forward passes, which a short file's one batch or a file's last, partial
        batch would never win back (padding it to a full batch cost more than running it)."""
        if shape[0] not in (1, self.batch_size):
            return None
        if shape not in self._frozen:
            if shape not in self._seen:
                self._seen.add(shape)
                return None
            self._frozen[shape] = _freeze(self.model, self.precision, shape)
        return self._frozen[shape]

    def _run_frozen(self, graph: Any, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        return graph(x.to(dtype)).float()

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-self.logits(samples).astype(np.float64)))).astype(np.float32)


def _freeze(model: nn.Module, precision: str, shape: tuple[int, ...]) -> Any:
    """TorchScript trace + freeze + optimize_for_inference: batch norm folded into the convs and
    oneDNN's fused kernels (about 1.7x fp32 and 1.5x bf16 eager on 2 CPU cores). bf16 uses bf16
    weights, which runs on AVX512-BF16/AMX. None when tracing fails (eager is used then)."""
    import warnings

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    twin = copy.deepcopy(model).to(dtype)
    example = torch.zeros(shape, dtype=dtype).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notices
            traced = torch.jit.trace(twin, example, check_trace=False)
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    except Exception as exc:  # an unusual build without TorchScript: eager still works
        log.info("TorchScript freeze unavailable (%s); using eager torch", exc)
        return None


class OnnxBackend:
    """ONNX Runtime on an exported model (CPU execution provider, all graph optimisations)."""

    name = "onnx"

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, name: str = "onnx"
    ) -> None:
        self.name = name
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise InputError(
                "the onnx back end needs onnxruntime: pip install 'sepsiscope[onnx]'"
            ) from exc
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"no ONNX model at {self.path}: run `sepsiscope export RUN` first")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise InputError(
                f"{self.path}: not a valid ONNX model ({str(exc).splitlines()[0][:200]}); "
                "run `sepsiscope export RUN` again"
            ) from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != ONNX_INPUT or inputs[0].type != "tensor(uint8)":
            raise InputError(
                f"{self.path}: not a sepsiscope export (expects one uint8 input named "
                f"{ONNX_INPUT!r}); run `sepsiscope export RUN`"
            )

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        samples = _check_samples(samples)
        if len(samples) == 0:
            return np.zeros(0, np.float32)
        (prob,) = self.session.run(["probability"], {ONNX_INPUT: samples})
        return prob.astype(np.float32)


class TTABackend:
    """Any back end averaged over the 8 flips and quarter turns of each sample (8x its cost)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = f"{getattr(inner, 'name', '?')}+tta"

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        from sepsiscope.classifier.inference import with_tta

        return with_tta(self.inner, samples)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (ties an export to the weights it came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_model(run_dir: str | os.PathLike) -> tuple[SepsisNet, str, int]:
    """The trained model of a run, its input mode and sample size."""
    from sepsiscope.apply._runinfo import load_run

    model, info = load_run(run_dir)
    return model, info.input_mode, info.size


def load_backend(
    run_dir: str | os.PathLike, name: str = "auto", *, device: str = "cpu", batch_size: int = 64
) -> Backend:
    """The back end ``name`` (see module notes) for the run's trained classifier."""
    if name not in BACKENDS:
        raise InputError(f"unknown back end {name!r}: use one of {', '.join(BACKENDS)}")
    layout = RunLayout(run_dir).require_classifier()
    if name in ("onnx", "int8") and device.startswith("cuda"):
        raise InputError("the onnx back end runs on the CPU; use --backend fp32 or bf16 on CUDA")
    if name == "auto" and not device.startswith("cuda") and _onnx_current(layout):
        name = "onnx"
    if name in ("onnx", "int8"):
        path = layout.onnx if name == "onnx" else layout.onnx_int8
        again = "sepsiscope export RUN" + (" --int8" if name == "int8" else "")
        if not path.exists():
            raise InputError(f"no {name} model at {path}: run `{again}` first")
        backend = OnnxBackend(path, name=name)
        sha = backend.metadata.get("weights_sha256")
        if sha and sha != file_sha256(layout.model):
            raise InputError(
                f"{path} was exported from other weights than {layout.model}; run `{again}`"
            )
        _check_export_claims(layout, backend, path)
        return backend
    model, input_mode, _ = _run_model(run_dir)
    precision = "bf16" if name == "bf16" else "fp32"
    return TorchBackend(
        model, input_mode=input_mode, precision=precision, device=device, batch_size=batch_size
    )


def _check_export_claims(layout: RunLayout, backend: OnnxBackend, path: Path) -> None:
    """An export's claimed input mode and sample size (its metadata and input shape) must be the
    run's: a mismatch names the file and what differs."""
    saved = layout.saved_training()
    want = {
        "input_mode": saved.get("settings", {}).get("input_mode"),
        "size": saved.get("sampling", {}).get("size"),
    }
    shape = backend.session.get_inputs()[0].shape  # ["n", 3, S, S]
    have = {"input_mode": backend.metadata.get("input_mode"), "size": backend.metadata.get("size")}
    if isinstance(shape[-1], int):
        have["size"] = shape[-1]
    differs = [
        f"{key} {have[key]} in the file, {want[key]} in the run"
        for key in want
        if want[key] is not None and have[key] is not None and str(have[key]) != str(want[key])
    ]
    if differs:
        raise InputError(
            f"{path} does not match {layout.root}: {'; '.join(differs)}; "
            "run `sepsiscope export RUN` again"
        )


def _onnx_current(layout: RunLayout) -> bool:
    if not layout.onnx.exists():
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return layout.onnx.stat().st_mtime >= layout.model.stat().st_mtime
