"""benchmarks/density_losses.py puts every true centreline point in one place: hidden under a
wider vessel, found, or lost at the named stage of the segmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _benchmarks import load_benchmark

losses = load_benchmark("density_losses")


def _vessel(points, diameter, flow="stopped"):
    return {"centreline_px": points, "diameter_um": diameter, "flow": flow, "visible": True,
            "small": True}  # fmt: skip


def test_each_true_point_is_placed_at_the_stage_that_lost_it():
    # 100 x 100 px at 1 µm/px. A is measured; B runs inside A's lumen (hidden); C runs down
    # x = 50 from y = 40 to 90 and is lost, from its far end, outside the field (y >= 80),
    # below the ridge threshold (60-80), too faint (50-60), with the small objects (45-50),
    # outside the core (42-45) and with no centreline although in the core (40-42)
    record = {"um_per_px": 1.0, "width": 100, "height": 100, "vessels": [
        _vessel([[10, 20], [90, 20]], 10.0, "continuous"),
        _vessel([[10, 20], [90, 20]], 6.0),
        _vessel([[50, 40], [50, 90]], 6.0),
    ]}  # fmt: skip
    rows = np.arange(100)[:, None] * np.ones((1, 100))

    def band(top, bottom):
        return (rows >= top) & (rows < bottom)

    stages = {
        "field": rows < 80,
        "ridge": band(40, 60),
        "dark": band(40, 50),
        "mask": band(40, 45),
        "core": band(40, 42),
        "paths": [np.stack([np.full(81, 20.0), np.arange(10.0, 91.0)], axis=1)],  # (row, col)
    }
    placed = losses.place_points(record, stages).groupby(["flow", "place"]).length_um.sum()
    assert placed["continuous", "found"] == pytest.approx(80.0, abs=0.5)
    assert placed["stopped", "hidden"] == pytest.approx(80.0, abs=0.5)
    # each stage's mask counts within a pixel (rounding), so its borders move by up to 1 px
    expected = {"outside field": 10, "below ridge threshold": 19, "too faint": 10,
                "small object": 5, "not in core": 3, "no centreline": 3}  # fmt: skip
    for place, length in expected.items():
        assert placed["stopped", place] == pytest.approx(length, abs=1.5), place
    assert sum(placed["stopped", p] for p in expected) == pytest.approx(50.0, abs=0.01)


def test_budget_table_shares_add_up_and_false_length_is_measured_away_from_truth():
    record = {"um_per_px": 2.0, "width": 50, "height": 50, "vessels": [
        _vessel([[5, 10], [45, 10]], 8.0, "continuous"),
    ]}  # fmt: skip
    # a measured line along the vessel (40 px) and a false one 20 px away (29 px)
    paths = [
        np.stack([np.full(41, 10.0), np.arange(5.0, 46.0)], axis=1),
        np.stack([np.full(30, 30.0), np.arange(10.0, 40.0)], axis=1),
    ]
    measured, false = losses.measured_length_um(record, {"paths": paths}, (0.0, 0.0))
    assert measured == pytest.approx(69 * 2.0) and false == pytest.approx(29 * 2.0)
    stages = {k: np.ones((50, 50), bool) for k in ("field", "ridge", "dark", "mask", "core")}
    stages["field"][:5] = False  # 90 % of the frame analysed
    stages["paths"] = paths
    places = losses.video_places(record, stages).assign(camera="cam", video_id="v")
    table = losses.budget_table(places)
    row = table[(table["camera"] == "cam") & (table["true flow"] == "all")].iloc[0]
    assert sum(row[p] for p in losses.PLACES) == pytest.approx(100.0, abs=0.2)
    assert row["found"] == pytest.approx(100.0)
    assert float(row["false"]) == pytest.approx(100 * 58 / 80, abs=0.5)  # of the true 80 µm
    assert float(row["measured / found"]) == pytest.approx(100 * 80 / 80, abs=1.0)
    assert float(row["field %"]) == pytest.approx(90.0)


@pytest.mark.slow
def test_budget_on_a_rendered_cohort(tmp_path):
    renderer = load_benchmark("second_renderer")
    cohort = tmp_path / "cohort"
    renderer.render_cohort(cohort, patients=1, videos_per_patient=1, seconds=1.2, seed=3,
                           width=240, height=200)  # fmt: skip
    records = json.loads((cohort / "vessels.json").read_text())["videos"]
    video_id, record = next(iter(records.items()))
    places = losses.video_budget(cohort, video_id, record)
    truth = places[places.place.isin(losses.PLACES)]
    share = truth.groupby("place").length_um.sum() / truth.length_um.sum()
    assert share["found"] > 0.6 and share.get("hidden", 0.0) < 0.2
    false = places.loc[places.place == "false", "length_um"].sum()
    assert false < 0.15 * truth.length_um.sum()
