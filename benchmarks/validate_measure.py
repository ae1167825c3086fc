"""Validate ``sepsiscope measure`` against the simulator's ground truth (both cameras).

Simulates a cohort (``--camera mixed``), measures it, and prints a markdown table of errors
against truth.csv: TVD and small-vessel TVD (relative), PPV and MFI (absolute), mean velocity
(relative, videos whose small vessels flow continuously), per camera and overall; agreement
(Bland-Altman, ICC, Lin), the vessel count against the number of vessels drawn, the ten worst
videos per metric; then a per-vessel velocity table (measured segments matched to vessels.json,
see ``match_segments``) by camera and true speed; writes Bland-Altman plots to ``--png``
(docs/img/measure_bland_altman.png). ``--renderer second`` draws the cohort with the
independently written benchmarks/second_renderer.py instead of ``sepsiscope simulate``;
``--cohort DIR`` validates a cohort folder already made (either layout). Synthetic data: not a
clinical figure.

    python benchmarks/validate_measure.py --patients 8 --videos-per-patient 2 --seconds 3
    python benchmarks/validate_measure.py --renderer second \
        --png docs/img/measure_bland_altman_second.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sepsiscope.layout import CohortLayout, MeasurementLayout
from sepsiscope.microcirculation.agreement import agreement
from sepsiscope.microcirculation.measure import MeasureSettings, measure
from sepsiscope.simulate import SimulateSettings, simulate_cohort

RELATIVE = ("tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "mean_velocity_um_per_s")
ABSOLUTE = ("ppv_percent", "mfi")
SEEN = ("tvd_seen_mm_per_mm2", "tvd_small_seen_mm_per_mm2")
GOALS = {"tvd_mm_per_mm2": "median |err| <= 10 %", "tvd_small_mm_per_mm2": "median |err| <= 10 %",
         "tvd_seen_mm_per_mm2": "(diagnostic)", "tvd_small_seen_mm_per_mm2": "(diagnostic)",
         "ppv_percent": "within 10 points", "mfi": "within 0.3",
         "mean_velocity_um_per_s": "within 20 %"}  # fmt: skip


def seen_points(video: dict, step_px: float = 0.5) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Every visible vessel's centreline points in the frame (``(x, y)`` px, ``step_px`` apart)
    and which of them a 2-D image of the field can show.

    truth.csv adds up every vessel's centreline, so where two vessels overlap in projection (a
    capillary under a venule, two capillaries side by side, a branch leaving its parent at a
    shallow angle) that stretch counts twice, although no image of the field can show it twice.
    Here vessels are taken widest first, and a centreline point is seen only if it lies outside
    the lumen of every vessel taken before. Raises KeyError, TypeError or ValueError when the
    record lacks the fields.
    """
    from scipy.spatial import cKDTree

    um = float(video["um_per_px"])
    width, height = video["width"], video["height"]
    vessels = sorted((v for v in video["vessels"] if v.get("visible", True)),
                     key=lambda v: -v["diameter_um"])  # fmt: skip
    taken_points, taken_radius = np.zeros((0, 2)), np.zeros(0)
    result = []
    for v in vessels:
        line = np.asarray(v.get("centreline_px", []), float)
        if line.ndim != 2 or len(line) < 2:
            continue
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
        at = np.arange(step_px / 2, arc[-1], step_px)
        pts = np.stack([np.interp(at, arc, line[:, 0]), np.interp(at, arc, line[:, 1])], axis=1)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
        seen = np.ones(len(pts), bool)
        if len(taken_points):
            distance, nearest = cKDTree(taken_points).query(pts)
            seen = distance >= taken_radius[nearest]
        result.append((v, pts[inside], seen[inside]))
        taken_points = np.concatenate([taken_points, pts])
        radius = v["diameter_um"] / 2 / um
        taken_radius = np.concatenate([taken_radius, np.full(len(pts), radius)])
    return result


