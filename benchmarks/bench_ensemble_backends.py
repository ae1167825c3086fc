"""One model against a five-member ensemble, per back end (fp32, bf16, ONNX fp32, int8), with a
roofline: model-only samples/s at batch 32 and batch-1 latency on 2 CPU threads, the int8 model's
agreement with fp32, and the arithmetic rate each reaches against the machine's matmul peak.

    python benchmarks/bench_ensemble_backends.py --run sepsiscope-demo/run

The run's weights and store are used (the int8 model is calibrated on its train split and
checked on its validation split). The ensemble's five members are the run's model with its
weights multiplied by 1 + 0.1 % noise, one draw per member: distinct, or ONNX Runtime would merge
identical members into one; speed does not depend on the weights. Samples are 224 px. The peaks
are 2048x2048 matrix products on the same 2 threads (fp32 and bf16 with torch's oneDNN, int8 with
``torch._int_mm``); a network reaches less than a large matrix product.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import _machine  # noqa: E402


def _rate(fn, samples: np.ndarray, repeats: int) -> float:
    fn(samples)  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(samples)
        times.append(time.perf_counter() - start)
    return len(samples) / statistics.median(times)


def _latency_ms(fn, sample: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        fn(sample)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(sample)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _flops_per_sample(model: torch.nn.Module, size: int) -> float:
    """Multiply-adds x 2 of the convolutions and linear layers for one sample."""
    total = [0.0]

    def hook(module, _inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels / module.groups
            total[0] += 2 * k * output.numel()
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * module.in_features * output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]  # fmt: skip
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total[0]


def _matmul_peak_gflops(dtype: torch.dtype) -> float:
    """GFLOP/s (int8: GOP/s) of a 2048x2048 matrix product; NaN where there is no kernel."""
    if dtype == torch.int8:
        a = torch.randint(-128, 127, (2048, 2048), dtype=dtype)
        b = torch.randint(-128, 127, (2048, 2048), dtype=dtype)

        def product():
            return torch._int_mm(a, b)
    else:
        a = torch.randn(2048, 2048, dtype=dtype)
        b = torch.randn(2048, 2048, dtype=dtype)

        def product():
            return a @ b

    try:
        for _ in range(2):
            product()
    except (RuntimeError, AttributeError):
        return float("nan")
    start, n = time.perf_counter(), 5
    for _ in range(n):
        product()
    return n * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from safetensors.torch import save_file

    from sepsiscope._io import read_json, write_json
    from sepsiscope.apply.backends import bf16_supported, load_backend
    from sepsiscope.apply.export import _store_samples, export
    from sepsiscope.classifier.inference import load_classifier
    from sepsiscope.layout import RunLayout
    from sepsiscope.models.ensemble import EnsembleNet

    model, _ = load_classifier(args.run)
    samples = _store_samples(args.run, None, "val", 32, 0)
    size = samples.shape[-1]
    rows, agreement = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        ensemble_run = RunLayout(Path(tmp) / "ensemble")
        ensemble_run.classifier.mkdir(parents=True)
        ensemble = EnsembleNet(args.members)
        generator = torch.Generator().manual_seed(0)
        for member in ensemble.members:
            member.load_state_dict({
                k: v * (1 + 1e-3 * torch.randn(v.shape, generator=generator))
                if v.is_floating_point() else v for k, v in model.state_dict().items()
            })  # fmt: skip
        save_file({k: v.contiguous() for k, v in ensemble.state_dict().items()},
                  str(ensemble_run.model))  # fmt: skip
        saved = read_json(RunLayout(args.run).model_settings)
        write_json(ensemble_run.model_settings, {**saved, "ensemble": {"members": args.members}})
        if RunLayout(args.run).threshold.exists():
            write_json(ensemble_run.threshold, read_json(RunLayout(args.run).threshold))
        single_run = RunLayout(Path(tmp) / "single")
        single_run.classifier.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(single_run.model))  # fmt: skip
        write_json(single_run.model_settings, saved)
        if RunLayout(args.run).threshold.exists():
            write_json(single_run.threshold, read_json(RunLayout(args.run).threshold))
        store = RunLayout(args.run).store_dir()
        for name, run, n_members in (("single", single_run, 1), ("ensemble", ensemble_run,
                                                                 args.members)):  # fmt: skip
            result = export(run.root, int8=True, store=store)
            agreement[name] = result["int8"]
            flops = _flops_per_sample(model, size) * n_members
            backends = ["fp32", "onnx", "int8"] + (["bf16"] if bf16_supported() else [])
            for backend_name in backends:
                backend = load_backend(run.root, backend_name, batch_size=32)
                rate = _rate(backend, samples, args.repeats)
                latency = _latency_ms(backend, samples[:1], args.repeats * 4)
                rows.append((name, backend_name, rate, latency, flops * rate / 1e9))
    peaks = {
        "fp32": _matmul_peak_gflops(torch.float32),
        "bf16": _matmul_peak_gflops(torch.bfloat16),
        "int8": _matmul_peak_gflops(torch.int8),
    }
    peaks["onnx"] = peaks["fp32"]  # fmt: skip
    print(f"{_machine('cpu')}, 2 threads, {platform.node()}; run {args.run}; {size}-px samples; "
          f"bf16 native: {bf16_supported()}\n")  # fmt: skip
    print(f"Matrix-product peaks here (2048x2048, 2 threads): fp32 {peaks['fp32']:.0f}, bf16 "
          f"{peaks['bf16']:.0f}, int8 {peaks['int8']:.0f} G(FL)OP/s. One sample: "
          f"{_flops_per_sample(model, size) / 1e9:.2f} GFLOP per model.\n")  # fmt: skip
    print("| model | back end | samples/s (batch 32) | latency ms (batch 1) | G(FL)OP/s reached | "
          "of its precision's peak |\n|---|---|---:|---:|---:|---:|")  # fmt: skip
    for name, backend_name, rate, latency, gflops in rows:
        print(f"| {name} | {backend_name} | {rate:.1f} | {latency:.1f} | {gflops:.0f} | "
              f"{100 * gflops / peaks[backend_name]:.0f} % |")  # fmt: skip
    print("\nint8 against ONNX fp32 on the store's validation samples:\n")
    print("| model | samples checked | max abs Δp | mean abs Δp | decisions flipped |")
    print("|---|---:|---:|---:|---:|")
    for name, q in agreement.items():
        print(f"| {name} | {q['n_check']} | {q['max_abs_diff']:.4f} | {q['mean_abs_diff']:.4f} | "
              f"{q['flips']} |")  # fmt: skip


if __name__ == "__main__":
    main()
