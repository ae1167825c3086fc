"""Classifier training and inference throughput, frames/s, fp32 against bf16.

The real data path: a 224x224 frame store written to a temporary folder, read into memory as
training does (``_train_data.read_samples``), batches cut by ``EpochBatches``, augmented on the
batch (``augment_batch``), standardised (``prepare_batch``), channels-last, Adam step. Inference
is ``sepsiscope.classifier.inference.infer``. Prints a markdown table (median of repeats).

    python benchmarks/bench_train.py                    # 2 CPU threads
    python benchmarks/bench_train.py --device cuda      # a GPU (bigger batches)
    python benchmarks/bench_train.py --lightning        # also a timed Lightning epoch (CPU)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _train_store import write_tiny_store  # noqa: E402

from sepsiscope.classifier._augment import augment_batch  # noqa: E402
from sepsiscope.classifier._train_data import EpochBatches, MemorySamples, read_samples  # noqa: E402
from sepsiscope.classifier.inference import infer  # noqa: E402
from sepsiscope.data.store import FrameStore  # noqa: E402
from sepsiscope.models.classifier import SepsisNet, prepare_batch  # noqa: E402
from sepsiscope.models.precision import cpu_supports_bf16  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train_rate(data, device, *, bf16, batch_size, steps, warmup, augment=True) -> float:
    """Median training frames/s over ``steps`` timed steps (after ``warmup``)."""
    torch.manual_seed(0)
    model = SepsisNet().to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = EpochBatches(len(data), batch_size, seed=0)
    g = torch.Generator(device=device).manual_seed(0)
    times, it = [], iter(())
    for step in range(warmup + steps):
        try:
            idx = next(it)
        except StopIteration:
            sampler.set_epoch(step)
            it = iter(sampler)
            idx = next(it)
        _sync(device)
        start = time.perf_counter()
        x, y, _ = data[idx]
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment:
            x = augment_batch(x, g)
        x = prepare_batch(x, "time").contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            logits = model(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if step >= warmup:
            times.append((time.perf_counter() - start) / len(y))
    return 1.0 / statistics.median(times)


def infer_rate(samples, device, *, bf16, batch_size, repeats) -> float:
    model = SepsisNet().to(device).eval()
    precision = "bf16" if bf16 else "fp32"
    infer(model, samples[:batch_size], input_mode="time", batch_size=batch_size,
          precision=precision)  # fmt: skip
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        infer(model, samples, input_mode="time", batch_size=batch_size, precision=precision)
        _sync(device)
        times.append((time.perf_counter() - start) / len(samples))
    return 1.0 / statistics.median(times)


def lightning_rate(store_dir: Path, run_dir: Path, *, bf16: bool, batch_size: int) -> float:
    """Frames/s of one whole Lightning epoch of ``sepsiscope.classifier.train`` (training batches
    only)."""
    import lightning as L

    from sepsiscope.classifier.train import TrainSettings, train

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.times.append((time.perf_counter() - self.start) / len(batch[1]))

    timer = Timer()
    original = L.Trainer.__init__

    def with_timer(self, *args, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), timer]
        original(self, *args, **kwargs)

    L.Trainer.__init__ = with_timer
    try:
        settings = TrainSettings(epochs=1, batch_size=batch_size,
                                 precision="bf16" if bf16 else "fp32")  # fmt: skip
        train(store_dir, run_dir, settings, quiet=True, overwrite=True)
    finally:
        L.Trainer.__init__ = original
    return 1.0 / statistics.median(timer.times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads [2]")
    parser.add_argument("--batch-size", type=int, default=None, help="[32 CPU, 128 GPU]")
    parser.add_argument("--steps", type=int, default=None, help="timed steps [6 CPU, 30 GPU]")
    parser.add_argument("--lightning", action="store_true", help="also time a Lightning epoch")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    torch.set_num_threads(args.threads)
    batch = args.batch_size or (128 if cuda else 32)
    steps = args.steps or (30 if cuda else 6)
    with tempfile.TemporaryDirectory() as tmp:
        # 5 patients per class (2 train, 2 val, 1 test), one video of `batch` samples each:
        # 4 training batches per epoch
        layout = write_tiny_store(Path(tmp) / "store", per_class=5, frames=batch, size=224)
        store = FrameStore(layout.root)
        table = store.samples(None)
        x = read_samples(store, table)
        data = MemorySamples(x, torch.tensor(table["y"].to_numpy(np.float32)),
                             torch.zeros(len(table), dtype=torch.long))  # fmt: skip
        rows = []
        for bf16 in (False, True):
            for augment in (True, False):
                rate = train_rate(data, args.device, bf16=bf16, batch_size=batch, steps=steps,
                                  warmup=2, augment=augment)  # fmt: skip
                rows.append(("train", "bf16" if bf16 else "fp32",
                             "on" if augment else "off", rate))  # fmt: skip
            rows.append(("infer", "bf16" if bf16 else "fp32", "-",
                         infer_rate(x.numpy(), args.device, bf16=bf16, batch_size=batch * 2,
                                    repeats=3)))  # fmt: skip
        if args.lightning and not cuda:
            for bf16 in (False, True):
                rate = lightning_rate(layout.root, Path(tmp) / "run", bf16=bf16, batch_size=batch)
                rows.append(("train (Lightning epoch)", "bf16" if bf16 else "fp32", "on", rate))
    if cuda:
        machine = torch.cuda.get_device_name(0)
    else:
        native = "native bf16" if cpu_supports_bf16() else "no native bf16"
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads of "
        machine += f"{os.cpu_count()} CPUs ({native}, {torch.backends.cpu.get_cpu_capability()})"
    print(f"Machine: {machine}; torch {torch.__version__}; 224x224 samples, batch {batch}, "
          f"median of {steps} steps (train) / 3 passes over {len(x)} frames (infer)\n")  # fmt: skip
    print("| stage | precision | augmentation | frames/s |")
    print("|---|---|---|---:|")
    for stage, precision, augment, rate in rows:
        print(f"| {stage} | {precision} | {augment} | {rate:.1f} |")


if __name__ == "__main__":
    main()
