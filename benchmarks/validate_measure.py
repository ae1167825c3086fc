"""Validate ``sepsiscope measure`` against the simulator's ground truth (both cameras).

Simulates a cohort (``--camera mixed``), measures it, and prints a markdown table of errors
against truth.csv: TVD and small-vessel TVD (relative), PPV and MFI (absolute), mean velocity
(relative, videos whose small vessels flow continuously), per camera and overall; writes
Bland-Altman plots to docs/img/measure_bland_altman.png. Synthetic data: not a clinical figure.

    python benchmarks/validate_measure.py --patients 6 --seconds 4 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from sepsiscope.layout import CohortLayout, MeasurementLayout
from sepsiscope.measure import MeasureSettings, measure
from sepsiscope.simulate import SimulateSettings, simulate_cohort

RELATIVE = ("tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "mean_velocity_um_per_s")
ABSOLUTE = ("ppv_percent", "mfi")
GOALS = {"tvd_mm_per_mm2": "median |err| <= 10 %", "tvd_small_mm_per_mm2": "median |err| <= 10 %",
         "ppv_percent": "within 10 points", "mfi": "within 0.3",
         "mean_velocity_um_per_s": "within 20 %"}  # fmt: skip


def compare(cohort: Path, measured: Path) -> pd.DataFrame:
    """One row per video: measured and true metrics side by side (suffix ``_true``)."""
    truth = pd.read_csv(CohortLayout(cohort).truth)
    manifest = pd.read_csv(CohortLayout(cohort).manifest)[["video", "camera"]]
    truth = truth.merge(manifest, on="video")
    truth["video_id"] = truth["video"].map(lambda v: Path(v).stem)
    videos = pd.read_parquet(MeasurementLayout(measured).videos)
    return videos.merge(truth, on="video_id", suffixes=("", "_true"))


def error_table(joined: pd.DataFrame) -> pd.DataFrame:
    rows = []
    ok = joined[joined["status"] == "ok"]
    for camera, group in [("all", ok), *ok.groupby("camera")]:
        for metric in (*RELATIVE[:2], *ABSOLUTE, RELATIVE[2]):
            truth, value = group[f"{metric}_true"], group[metric]
            if metric == "mean_velocity_um_per_s":  # continuously flowing fields only
                keep = group["ppv_percent_true"] >= 99
                truth, value = truth[keep], value[keep]
            keep = truth.notna() & value.notna()
            truth, value = truth[keep], value[keep]
            if metric in RELATIVE:
                err = 100 * (value - truth) / truth
                unit = "%"
            else:
                err = value - truth
                unit = "points" if metric == "ppv_percent" else ""
            rows.append({
                "camera": camera, "metric": metric, "n": int(keep.sum()),
                "bias": float(err.mean()) if len(err) else np.nan,
                "median_abs_error": float(err.abs().median()) if len(err) else np.nan,
                "p90_abs_error": float(err.abs().quantile(0.9)) if len(err) else np.nan,
                "unit": unit, "goal": GOALS[metric],
            })  # fmt: skip
    return pd.DataFrame(rows)


def bland_altman(joined: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sepsiscope._io import save_png

    ok = joined[joined["status"] == "ok"]
    metrics = (*RELATIVE[:2], *ABSOLUTE, RELATIVE[2])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    for ax, metric in zip(axes, metrics, strict=True):
        for camera, group in ok.groupby("camera"):
            a, b = group[metric], group[f"{metric}_true"]
            ax.scatter((a + b) / 2, a - b, s=14, label=camera)
        diff = ok[metric] - ok[f"{metric}_true"]
        mean, sd = diff.mean(), diff.std()
        for y, style in ((mean, "-"), (mean + 1.96 * sd, "--"), (mean - 1.96 * sd, "--")):
            ax.axhline(y, color="grey", linestyle=style, linewidth=1)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("mean of measured and true", fontsize=8)
        ax.set_ylabel("measured - true", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle("sepsiscope measure vs simulator truth (synthetic videos)", fontsize=10)
    fig.tight_layout()
    save_png(path, fig)


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""

    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="keep cohort and outputs here")
    parser.add_argument("--reuse", action="store_true", help="reuse earlier measurements")
    parser.add_argument("--png", type=Path, default=Path("docs/img/measure_bland_altman.png"))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="validate_measure_"))
    cohort, measured = work / "cohort", work / "measured"
    if not CohortLayout(cohort).truth.exists():
        plan = SimulateSettings(
            patients=args.patients, seconds=args.seconds, camera="mixed", seed=args.seed
        )
        simulate_cohort(cohort, plan, quiet=True)
    if not MeasurementLayout(measured).videos.exists() or not args.reuse:
        measure(CohortLayout(cohort).manifest, measured, MeasureSettings(workers=args.workers),
                quiet=True)  # fmt: skip
    joined = compare(cohort, measured)
    table = error_table(joined)
    bland_altman(joined, args.png)
    print(f"Validation on {len(joined)} simulated videos ({args.patients} patients, "
          f"{args.seconds:g} s, both cameras, seed {args.seed}); {platform.node()}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print(markdown(table))
    print(f"\nrejected: {int((joined['status'] != 'ok').sum())}; Bland-Altman plot: {args.png}")


if __name__ == "__main__":
    main()
