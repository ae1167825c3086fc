"""Interlaced video measured as frames and as fields (``measure --fields``), against the truth.

Our simulator renders MicroScan-like videos at 50 frames/s; each pair of frames is woven into
one interlaced frame at 25 frames/s (even rows from the earlier, as an analogue camera takes its
fields 20 ms apart), and every other frame gives the progressive 25-frame/s reference. The
reference and the interlaced copy are measured as frames, the interlaced copy once more with
``fields="top_first"`` and both with the default, ``auto`` (fields where the frames show them),
and each is compared with the simulator's truth (validate_measure).
Synthetic data: a description of the method on a simulator, not a clinical figure.

    python benchmarks/interlaced_fields.py --work /tmp/interlaced [--patients 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_measure import agreement_table, compare, error_table, markdown  # noqa: E402

from sepsiscope.data.video import read_frames, write_video  # noqa: E402
from sepsiscope.layout import CohortLayout, MeasurementLayout  # noqa: E402
from sepsiscope.microcirculation.measure import MeasureSettings, measure  # noqa: E402
from sepsiscope.simulate import cameras  # noqa: E402
from sepsiscope.simulate.cohort import SimulateSettings, simulate_cohort  # noqa: E402

COPIED = ("truth.csv", "vessels.json", "settings.json")


def render_fields(out: Path, patients: int, seed: int) -> None:
    """The MicroScan-like camera at 50 frames/s (its 20 ms exposure kept), rendered in this
    process: worker processes would not see the changed camera."""
    cameras.CAMERAS["microscan"] = replace(cameras.CAMERAS["microscan"], fps=50.0)
    settings = SimulateSettings(patients=patients, videos_per_patient=2, seconds=3.0,
                                camera="microscan", seed=seed, workers=1)  # fmt: skip
    simulate_cohort(out, settings, quiet=True)


def weave(source: Path, out: Path, *, interlaced: bool) -> None:
    """A 25-frame/s copy of a 50-frame/s cohort: woven pairs of frames, or every other frame."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    manifest = pd.read_csv(CohortLayout(source).manifest)
    for row in manifest.itertuples():
        frames = read_frames(source / row.video)
        frames = frames[: len(frames) // 2 * 2]
        woven = frames[0::2].copy()
        if interlaced:
            woven[:, 1::2] = frames[1::2, 1::2]  # odd rows 20 ms later
        write_video(out / row.video, woven, 25.0, quality=90)
    manifest.assign(fps=25.0).to_csv(CohortLayout(out).manifest, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    fields50 = args.work / "cohort50"
    if not CohortLayout(fields50).truth.exists():
        render_fields(fields50, args.patients, args.seed)
    runs = (("progressive, as frames", "progressive", "progressive"),
            ("progressive, auto", "progressive", "auto"),
            ("interlaced, as frames", "interlaced", "progressive"),
            ("interlaced, --fields top_first", "interlaced", "top_first"),
            ("interlaced, auto", "interlaced", "auto"))  # fmt: skip
    rows = []
    for label, copy, fields in runs:
        cohort = args.work / copy
        if not CohortLayout(cohort).manifest.exists():
            weave(fields50, cohort, interlaced=copy == "interlaced")
        measured = args.work / f"{copy}_{fields}"
        settings = MeasureSettings(workers=args.workers, fields=fields, kymographs=0)
        measure(CohortLayout(cohort).manifest, measured, settings, quiet=True)
        joined = compare(cohort, measured)
        errors = error_table(joined)
        errors = errors[errors["camera"] == "all"].set_index("metric")
        bias = agreement_table(joined).set_index(["camera", "metric"])
        fields_used = pd.read_parquet(MeasurementLayout(measured).videos)["fields"]
        row = {"video": label, "videos": len(joined),
               "as fields": int((fields_used != "progressive").sum())}  # fmt: skip
        for metric in ("tvd_mm_per_mm2", "tvd_seen_mm_per_mm2", "ppv_percent", "mfi",
                       "mean_velocity_um_per_s"):  # fmt: skip
            error = errors.loc[metric]
            row[metric] = f"{error['median_abs_error']:.2f} / {error['p90_abs_error']:.2f}"
        velocity_bias = float(bias.loc[("all", "mean_velocity_um_per_s"), "bias_%"])
        row["velocity_bias_%"] = f"{velocity_bias:.1f}"
        rows.append(row)
    print(f"Median / 90th percentile of |error| (TVD and velocity in %, PPV in points), "
          f"{args.patients * 2} videos:\n")  # fmt: skip
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
