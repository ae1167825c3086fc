"""Speed of the representation stages: t-SNE time against the number of frames, and autoencoder
training throughput in fp32 and bf16.

Prints markdown tables for docs/benchmarks.md (## Representations). t-SNE runs on synthetic
128-d features (20 Gaussian groups, like a classifier's features of 20 patients) with the
settings ``sepsiscope embed`` uses: openTSNE, PCA initialisation, FFT-interpolated gradients,
``n_jobs`` threads, 250 early-exaggeration and 500 further iterations ("default"), and a shorter
schedule ("fast": 125 + 375) to show what fewer iterations buy. The autoencoder trains on random
224 x 224 uint8 samples (batch 32, Adam, MSE) as ``sepsiscope autoencode`` does.

    python benchmarks/bench_embed.py                 # 5k, 20k, 50k frames; about 3-4 minutes
    python benchmarks/bench_embed.py --sizes 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from sepsiscope.models.autoencoder import ConvAutoencoder, to_unit_range
from sepsiscope.representations import _shared as R

SCHEDULES = {"default": (250, 500), "fast": (125, 375)}


def synthetic_features(n: int, *, dim: int = 128, groups: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (groups, dim))
    return (centres[rng.integers(0, groups, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def time_tsne(n: int, schedule: str, *, n_jobs: int, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (CPU time is what a busy machine distorts
    least: on an idle machine the wall time lies between CPU / n_jobs and CPU)."""
    x = synthetic_features(n)
    early, rest = SCHEDULES[schedule]
    walls, cpus = [], []
    for r in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        R.tsne_map(x, perplexity=30, seed=r, n_jobs=n_jobs, gradient="fft", n_iter=rest,
                   early_exaggeration_iter=early)  # fmt: skip
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def autoencoder_frames_per_s(precision: str, *, steps: int, batch: int = 32) -> float:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ConvAutoencoder(1152).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    samples = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
    times = []
    for step in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            x = to_unit_range(samples, "single")
            loss = torch.nn.functional.mse_loss(model(x).float(), x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="autoencoder steps per precision")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(args.n_jobs)
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"t-SNE with n_jobs={args.n_jobs}, torch threads {torch.get_num_threads()}, "
          f"median of {args.repeats} run(s)\n")  # fmt: skip
    print(f"Load average at start: {os.getloadavg()[0]:.1f}\n")
    print("| frames | schedule (early + rest iterations) | wall, s | CPU, s |")
    print("| ---: | --- | ---: | ---: |")
    for n in sizes:
        for schedule in ("default", "fast") if n == 20000 else ("default",):
            early, rest = SCHEDULES[schedule]
            wall, cpu = time_tsne(n, schedule, n_jobs=args.n_jobs, repeats=args.repeats)
            print(f"| {n:,} | {schedule} ({early} + {rest}) | {wall:.1f} | {cpu:.1f} |",
                  flush=True)  # fmt: skip
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\nAutoencoder training, 224 px, bottleneck 1152, batch 32, on {device}:\n")
    print("| precision | frames/s |")
    print("| --- | ---: |")
    for precision in ("fp32", "bf16"):
        rate = autoencoder_frames_per_s(precision, steps=args.steps)
        print(f"| {precision} | {rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
