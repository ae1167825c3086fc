"""Where measured vessel length falls short of the truth: a length budget per camera and flow.

Every visible true centreline point inside the frame (vessels.json, 0.5 px apart) is put in one
place, in this order:

- ``hidden``: inside the lumen of a wider vessel in projection (see validate_measure's
  ``seen_points``); truth.csv counts it, no 2-D image shows it;
- ``found``: a measured centreline lies within the true radius + 4 µm;
- ``outside field``: outside the field analysed after registration;
- ``below ridge threshold``: the tube filter's answer stays below the field's threshold
  (``segment.ridge_mask``: faint, blurred or bead-like vessels);
- ``too faint``: a ridge, but lighter than ``min_contrast`` (``segment.dark_enough``);
- ``small object``: ridge and dark, but removed with the small objects of the mask;
- ``not in core``: in the mask, not in its dark core (``segment.core_mask``);
- ``no centreline``: in the core, but no centreline of ``skeleton.vessel_segments`` near it
  (a spur pruned, a short piece dropped, two vessels merged into one line).

The stage masks are recomputed with measure's own functions and defaults, so the budget
explains the measurement as ``sepsiscope measure`` makes it, for videos that measure reads
whole and unshrunk (up to its ``max_seconds``, 10 s, and at 0.8 µm/px or coarser; finer videos
measure shrinks while decoding). Also given: measured length with no
true centreline within 6 µm (``false``, % of the true length) and the analysed field's area
against the frame's. Synthetic data: a description of the renderers, not a clinical figure.

    python benchmarks/density_losses.py --cohort DIR [--videos P001_site1 ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_measure import (  # noqa: E402
    _vessel_records,
    markdown,
    registration_offset,
    seen_points,
)

from sepsiscope.data.video import read_frames  # noqa: E402
from sepsiscope.layout import CohortLayout  # noqa: E402
from sepsiscope.microcirculation.analyse import vessel_geometry  # noqa: E402
from sepsiscope.microcirculation.segment import dark_enough, ridge_mask  # noqa: E402
from sepsiscope.microcirculation.skeleton import resample_path  # noqa: E402
from sepsiscope.microcirculation.stabilise import apply_motion, estimate_motion  # noqa: E402

PLACES = ("hidden", "found", "outside field", "below ridge threshold", "too faint",
          "small object", "not in core", "no centreline")  # fmt: skip
STEP_PX = 0.5
TOLERANCE_UM = 4.0
FALSE_UM = 6.0


def stage_masks(frames: np.ndarray, *, fps: float, um_per_px: float) -> dict[str, np.ndarray]:
    """measure's segmentation of one video, stage by stage: (H, W) bool masks ``field``,
    ``ridge``, ``dark``, ``mask``, ``core``, and ``paths`` (the centrelines, (N_i, 2) row, col
    px, 1 px apart)."""
    motion = estimate_motion(frames, um_per_px=um_per_px, fps=fps)
    registered, field = apply_motion(frames, motion)
    mask, contrast, core, segments = vessel_geometry(registered, motion, field, um_per_px=um_per_px)
    return {
        "field": field,
        "ridge": ridge_mask(contrast, um_per_px=um_per_px, field=field),
        "dark": dark_enough(contrast, um_per_px=um_per_px),
        "mask": mask,
        "core": core,
        "paths": [resample_path(s.path_px) for s in segments],
    }


def place_points(
    record: dict, stages: dict[str, np.ndarray], offset_px: tuple[float, float] = (0.0, 0.0)
) -> pd.DataFrame:
    """One row per true vessel and place: ``flow`` (true category; ``venule`` for large
    vessels), ``place`` (see the module) and ``length_um``.

    ``record`` is the video's vessels.json entry; ``offset_px`` (x, y) where measure's
    coordinates lie from the truth's (``registration_offset``).
    """
    um = float(record["um_per_px"])
    paths = _all_points(stages["paths"])
    tree = cKDTree(paths[:, ::-1] - np.asarray(offset_px)) if len(paths) else None
    # a point counts as in a mask when it is within a pixel of it (rounding, sub-pixel offsets)
    near = {k: ndimage.binary_dilation(stages[k]) for k in ("ridge", "mask", "core")}
    dark = ndimage.binary_dilation(stages["ridge"] & stages["dark"])
    h, w = stages["field"].shape
    rows = []
    for vessel, points, seen in seen_points(record, STEP_PX):
        if not len(points):
            continue
        distance = tree.query(points)[0] * um if tree is not None else np.full(len(points), 1e9)
        x, y = np.round(points + np.asarray(offset_px)).astype(int).T
        x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
        place = np.select(
            [~seen, distance <= vessel["diameter_um"] / 2 + TOLERANCE_UM,
             ~stages["field"][y, x], ~near["ridge"][y, x], ~dark[y, x], ~near["mask"][y, x],
             ~near["core"][y, x]],
            PLACES[:-1], PLACES[-1],
        )  # fmt: skip
        small = vessel.get("small", vessel["diameter_um"] < 20)
        flow = vessel.get("flow", "unknown") if small else "venule"
        for name in np.unique(place):
            rows.append({"flow": flow, "place": str(name),
                         "length_um": STEP_PX * um * float((place == name).sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=["flow", "place", "length_um"])


def _all_points(paths: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(paths) if paths else np.zeros((0, 2))


def measured_length_um(
    record: dict, stages: dict[str, np.ndarray], offset_px: tuple[float, float]
) -> tuple[float, float]:
    """Measured centreline length in all and with no true centreline within ``FALSE_UM`` (each
    step judged at its midpoint), µm."""
    um = float(record["um_per_px"])
    truth = [points for _, points, _ in seen_points(record, STEP_PX) if len(points)]
    tree = cKDTree(np.concatenate(truth)) if truth else None
    total = false = 0.0
    for path in stages["paths"]:
        path = path[:, ::-1] - np.asarray(offset_px)  # (x, y) as the truth
        steps = np.hypot(*np.diff(path, axis=0).T) * um
        far = np.ones(len(steps), bool)
        if tree is not None and len(steps):
            far = tree.query(0.5 * (path[1:] + path[:-1]))[0] * um > FALSE_UM
        total, false = total + steps.sum(), false + steps[far].sum()
    return float(total), float(false)


def video_places(record: dict, stages: dict[str, np.ndarray]) -> pd.DataFrame:
    """:func:`place_points` of one video (truth aligned to measure's coordinates) with rows
    ``measured`` and ``false`` (µm, :func:`measured_length_um`) and ``field fraction``."""
    offset = registration_offset(record, _all_points(stages["paths"]))
    measured, false = measured_length_um(record, stages, offset)
    extra = pd.DataFrame([
        {"flow": "all", "place": "measured", "length_um": measured},
        {"flow": "all", "place": "false", "length_um": false},
        {"flow": "all", "place": "field fraction", "length_um": float(stages["field"].mean())},
    ])  # fmt: skip
    return pd.concat([place_points(record, stages, offset), extra], ignore_index=True)


def video_budget(cohort: Path, video_id: str, record: dict) -> pd.DataFrame:
    """:func:`video_places` of one video of ``cohort``, with its id and camera."""
    frames = read_frames(cohort / record["video"])  # grey, as measure reads them
    stages = stage_masks(frames, fps=float(record["fps"]), um_per_px=float(record["um_per_px"]))
    places = video_places(record, stages)
    return places.assign(video_id=video_id, camera=record.get("camera", "?"))


def budget_table(places: pd.DataFrame) -> pd.DataFrame:
    """Per camera (and ``all``) and true flow: true length (mm) and the % of it in each place;
    per camera, measured length with no true centreline near (``false``, % of the true length),
    measured length near the truth in % of the ``found`` length (under 100 where one measured
    line stands for two true ones), and the % of the frame analysed (mean)."""
    rows = []
    for camera, group in [("all", places), *places.groupby("camera")]:
        fraction = 100 * group.loc[group.place == "field fraction"].length_um.mean()
        truth = group[group.place.isin(PLACES)]
        total = truth.length_um.sum()
        for flow, part in [("all", truth), *truth.groupby("flow")]:
            length = part.groupby("place").length_um.sum()
            mm = part.length_um.sum() / 1000
            row = {"camera": camera, "true flow": flow, "true mm": round(mm, 1)}
            row.update({p: round(0.1 * length.get(p, 0.0) / mm, 1) for p in PLACES})
            row.update({"false": "", "measured / found": "", "field %": ""})
            if flow == "all":
                measured, false = (group.loc[group.place == k].length_um.sum()
                                   for k in ("measured", "false"))  # fmt: skip
                found = length.get("found", 0.0)
                row.update({"false": f"{100 * false / total:.1f}",
                            "measured / found": f"{100 * (measured - false) / found:.1f}",
                            "field %": f"{fraction:.1f}"})  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cohort", type=Path, required=True, help="folder with vessels.json")
    parser.add_argument("--videos", nargs="*", help="video ids (default: all)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--csv", type=Path, help="also write the per-video places here")
    args = parser.parse_args()
    records = _vessel_records(args.cohort)
    if not records:
        sys.exit(f"{CohortLayout(args.cohort).vessels}: no per-vessel truth")
    chosen = [v for v in records if not args.videos or v in args.videos]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        parts = list(pool.map(video_budget, [args.cohort] * len(chosen), chosen,
                              [records[v] for v in chosen]))  # fmt: skip
    places = pd.concat(parts, ignore_index=True)
    if args.csv:
        places.to_csv(args.csv, index=False)
    print(f"Length budget of {len(chosen)} videos of {args.cohort} (% of the true length)\n")
    print(markdown(budget_table(places)))


if __name__ == "__main__":
    main()
