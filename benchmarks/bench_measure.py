"""Seconds per 10-second 640x480 25-fps video for ``sepsiscope measure``, and peak memory.

Simulates MicroScan-like videos once, then measures one video per repeat in a fresh process
(so import and peak memory are counted as a user sees them) and prints a markdown table of the
median wall time, the analysis time alone and the child's peak resident memory.

    python benchmarks/bench_measure.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sepsiscope.layout import CohortLayout
from sepsiscope.simulate import SimulateSettings, simulate_cohort

CHILD = """
import json, resource, sys, time
from sepsiscope.microcirculation.measure import MeasureSettings, measure
started = time.perf_counter()
result = measure(sys.argv[1], sys.argv[2], MeasureSettings(um_per_px=1.2, fps=25), quiet=True)
segments = result["videos"][0]["n_segments"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall": time.perf_counter() - started, "segments": segments, "maxrss_kb": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_measure_"))
    cohort = CohortLayout(work / "cohort")
    if not cohort.manifest.exists():
        simulate_cohort(cohort.root, SimulateSettings(patients=2, videos_per_patient=1,
                        seconds=args.seconds, camera="microscan", seed=3), quiet=True)  # fmt: skip
    video = sorted(cohort.videos.glob("*"))[0]
    walls, analysis, peaks, segments = [], [], [], 0
    for i in range(args.repeats):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(video), str(work / f"m{i}")],
                             capture_output=True, text=True, check=True)  # fmt: skip
        walls.append(time.perf_counter() - started)
        child = json.loads(out.stdout.strip().splitlines()[-1])
        analysis.append(child["wall"])
        peaks.append(child["maxrss_kb"] / 1024)
        segments = child["segments"]
    load = os.getloadavg()[0]
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; load average {load:.1f} at the end\n")  # fmt: skip
    print("| video | repeats | wall s (process) | measure() s | peak RSS MiB | segments |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.seconds:g} s 640x480 25 fps MJPEG (simulated MicroScan) | {args.repeats} | "
        f"{statistics.median(walls):.1f} | {statistics.median(analysis):.1f} | "
        f"{max(peaks):.0f} | {segments} |"
    )


if __name__ == "__main__":
    main()
