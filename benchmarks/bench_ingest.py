"""Ingest speed, store size and peak memory on simulated MicroScan and CytoCam videos.

Prints markdown tables (medians of repeats). Decoding = ``video.iter_frames`` over every frame;
ingest = ``sepsiscope.data.ingest`` end to end (decode every frame, sample 2/s, quality, write), one
video. Size compares the zarr arrays with the raw uint8 size of the same samples (the honest
baseline: sampling at 2/s already stores 12x fewer frames than the video has). Peak memory is the
peak resident set (VmHWM) of a fresh process ingesting 1 or 4 videos, to show it does not grow with
the cohort. Run: ``python benchmarks/bench_ingest.py`` (about 2-3 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from sepsiscope.data.ingest import IngestSettings, ingest, store_info
from sepsiscope.data.store import FrameStore
from sepsiscope.data.video import iter_frames, probe_video
from sepsiscope.simulate import SimulateSettings, simulate_cohort

REPEATS = 3
SECONDS = 8.0

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork + exec, so a child
# would report the (large) benchmark parent's peak.
_MEMORY_CHILD = """
import sys
from sepsiscope.data.ingest import IngestSettings, ingest
ingest(sys.argv[1], sys.argv[2], IngestSettings(val=0, test=0, folds=0), quiet=True)
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]))
"""


def _median_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cohort(root: Path, camera: str, patients: int) -> Path:
    settings = SimulateSettings(
        patients=patients, videos_per_patient=1, seconds=SECONDS, camera=camera, seed=1
    )
    simulate_cohort(root, settings, quiet=True)
    return root / "manifest.csv"


def _jpeg_bytes(samples: np.ndarray, quality: int = 90) -> int:
    """Size of the samples as JPEG planes: what a lossy store codec would reach (estimate)."""
    total = 0
    for plane in samples.reshape(-1, *samples.shape[2:]):
        ok, buf = cv2.imencode(".jpg", plane, [cv2.IMWRITE_JPEG_QUALITY, quality])
        total += len(buf)
    return total


def _speed_and_size(root: Path, camera: str) -> dict:
    manifest = _cohort(root / camera, camera, patients=2)
    videos = sorted((root / camera / "videos").iterdir())
    video = videos[0]
    info = probe_video(video)
    n_frames = sum(1 for _ in iter_frames(video))
    decode_s = _median_time(lambda: sum(1 for _ in iter_frames(video)))
    settings = IngestSettings(val=0, test=0, folds=0)
    one = root / f"{camera}-one.csv"
    lines = manifest.read_text().splitlines()
    one.write_text("\n".join(lines[:2]).replace("videos/", f"{camera}/videos/") + "\n")

    def run() -> None:
        ingest(one, root / f"{camera}-store", settings, quiet=True, overwrite=True)

    ingest_s = _median_time(run)
    store = FrameStore(root / f"{camera}-store")
    stats = store_info(store.root)
    samples = store.read_table(store.frames)
    return {
        "camera": camera,
        "geometry": f"{info.width}x{info.height} {info.codec}",
        "frames": n_frames,
        "decode_fps": n_frames / decode_s,
        "ingest_fps": n_frames / ingest_s,
        "samples_per_s": len(samples) / ingest_s,
        "samples": len(samples),
        "store_bytes": stats["size_bytes"],
        "raw_bytes": stats["raw_bytes"],
        "video_frames_raw_bytes": n_frames * info.width * info.height,
        "jpeg90_bytes": _jpeg_bytes(samples),
    }


def _peak_memory(root: Path, n_videos: int) -> float:
    manifest = _cohort(root / f"mem{n_videos}", "cytocam", patients=n_videos)
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(manifest), str(root / f"mem{n_videos}-store")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(out.stdout.split()[-1]) / 1024  # VmHWM is in KiB


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        rows = [_speed_and_size(root, camera) for camera in ("microscan", "cytocam")]
        memory = {n: _peak_memory(root, n) for n in (1, 4)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"Machine: {machine}; {SECONDS:g} s simulated videos, medians of {REPEATS}.\n")
    print("| camera | video | frames | decode frames/s | ingest frames/s | stored samples/s |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['camera']} | {r['geometry']} | {r['frames']} | {r['decode_fps']:.0f} | "
              f"{r['ingest_fps']:.0f} | {r['samples_per_s']:.1f} |")  # fmt: skip
    print("\n| camera | samples | store (zstd, lossless) | raw uint8 samples | store / raw | "
          "store / raw video frames | JPEG q90 estimate / raw |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['camera']} | {r['samples']} | {r['store_bytes'] / 1e6:.2f} MB | "
              f"{r['raw_bytes'] / 1e6:.2f} MB | {r['store_bytes'] / r['raw_bytes']:.2f} | "
              f"{r['store_bytes'] / r['video_frames_raw_bytes']:.3f} | "
              f"{r['jpeg90_bytes'] / r['raw_bytes']:.2f} |")  # fmt: skip
    print("\n| cytocam videos ingested | peak resident memory |")
    print("|---:|---:|")
    for n, mib in memory.items():
        print(f"| {n} | {mib:.0f} MiB |")
    print("\n" + json.dumps({"rows": rows, "peak_mib": memory}))


if __name__ == "__main__":
    main()