def seen_density(video: dict, step_px: float = 0.5) -> dict[str, float]:
    """TVD of the vessel pattern as a 2-D image shows it (:func:`seen_points`), mm/mm², from
    per-vessel truth; NaN when the record lacks the fields."""
    try:
        points = seen_points(video, step_px)
        um, area_px = float(video["um_per_px"]), video["width"] * video["height"]
    except (KeyError, TypeError, ValueError):  # a cohort whose vessels.json lacks these
        return {"tvd_seen_mm_per_mm2_true": np.nan, "tvd_small_seen_mm_per_mm2_true": np.nan}
    total = sum(step_px * float(seen.sum()) for _, _, seen in points)
    small = sum(step_px * float(seen.sum()) for v, _, seen in points
                if v.get("small", v["diameter_um"] < 20))  # fmt: skip
    return {"tvd_seen_mm_per_mm2_true": total / area_px * 1000 / um,
            "tvd_small_seen_mm_per_mm2_true": small / area_px * 1000 / um}  # fmt: skip


def _vessel_records(cohort: Path) -> dict[str, dict]:
    """The per-video entries of the cohort's vessels.json ({} when it is missing or unreadable)."""
    path = CohortLayout(cohort).vessels
    try:
        records = json.loads(path.read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return records if isinstance(records, dict) else {}


def compare(cohort: Path, measured: Path) -> pd.DataFrame:
    """One row per video: measured and true metrics side by side (suffix ``_true``)."""
    truth = pd.read_csv(CohortLayout(cohort).truth)
    records = _vessel_records(cohort)
    seen = pd.DataFrame(
        [{"video_id": k, **seen_density(v)} for k, v in records.items()],
        columns=["video_id", "tvd_seen_mm_per_mm2_true", "tvd_small_seen_mm_per_mm2_true"],
    )
    manifest = pd.read_csv(CohortLayout(cohort).manifest)
    if "camera" not in manifest:
        manifest["camera"] = "unknown"
    truth = truth.merge(manifest[["video", "camera"]], on="video")
    truth["video_id"] = truth["video"].map(lambda v: Path(v).stem)
    videos = pd.read_parquet(MeasurementLayout(measured).videos)
    videos["tvd_seen_mm_per_mm2"] = videos["tvd_mm_per_mm2"]
    videos["tvd_small_seen_mm_per_mm2"] = videos["tvd_small_mm_per_mm2"]
    joined = videos.merge(truth, on="video_id", suffixes=("", "_true"))
    return joined.merge(seen, on="video_id", how="left")


def _densify(line: np.ndarray, step_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_px`` along a polyline and their arc positions (px)."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    at = np.arange(0.0, arc[-1] + step_px / 2, step_px)
    return np.stack([np.interp(at, arc, line[:, 0]), np.interp(at, arc, line[:, 1])], 1), at


def registration_offset(video: dict, paths_rc: np.ndarray) -> tuple[float, float]:
    """Offset (x, y) px of measure's centrelines from the truth's mean position.

    measure registers every frame onto a reference frame, not onto the video's mean position; a
    renderer whose camera drifts one way (benchmarks/second_renderer.py) leaves the two up to
    half the drift apart. Phase correlation of the rasterised true centrelines and the measured
    ones (``paths_rc``: (row, col) px) finds it; (0, 0) where it is unsure.
    """
    import cv2

    try:
        width, height = int(video["width"]), int(video["height"])
        lines = [np.round(np.asarray(v["centreline_px"], float)).astype(np.int32)
                 for v in video["vessels"] if v.get("visible", True)
                 and len(v.get("centreline_px", [])) >= 2]  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return 0.0, 0.0
    if not lines or len(paths_rc) == 0:
        return 0.0, 0.0
    truth, found = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    cv2.polylines(truth, lines, False, 1.0, 3)
    rc = np.clip(np.round(paths_rc).astype(int), 0, [height - 1, width - 1])
    found[rc[:, 0], rc[:, 1]] = 1.0
    (dx, dy), response = cv2.phaseCorrelate(truth, cv2.dilate(found, np.ones((3, 3))))
    return (float(dx), float(dy)) if response > 0.2 and np.hypot(dx, dy) < 80 else (0.0, 0.0)


def match_segments(
    segments: pd.DataFrame,
    video: dict,
    *,
    tolerance_um: float = 4.0,
    length_tolerance: float = 0.3,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> pd.DataFrame:
    """Each measured segment of one video matched to the true vessel it runs along.

    A segment matches a visible true vessel when both its end points lie within that vessel's
    radius + ``tolerance_um`` of its centreline and the arc between the two nearest centreline
    points is the segment's length within ``length_tolerance`` (relative); of several candidates
    (ends at a junction touch every vessel that meets there) the closest in length and position
    wins. Unmatched segments (false detections, a segment bridging two vessels) are dropped.

    Parameters
    ----------
    segments : DataFrame
        Rows of the measurement's vessels.parquet for this video (end points ``(row, col)`` px).
    video : dict
        The video's entry in the cohort's vessels.json (centrelines ``(x, y)`` px).
    offset_px : (x, y)
        Where measure's coordinates lie from the truth's (see ``registration_offset``).

    Returns
    -------
    DataFrame
        The matched segment rows with ``true_id``, ``true_flow``, ``true_velocity_um_per_s``,
        ``true_small``, ``true_diameter_um`` added.
    """
    from scipy.spatial import cKDTree

    um = video.get("um_per_px")
    lines = [v for v in video.get("vessels", []) if v.get("visible", True)
             and len(v.get("centreline_px", [])) >= 2 and "diameter_um" in v]  # fmt: skip
    if um is None:
        return segments.iloc[:0]
    if not lines or segments.empty:
        return segments.iloc[:0]
    points, arcs, owner = [], [], []
    for i, v in enumerate(lines):
        p, a = _densify(np.asarray(v["centreline_px"], float), 0.5)
        points.append(p)
        arcs.append(a)
        owner.append(np.full(len(a), i))
    tree = cKDTree(np.concatenate(points))
    owner = np.concatenate(owner)
    reach_px = (max(v["diameter_um"] for v in lines) / 2 + tolerance_um) / um
    rows = []
    for seg in segments.itertuples(index=False):
        ends = np.array([[seg.start_col_px, seg.start_row_px], [seg.end_col_px, seg.end_row_px]])
        ends = ends - np.asarray(offset_px)
        best, best_cost = None, np.inf
        near = [set(tree.query_ball_point(e, reach_px)) for e in ends]
        for i in set(owner[list(near[0])]) & set(owner[list(near[1])]):
            radius_px = (lines[i]["diameter_um"] / 2 + tolerance_um) / um
            distance, nearest = cKDTree(points[i]).query(ends)
            if np.any(distance > radius_px):
                continue
            arc_um = abs(arcs[i][nearest[1]] - arcs[i][nearest[0]]) * um
            mismatch = abs(arc_um - seg.length_um) / max(seg.length_um, 1e-9)
            if mismatch > length_tolerance:
                continue
            cost = mismatch + float(distance.sum()) * um / max(seg.length_um, 1e-9)
            if cost < best_cost:
                best, best_cost = i, cost
        if best is not None:
            v = lines[best]
            rows.append({**seg._asdict(), "true_id": v.get("id", best),
                         "true_flow": v.get("flow", "unknown"),
                         "true_velocity_um_per_s": v.get("velocity_um_per_s", np.nan),
                         "true_small": v.get("small", v["diameter_um"] < 20),
                         "true_diameter_um": v["diameter_um"]})  # fmt: skip
    return pd.DataFrame(rows)


def match_vessels(cohort: Path, measured: Path) -> pd.DataFrame:
    """Measured segments of every accepted video matched to true vessels (see match_segments),
    after shifting them by measure's registration offset where its geometry file shows it."""
    records = _vessel_records(cohort)
    segments = pd.read_parquet(MeasurementLayout(measured).vessels)
    matched = []
    for video_id, group in segments.groupby("video_id"):
        if video_id in records:
            offset = (0.0, 0.0)
            geometry = MeasurementLayout(measured).geometry(video_id)
            if geometry.exists():
                with np.load(geometry) as saved:
                    if "paths" in saved:
                        offset = registration_offset(records[video_id], saved["paths"])
            m = match_segments(group, records[video_id], offset_px=offset)
            matched.append(m.assign(camera=records[video_id].get("camera", "unknown")))
    return pd.concat(matched, ignore_index=True) if matched else pd.DataFrame()


SPEED_BINS = ((0.0, 500.0, "<500"), (500.0, 1000.0, "500-1000"), (1000.0, 1500.0, "1000-1500"),
              (1500.0, np.inf, ">1500"))  # fmt: skip


def vessel_velocity_table(matched: pd.DataFrame) -> pd.DataFrame:
    """Velocity errors per matched segment of a continuously flowing small true vessel.

    Per camera and true-speed bin: ``segments`` matched (``vessels``: distinct true vessels),
    how many got a velocity, how many were flowing but too fast to follow (NaN), how many were
    not called perfused (none or intermittent: no velocity enters the mean), and over those
    with a velocity the median |relative error|, bias (mean signed) and 90th percentile, %.
    """
    rows = []
    if matched.empty:
        return pd.DataFrame(rows)
    keep = (matched["true_flow"] == "continuous") & matched["true_small"]
    cont = matched[keep & matched["small"]]
    for camera, group in [("all", cont), *cont.groupby("camera")]:
        for lo, hi, name in ((0.0, np.inf, "all"), *SPEED_BINS):
            g = group[
                (group["true_velocity_um_per_s"] >= lo) & (group["true_velocity_um_per_s"] < hi)
            ]
            perfused = g["flow"].isin(("continuous", "sluggish"))
            v = g["velocity_um_per_s"]
            measured = perfused & v.notna()
            err = 100 * (v[measured] / g["true_velocity_um_per_s"][measured] - 1)
            rows.append({
                "camera": camera, "true_speed_um_per_s": name, "segments": len(g),
                "vessels": int(g[["video_id", "true_id"]].drop_duplicates().shape[0]),
                "with_velocity": int(measured.sum()),
                "too_fast_nan": int((perfused & v.isna()).sum()),
                "not_perfused": int((~perfused).sum()),
                "median_abs_error": float(err.abs().median()) if len(err) else np.nan,
                "bias": float(err.mean()) if len(err) else np.nan,
                "p90_abs_error": float(err.abs().quantile(0.9)) if len(err) else np.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def error_table(joined: pd.DataFrame) -> pd.DataFrame:
    rows = []
    ok = joined[joined["status"] == "ok"]
    for camera, group in [("all", ok), *ok.groupby("camera")]:
        for metric in (*RELATIVE[:2], *ABSOLUTE, RELATIVE[2], *SEEN):
            truth, value = group[f"{metric}_true"], group[metric]
            if metric == "mean_velocity_um_per_s":  # continuously flowing fields only
                keep = group["ppv_percent_true"] >= 99
                truth, value = truth[keep], value[keep]
            keep = truth.notna() & value.notna()
            truth, value = truth[keep], value[keep]
            if metric in RELATIVE or metric in SEEN:
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


def agreement_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Per metric and camera: Bland-Altman bias and 95 % limits (absolute and in % of the pair's
    mean), ICC(2,1) and Lin's CCC with their 95 % intervals, measured against truth."""
    ok = joined[joined["status"] == "ok"]
    rows = []
    for camera, group in [("all", ok), *ok.groupby("camera")]:
        for metric in (*RELATIVE[:2], "pvd_mm_per_mm2", *ABSOLUTE, RELATIVE[2]):
            if f"{metric}_true" not in group:
                continue
            record = agreement(group[metric].to_numpy(), group[f"{metric}_true"].to_numpy())
            rows.append({
                "camera": camera, "metric": metric, "n": record["n"],
                "bias": record["bias"], "loa": f"[{record['lower']:.2f}, {record['upper']:.2f}]",
                "bias_%": record["bias_percent"],
                "loa_%": f"[{record['lower_percent']:.1f}, {record['upper_percent']:.1f}]",
                "icc": _with_interval(record, "icc"), "ccc": _with_interval(record, "ccc"),
            })  # fmt: skip
    return pd.DataFrame(rows)


def vessel_count_table(joined: pd.DataFrame) -> pd.DataFrame:
    """Per camera: measured vessel count (``n_vessels``; skeleton pieces ``n_segments`` beside it)
    against the number of visible vessels drawn (truth ``n_segments``): medians, the median and
    quartiles of the ratio, and Pearson's correlation. Empty without those columns."""
    ok = joined[joined["status"] == "ok"]
    if "n_segments_true" not in ok:
        return pd.DataFrame()
    rows = []
    for camera, group in [("all", ok), *ok.groupby("camera")]:
        truth = group["n_segments_true"].astype(float)
        row: dict = {"camera": camera, "n": len(group), "drawn": float(truth.median())}
        for name in ("n_vessels", "n_segments"):
            if name not in group:
                continue
            value = group[name].astype(float)
            keep = truth.gt(0) & value.notna()
            ratio = value[keep] / truth[keep]
            enough = keep.sum() >= 3 and value[keep].std() > 0 and truth[keep].std() > 0
            r = float(np.corrcoef(value[keep], truth[keep])[0, 1]) if enough else np.nan
            row.update({name: float(value.median()), f"{name}_ratio": float(ratio.median()),
                        f"{name}_ratio_iqr": f"{ratio.quantile(0.25):.2f}-"
                                             f"{ratio.quantile(0.75):.2f}",
                        f"{name}_r": r})  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _with_interval(record: dict, name: str) -> str:
    return f"{record[name]:.2f} [{record[f'{name}_lower']:.2f}, {record[f'{name}_upper']:.2f}]"


def likely_cause(row: pd.Series, dense_tvd: float, ppv_error: float = 0.0) -> str:
    """The likely reasons a video measured badly, from measure's own diagnostics and the truth
    (``dense_tvd``: the true TVD above which a field counts as crowded; ``ppv_error``: its PPV
    over-read, points, where PPV is the metric: length perfused only by blur that could account
    for half of it names blur, although under 30 % of the length)."""
    causes = []
    blur = row.get("blurred_length_percent", 0)
    if "faint_vessels" in str(row.get("warnings", "")):
        causes.append("faint vessels (low contrast to texture)")
    if row.get("motion_unplaced_fraction", 0) > 0.1 or row.get("motion_max_shift_um", 0) > 40:
        causes.append("motion")
    if row.get("quality_focus", 1) < 0.02:
        causes.append("focus")
    if blur > 30 or (ppv_error > 0 and blur >= ppv_error / 2):
        causes.append(f"fast-flow blur read as flow ({blur:.0f} % of small length)")
    if row.get("tvd_mm_per_mm2_true", 0) > dense_tvd:
        causes.append("crowding (true TVD in the cohort's top quarter)")
    return "; ".join(causes) or "none flagged"


def worst_videos(joined: pd.DataFrame, metric: str, count: int = 10) -> pd.DataFrame:
    """The ``count`` videos with the largest |error| of ``metric``, with their likely cause."""
    ok = joined[(joined["status"] == "ok") & joined[metric].notna()].copy()
    truth = ok[f"{metric}_true"]
    relative = metric in RELATIVE or metric in SEEN or metric == "pvd_mm_per_mm2"
    ok["error"] = 100 * (ok[metric] - truth) / truth if relative else ok[metric] - truth
    ok = ok.reindex(ok["error"].abs().sort_values(ascending=False).index).head(count)
    dense = float(joined["tvd_mm_per_mm2_true"].quantile(0.75))
    over = ok["error"] if metric == "ppv_percent" else pd.Series(0.0, index=ok.index)
    ok["cause"] = [likely_cause(row, dense, over[i]) for i, row in ok.iterrows()]
    columns = ["video_id", "camera", metric, f"{metric}_true", "error", "cause"]
    return ok[[c for c in columns if c in ok]]


def bland_altman(joined: pd.DataFrame, path: Path, source: str = "simulator truth") -> None:
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
    fig.suptitle(f"sepsiscope measure vs {source} (synthetic videos)", fontsize=10)
    fig.tight_layout()
    save_png(path, fig)


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""

    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def make_cohort(cohort: Path, args: argparse.Namespace) -> float:
    """Render the cohort with ``args.renderer`` (both cameras); returns the seconds it took."""
    started = time.perf_counter()
    if args.renderer == "second":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from second_renderer import render_cohort

        render_cohort(cohort, patients=args.patients, videos_per_patient=args.videos_per_patient,
                      seconds=args.seconds, seed=args.seed, camera="mixed")  # fmt: skip
    else:
        plan = SimulateSettings(
            patients=args.patients,
            videos_per_patient=args.videos_per_patient,
            seconds=args.seconds,
            camera="mixed",
            seed=args.seed,
        )
        simulate_cohort(cohort, plan, quiet=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--videos-per-patient", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--renderer", choices=["sepsiscope", "second"], default="sepsiscope",
                        help="who draws the cohort: sepsiscope simulate, or "
                             "benchmarks/second_renderer.py")  # fmt: skip
    parser.add_argument("--cohort", type=Path, default=None,
                        help="validate this cohort folder (manifest.csv, truth.csv, vessels.json) "
                             "instead of rendering one")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="keep cohort and outputs here")
    parser.add_argument("--reuse", action="store_true", help="reuse earlier measurements")
    parser.add_argument("--png", type=Path, default=Path("docs/img/measure_bland_altman.png"))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="validate_measure_"))
    cohort, measured = args.cohort or work / "cohort", work / "measured"
    rendered = measured_s = 0.0
    if args.cohort is None and not CohortLayout(cohort).truth.exists():
        rendered = make_cohort(cohort, args)
    if not MeasurementLayout(measured).videos.exists() or not args.reuse:
        started = time.perf_counter()
        measure(CohortLayout(cohort).manifest, measured, MeasureSettings(workers=args.workers),
                quiet=True)  # fmt: skip
        measured_s = time.perf_counter() - started
    joined = compare(cohort, measured)
    table = error_table(joined)
    source = f"cohort {args.cohort}" if args.cohort else f"renderer {args.renderer}"
    bland_altman(joined, args.png, "truth" if args.cohort else f"{args.renderer} renderer truth")
    what = (f"{source}" if args.cohort else
            f"{args.patients} patients, {args.seconds:g} s, both cameras, seed {args.seed}, "
            f"{source}")  # fmt: skip
    print(f"Validation on {len(joined)} simulated videos ({what}); {platform.node()}, "
          f"{os.cpu_count()} CPUs; rendering {rendered:.0f} s, measuring {measured_s:.0f} s "
          f"(workers {args.workers})\n")  # fmt: skip
    print(markdown(table))
    print("\nAgreement with truth (Bland-Altman bias and 95 % limits; ICC(2,1) and Lin's CCC "
          "with 95 % intervals)\n")  # fmt: skip
    print(markdown(agreement_table(joined)))
    counts = vessel_count_table(joined)
    if not counts.empty:
        print("\nVessel count: measured n_vessels (and skeleton pieces n_segments) against the "
              "visible vessels drawn (truth n_segments); ratio median and quartiles, "
              "Pearson r\n")  # fmt: skip
        print(markdown(counts))
    for metric in (RELATIVE[0], RELATIVE[1], "ppv_percent", "mfi", RELATIVE[2]):
        unit = "%" if metric in RELATIVE else ("points" if metric == "ppv_percent" else "")
        print(f"\nTen worst videos by {metric} (error in {unit or 'units'})\n")
        print(markdown(worst_videos(joined, metric)))
    matched = match_vessels(cohort, measured)
    print(
        f"\nPer-vessel velocity: {len(matched)} measured segments matched to true vessels; "
        "continuously flowing small vessels (errors in %, over segments with a velocity)\n"
    )
    print(markdown(vessel_velocity_table(matched)))
    print(f"\nrejected: {int((joined['status'] != 'ok').sum())}; Bland-Altman plot: {args.png}")


if __name__ == "__main__":
    main()
