"""Prediction speed: model-only frames/s per back end, end-to-end on a 640x480 25-fps MJPEG video,
and live-mode latency. Prints a markdown table (medians of repeats) naming the machine.

    python benchmarks/bench_predict.py                 # 2 CPU threads, the issue's setting
    python benchmarks/bench_predict.py --device cuda   # GPU (fp32 and bf16 torch back ends)

Model-only = uint8 samples (n, 3, 224, 224) in, probabilities out: the per-sample standardisation
is included, decoding is not. End-to-end runs the real prediction path (decode every frame, ring
buffer, ingest's quality gate, make_samples, inference): "all frames inferred" samples every frame
(rate = fps), "sampled" uses the default 2 samples per second, so most frames are only decoded.
Live latency replays the video at 25 fps (LiveSource) and measures the time from the arrival of
the frame that completes a sample to the updated video probability (batch 1).
The weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"
    text += f", {torch.get_num_threads()} torch threads"
    if device.startswith("cuda"):
        text += f", GPU {torch.cuda.get_device_name(0)}"
    if hasattr(os, "getloadavg"):
        text += f", load average {os.getloadavg()[0]:.1f}"
    return text


def _median_rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up: kernel selection, ORT/oneDNN plans
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return n_items / statistics.median(times)


def model_only(device: str, batches: list[int], repeats: int, size: int, tmp: Path) -> list:
    from sepsiscope.apply.backends import OnnxBackend, TorchBackend
    from sepsiscope.apply.export import export_model_onnx
    from sepsiscope.models.classifier import SepsisNet

    torch.manual_seed(0)
    model = SepsisNet().eval()
    cpu = not device.startswith("cuda")
    backends = {
        "torch fp32 eager (reference)": TorchBackend(
            model, input_mode="time", device=device, freeze=False
        ),
        "torch bf16 eager autocast": TorchBackend(
            model, input_mode="time", precision="bf16", device=device, freeze=False
        ),
    }
    if cpu:
        backends["torch fp32 frozen (TorchScript, BN folded)"] = TorchBackend(
            model, input_mode="time"
        )
        backends["torch bf16 frozen (bf16 weights) [--backend bf16]"] = TorchBackend(
            model, input_mode="time", precision="bf16"
        )
        path = export_model_onnx(model, tmp / "m.onnx", input_mode="time", size=size)
        backends["ONNX Runtime fp32 (CPU EP, all graph optimisations)"] = OnnxBackend(path)
    rows = []
    rng = np.random.default_rng(0)
    for batch in batches:
        samples = rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8)
        reference = None
        for name, backend in backends.items():
            backend.batch_size = batch
            rate = _median_rate(lambda b=backend, s=samples: b(s), batch, repeats)
            probs = backend(samples)
            reference = probs if reference is None else reference
            diff = float(np.abs(probs - reference).max())
            rows.append((name, batch, rate, diff))
            print(f"  {name} batch {batch}: {rate:.0f} frames/s", file=sys.stderr)
    return rows, backends


def _video(path: Path, seconds: float) -> Path:
    import cv2

    from sepsiscope.data.video import write_video

    rng = np.random.default_rng(0)
    big = np.full((520, 680), 150, np.uint8)
    for _ in range(120):
        p0 = tuple(int(v) for v in rng.integers(0, (680, 520)))
        p1 = tuple(int(v) for v in rng.integers(0, (680, 520)))
        cv2.line(big, p0, p1, int(rng.integers(40, 90)), int(rng.integers(3, 12)))
    big = cv2.GaussianBlur(big, (0, 0), 1.0)
    frames = (
        np.clip(
            big[i % 20 : i % 20 + 480, i % 30 : i % 30 + 640] + rng.normal(0, 4, (480, 640)), 0, 255
        ).astype(np.uint8)
        for i in range(int(seconds * 25))
    )
    return write_video(path, frames, 25.0)


def end_to_end(backend, video: Path, repeats: int, size: int) -> list:
    from sepsiscope.apply._streaming import stream_predictions
    from sepsiscope.apply.sources import LiveSource, file_frames
    from sepsiscope.data._sampling import SamplingPlan
    from sepsiscope.data.video import iter_frames, probe_video

    info = probe_video(video)
    n = info.n_frames
    rows = []
    decode = _median_rate(lambda: sum(1 for _ in iter_frames(video)), n, repeats)
    rows.append(("decode only (PyAV, grey)", decode, None))
    for label, rate_hz in (("all frames inferred", 25.0), ("sampled, 2 samples/s", 2.0)):
        plan = SamplingPlan(None, rate_hz, size, "center", 0.15, 5.0, 3.0)

        def go(plan=plan):
            for _ in stream_predictions(
                file_frames(video, 25.0), backend, plan, fps=25.0, batch_size=32
            ):
                pass

        rows.append((label, _median_rate(go, n, repeats), None))
    plan = SamplingPlan(None, 5.0, size, "center", 0.15, 5.0, 3.0)
    backend(np.zeros((1, 3, size, size), np.uint8))
    latencies: list[float] = []
    for update in stream_predictions(
        LiveSource(video, 25.0), backend, plan, fps=25.0, batch_size=1
    ):
        latencies.extend(update.latencies_ms)
    rows.append(
        (
            "live latency, ms (5 samples/s, batch 1)",
            float(np.median(latencies)),
            float(np.percentile(latencies, 95)),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ORT)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="32,64")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the test video")
    parser.add_argument("--backend", default="best", help="end-to-end back end (a row name)")
    parser.add_argument("--no-e2e", action="store_true", help="model-only figures alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = 224
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows, backends = model_only(
            args.device, [int(b) for b in args.batches.split(",")], args.repeats, size, tmp
        )
        print(f"Machine: {_machine(args.device)}; device {args.device}\n")
        print("| back end (model only, 224x224, uint8 in) | batch | frames/s | max Δp vs fp32 |")
        print("| --- | ---: | ---: | ---: |")
        for name, batch, rate, diff in rows:
            print(f"| {name} | {batch} | {rate:.0f} | {diff:.1e} |")
        if args.no_e2e:
            return
        name = max(rows, key=lambda r: r[2])[0] if args.backend == "best" else args.backend
        backend = backends[name]
        backend.batch_size = 32
        video = _video(tmp / "bench.avi", args.seconds)
        print(f"\nEnd to end, {args.seconds:g} s 640x480 25-fps MJPEG video, back end: {name}\n")
        print("| path | video frames/s (x real time) | p95 |")
        print("| --- | ---: | ---: |")
        for label, value, p95 in end_to_end(backend, video, args.repeats, size):
            if p95 is None:
                print(f"| {label} | {value:.0f} ({value / 25:.1f}x) | |")
            else:
                print(f"| {label} | {value:.0f} ms (median) | {p95:.0f} ms |")


if __name__ == "__main__":
    main()
