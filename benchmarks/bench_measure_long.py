"""Peak memory and time of ``sepsiscope measure`` on 10-s, 1-min and 5-min 640x480 videos.

One 10-s MicroScan-like video is simulated, and longer ones are written by repeating its frames
(MJPEG, 25 fps). Each is measured in a fresh process; the table gives the child's peak resident
memory and wall time, and the seconds analysed (the first ``max_seconds``, 10 by default, as
measure records in ``analysed_start_s``/``analysed_end_s``). Synthetic videos.

    python benchmarks/bench_measure_long.py --minutes 0.1667 1 5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import av

from sepsiscope.data.video import iter_frames
from sepsiscope.layout import CohortLayout
from sepsiscope.simulate import SimulateSettings, simulate_cohort

CHILD = """
import json, resource, sys, time
import pandas as pd
from sepsiscope.layout import MeasurementLayout
from sepsiscope.microcirculation.measure import MeasureSettings, measure
started = time.perf_counter()
measure(sys.argv[1], sys.argv[2], MeasureSettings(um_per_px=1.2, fps=25), quiet=True)
row = pd.read_parquet(MeasurementLayout(sys.argv[2]).videos).iloc[0]
print(json.dumps({"wall": time.perf_counter() - started,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "analysed": [row["analysed_start_s"], row["analysed_end_s"]],
                  "duration": row["video_duration_s"]}))
"""


def long_video(source: Path, path: Path, seconds: float, fps: int = 25) -> Path:
    """``source``'s frames repeated (forwards, then backwards, so motion stays smooth) for
    ``seconds``, written as MJPEG."""
    frames = [frame for _, frame in iter_frames(source)]
    cycle = frames + frames[::-1]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = (
            frames[0].shape[1],
            frames[0].shape[0],
            "yuvj420p",
        )
        for i in range(int(seconds * fps)):
            image = av.VideoFrame.from_ndarray(cycle[i % len(cycle)], format="gray")
            out.mux(stream.encode(image.reformat(format="yuvj420p")))
        out.mux(stream.encode())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10 / 60, 1, 5])
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = SimulateSettings(patients=1, videos_per_patient=1, seconds=10, camera="microscan",
                                width=640, height=480, seed=3)  # fmt: skip
        simulate_cohort(root / "cohort", plan, quiet=True)
        source = next(CohortLayout(root / "cohort").videos.iterdir())
        print(f"measure on 640x480 25-fps MJPEG videos; {cpu}, {platform.node()}\n")
        print("| video | frames | seconds analysed | peak memory | wall time |")
        print("|---|---:|---|---:|---:|")
        for minutes in args.minutes:
            video = long_video(source, root / f"v{minutes:g}.avi", minutes * 60)
            child = subprocess.run([sys.executable, "-c", CHILD, str(video), str(root / "m")],
                                   capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(child.stdout.strip().splitlines()[-1])
            start, end = r["analysed"]
            print(
                f"| {minutes * 60:g} s | {int(minutes * 60 * 25)} | {start:g}-{end:g} s of "
                f"{r['duration']:g} | {r['maxrss_kb'] / 1024:.0f} MiB | {r['wall']:.1f} s |"
            )


if __name__ == "__main__":
    main()
