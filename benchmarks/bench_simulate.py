"""Simulator speed: frames per second per camera profile, and the demo-size cohort's wall time.

Run: ``python benchmarks/bench_simulate.py [--repeats 3] [--skip-cohort]``; prints a markdown
table for docs/benchmarks.md (section "Simulator").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from sepsiscope.data.video import write_video
from sepsiscope.simulate import SimulateSettings, simulate_cohort
from sepsiscope.simulate.cohort import _RENDER, build_scene, plan_cohort
from sepsiscope.simulate.render import prepare, render_frames


def _video_rates(camera: str, seconds: float, repeats: int, folder: Path) -> tuple[float, float]:
    """Median frames/s of (rendering only, rendering + encoding) one video, one process."""
    render_rates, total_rates = [], []
    for r in range(repeats):
        plan = plan_cohort(SimulateSettings(patients=1, seconds=seconds, camera=camera, seed=r))[0]
        cam = plan.camera
        n = round(seconds * cam.fps)
        started = time.perf_counter()
        plan_render = prepare(plan.rng(_RENDER), build_scene(plan), cam, plan.optics, n_frames=n)
        frames = list(render_frames(plan_render))
        rendered = time.perf_counter()
        write_video(
            folder / f"bench{cam.suffix}", frames, cam.fps, quality=cam.quality, preset="ultrafast"
        )
        done = time.perf_counter()
        render_rates.append(n / (rendered - started))
        total_rates.append(n / (done - started))
    return statistics.median(render_rates), statistics.median(total_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--skip-cohort", action="store_true")
    args = parser.parse_args()
    print(
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()}; median of {args.repeats}."
    )
    print()
    print("| camera | frame | frames/s rendered | frames/s rendered + encoded |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for camera in ("microscan", "cytocam"):
            plan = plan_cohort(SimulateSettings(patients=1, camera=camera))[0]
            render, total = _video_rates(camera, args.seconds, args.repeats, Path(tmp))
            size = f"{plan.camera.width}x{plan.camera.height}"
            print(f"| {camera} | {size} | {render:.0f} | {total:.0f} |")
        if args.skip_cohort:
            return
        print()
        print("| demo-size cohort | videos | frames | workers | wall time, s | frames/s |")
        print("|---|---|---|---|---|---|")
        for camera in ("microscan", "mixed"):
            settings = SimulateSettings(patients=24, seconds=3.0, camera=camera, seed=0)
            result = simulate_cohort(Path(tmp) / camera, settings, quiet=True)
            workers = min(os.cpu_count() or 1, 4)
            print(
                f"| 24 patients x 3 videos x 3 s, {camera} | {result['n_videos']} | "
                f"{result['n_frames']} | {workers} | {result['seconds_taken']:.0f} | "
                f"{result['n_frames'] / result['seconds_taken']:.0f} |"
            )


if __name__ == "__main__":
    main()
