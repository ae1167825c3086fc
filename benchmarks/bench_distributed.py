"""Ingest and measure of many short videos on a Dask LocalCluster: time, driver memory, growth.

Each size runs in a fresh Python process (so its peak RSS is its own): N short videos (1.2 s,
160x120, 25 fps; 8 distinct pictures, written once each and copied) are ingested and measured
with ``--scheduler local``. The driver's peak resident memory is read from getrusage (the driver
only: the Dask workers are other processes). Prints a markdown table for docs/benchmarks.md.

    python benchmarks/bench_distributed.py --videos 250 500 1000 2000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _ingest_media import vessel_frames, write_manifest  # noqa: E402


def make_cohort(root: Path, n: int) -> Path:
    from sepsiscope.data.video import write_video

    originals = []
    for i in range(8):
        path = root / f"original{i}.avi"
        write_video(path, vessel_frames(30, 120, 160, seed=i), 25)
        originals.append(path)
    rows = []
    for i in range(n):
        name = f"videos/v{i:05d}.avi"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(originals[i % 8], root / name)
        rows.append({"patient_id": f"p{i // 2:05d}", "video": name,
                     "label": "septic" if (i // 2) % 2 else "non-septic",
                     "um_per_px": 1.0, "fps": 25, "site": i % 2 + 1})  # fmt: skip
    return write_manifest(root / "manifest.csv", rows)


def one_size(n: int, workers: int) -> dict:
    from sepsiscope.data.ingest import IngestSettings, ingest
    from sepsiscope.microcirculation.measure import MeasureSettings, measure

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_cohort(root, n)
        dask = {"workers": workers, "scheduler": "local"}
        start = time.perf_counter()
        ingested = ingest(manifest, root / "store", IngestSettings(size=64, folds=0, **dask),
                          quiet=True)  # fmt: skip
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        settings = MeasureSettings(kymographs=0, overlays=False, **dask)
        measured = measure(manifest, root / "measure", settings, quiet=True)
        measure_s = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"videos": n, "ingested": ingested["videos"], "measured": measured["n_measured"],
            "ingest_s": ingest_s, "measure_s": measure_s, "driver_peak_mib": peak_mib}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.workers)))
        return
    # only here, in the parent: bench_predict loads torch, which would inflate the children's
    # peak memory, the figure measured
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import _machine

    machine = f"{_machine('cpu')}, {platform.node()}"
    print(f"Dask LocalCluster of {args.workers} worker processes; {machine}\n")
    print("| videos | ingest s | measure s | ms per video (both) | driver peak MiB |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.videos:
        child = [sys.executable, __file__, "--one", str(n), "--workers", str(args.workers)]
        r = json.loads(subprocess.run(child, check=True, capture_output=True, text=True)
                       .stdout.strip().splitlines()[-1])  # fmt: skip
        assert r["ingested"] == r["measured"] == n, r
        per_video = 1000 * (r["ingest_s"] + r["measure_s"]) / n
        print(f"| {n} | {r['ingest_s']:.0f} | {r['measure_s']:.0f} | {per_video:.0f} | "
              f"{r['driver_peak_mib']:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
