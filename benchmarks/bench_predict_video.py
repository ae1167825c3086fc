"""``sepsiscope predict`` on one 10-s video, end to end, per run (one model, the ensemble) and per
back end: wall time from the call to the written result, and how many times faster than real
time. Issue 15's goal on a 2-core machine without bf16: the ensemble >= 4x real time.

    python benchmarks/bench_predict_video.py --runs CV/ensemble CV/folds/fold_0
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_predict_video.py ...

The video is bench_predict.py's (640x480, 25 fps, MJPEG, drawn vessels with motion), the run's
own settings decide the sampling (2 samples per second by default), the threads are predict's
default (all cores). Everything predict does is timed: opening the run, building the back end
(TorchScript freezing, or ONNX export for ``onnx``), decoding every frame, the quality gate,
inference and writing predictions. ``int8`` needs ``sepsiscope export RUN --int8`` first and is
skipped, with the reason, when the run has none.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import _machine, _video  # noqa: E402

from sepsiscope.apply.predict import PredictSettings, predict  # noqa: E402
from sepsiscope.errors import SepsiscopeError  # noqa: E402


def time_predict(run: Path, video: Path, backend: str, out: Path, repeats: int) -> float:
    """Median wall seconds of ``predict(run, video)`` with ``backend`` (after one warm-up)."""
    times = []
    for i in range(repeats + 1):
        settings = PredictSettings(backend=backend, out=out / f"{backend}_{i}")
        start = time.perf_counter()
        predict(run, video, settings, quiet=True)
        if i:  # the first call warms the page cache and oneDNN's kernel choice
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True)
    parser.add_argument("--backends", nargs="+", default=["fp32", "bf16", "onnx", "int8"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cap = {
        k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ
    }
    print(f"Machine: {_machine('cpu')}; ISA cap: {cap or 'none'}\n")
    print(f"`predict` on a {args.seconds:g}-s 640x480 25-fps MJPEG video, end to end, median of "
          f"{args.repeats}\n")  # fmt: skip
    print("| run | back end | wall s | x real time |")
    print("| --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        video = _video(Path(tmp) / "ten_seconds.avi", args.seconds)
        for run in args.runs:
            for backend in args.backends:
                try:
                    wall = time_predict(run, video, backend, Path(tmp), args.repeats)
                except SepsiscopeError as error:
                    print(f"| {run} | {backend} | skipped: {error} | |", flush=True)
                    continue
                print(f"| {run} | {backend} | {wall:.2f} | {args.seconds / wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
