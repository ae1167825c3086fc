"""Ingest's cost as a manifest grows: N rows whose files are missing, plus 6 real videos.

Before the fix every table was rewritten after each video (1,000 rows 20 s, 3,000 rows 76 s,
10,000 past 5 minutes); the files are now checked before any decoding and the tables rewritten at
most every 2 s. Prints a markdown table for docs/benchmarks.md.

    python benchmarks/bench_ingest_manifest.py --rows 1000 3000 10000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ingest_media import cohort, write_manifest  # noqa: E402
from bench_predict import _machine  # noqa: E402

from sepsiscope.data.ingest import IngestSettings, ingest  # noqa: E402
from sepsiscope.errors import PartialFailure  # noqa: E402


def run(rows: int, root: Path) -> float:
    manifest, real = cohort(root, 6)
    extra = [{**real[i % 6], "video": f"videos/missing{i}.avi"} for i in range(rows)]
    write_manifest(manifest, real + extra)
    start = time.perf_counter()
    with contextlib.suppress(PartialFailure):  # the missing files, as expected
        ingest(manifest, root / "store", IngestSettings(folds=0, min_duration_s=0), quiet=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 3000, 10000])
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the missing files are the point, not news
    print(f"Ingest of 6 real videos + N missing files; {_machine('cpu')}, {platform.node()}\n")
    print("| missing rows | seconds | ms per row |\n|---:|---:|---:|")
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = run(n, Path(tmp))
        print(f"| {n} | {seconds:.1f} | {1000 * seconds / n:.2f} |")


if __name__ == "__main__":
    main()
