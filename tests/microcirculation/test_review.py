"""A reviewer's edits: no edits give measure's figures; each edit moves them as it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsiscope.layout import MeasurementLayout
from sepsiscope.microcirculation.measure import MeasureSettings, measure
from sepsiscope.microcirculation.review import (
    Edit,
    EditConflict,
    Review,
    load_geometry,
    load_review,
    reviewed_metrics,
    reviewed_vessels,
    save_review,
)
from tests._ingest_media import cohort

METRICS = ("tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "ppv_percent", "pvd_mm_per_mm2", "mfi",
           "de_backer_per_mm", "n_segments", "n_vessels", "mean_velocity_um_per_s")  # fmt: skip


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[MeasurementLayout, pd.Series, pd.DataFrame]:
    root = tmp_path_factory.mktemp("review")
    manifest, _ = cohort(root / "cohort", 1, n_frames=30)
    measure(manifest, root / "m", MeasureSettings(kymographs=0), quiet=True)
    layout = MeasurementLayout(root / "m")
    video = pd.read_parquet(layout.videos).iloc[0]
    vessels = pd.read_parquet(layout.vessels)
    assert video["status"] == "ok" and len(vessels) >= 4
    return layout, video, vessels


def _metrics(layout, video_id, vessels):
    geometry = load_geometry(layout.geometry(video_id))
    table = reviewed_vessels(geometry, vessels, load_review(layout, video_id))
    return reviewed_metrics(table, geometry), table


def test_no_edits_give_measures_own_figures(measured) -> None:
    layout, video, vessels = measured
    metrics, table = _metrics(layout, video["video_id"], vessels)
    for key in METRICS:
        assert metrics[key] == pytest.approx(video[key], rel=1e-9, nan_ok=True), key
    assert metrics["n_edits"] == 0 and not table["edited"].any()


def test_edits_move_the_figures_and_are_kept_in_a_sidecar(tmp_path: Path, measured) -> None:
    layout, video, vessels = measured
    layout = MeasurementLayout(tmp_path)  # a copy: the module's result stays unedited
    for name in ("geometry",):
        (tmp_path / name).mkdir()
        src = measured[0].geometry(video["video_id"])
        (tmp_path / name / src.name).write_bytes(src.read_bytes())
    video_id = video["video_id"]
    before, table = _metrics(layout, video_id, vessels)
    small = table[table["small"] & table["flow"].isin(["sluggish", "continuous"])]
    assert len(small), "the test video needs a perfused small vessel"
    target = int(small["segment"].iloc[0])
    length_mm = float(small["length_um"].iloc[0]) / 1000

    save_review(layout, video_id, [Edit(action="flow", segment=target, flow="none", author="a")],
                version=0)  # fmt: skip
    after, _ = _metrics(layout, video_id, vessels)
    assert after["ppv_percent"] < before["ppv_percent"]
    small_mm = before["tvd_small_mm_per_mm2"] * before["field_area_mm2"]
    expected = before["ppv_percent"] - 100 * length_mm / small_mm
    assert after["ppv_percent"] == pytest.approx(expected, rel=1e-9)
    assert after["tvd_mm_per_mm2"] == pytest.approx(before["tvd_mm_per_mm2"])

    save_review(layout, video_id, [Edit(action="exclude", segment=target, author="a")], version=1)
    excluded, _ = _metrics(layout, video_id, vessels)
    area = before["field_area_mm2"]
    assert excluded["tvd_mm_per_mm2"] == pytest.approx(before["tvd_mm_per_mm2"] - length_mm / area)

    h, w = load_geometry(layout.geometry(video_id)).field.shape
    line = [(h / 2, 5.0), (h / 2, w - 5.0)]
    review = save_review(layout, video_id, [Edit(action="add", points_px=line, flow="continuous",
                                                 author="b")], version=2)  # fmt: skip
    added, table = _metrics(layout, video_id, vessels)
    drawn_mm = (w - 10) * load_geometry(layout.geometry(video_id)).um_per_px / 1000
    assert added["tvd_mm_per_mm2"] == pytest.approx(excluded["tvd_mm_per_mm2"] + drawn_mm / area)
    assert added["n_segments"] == excluded["n_segments"] + 1
    assert table["source"].tolist().count("added") == 1
    assert set(table["video_id"]) == {video_id}  # a drawn vessel names its video too
    assert review.version == 3 and [e.author for e in review.edits] == ["a", "a", "b"]
    assert all(e.at for e in review.edits)
    # the automatic result is untouched; the edits live in their own file
    assert layout.edits_of(video_id).exists() and not measured[0].edits_of(video_id).exists()


def test_an_edit_on_a_stale_version_is_refused(tmp_path: Path, measured) -> None:
    layout = MeasurementLayout(tmp_path)
    save_review(layout, "v", [Edit(action="exclude", segment=0)], version=0)
    with pytest.raises(EditConflict, match="changed since you loaded it"):
        save_review(layout, "v", [Edit(action="include", segment=0)], version=0)
    assert len(load_review(layout, "v").edits) == 1


def test_geometry_is_in_the_analysed_grid(measured) -> None:
    layout, video, vessels = measured
    geometry = load_geometry(layout.geometry(video["video_id"]))
    assert geometry.mean_image.dtype == np.uint8
    assert geometry.field.shape == geometry.mean_image.shape
    assert len(geometry.paths_px) == len(vessels)
    lengths = [np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in geometry.paths_px]
    ratio = np.array(lengths) * geometry.um_per_px / vessels.sort_values("segment")["length_um"]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.15)
    # one space-time diagram per segment, as many rows as analysed frames
    assert len(geometry.kymographs) == len(vessels)
    assert {k.shape[0] for k in geometry.kymographs} == {int(video["n_frames"])}
    assert geometry.fps == pytest.approx(video["fps"])


def test_a_segment_turned_perfused_keeps_no_zero_velocity(measured) -> None:
    # measure gives a segment without flow 0 µm/s; a reviewer who sees flow there has no
    # velocity for it, and a 0 would pull the video's mean velocity down
    layout, video, vessels = measured
    table = vessels.copy()
    segment = int(table["segment"].min())
    table.loc[table["segment"] == segment, ["flow", "velocity_um_per_s"]] = ["none", 0.0]
    review = Review(video_id=video["video_id"],
                    edits=[Edit(action="flow", segment=segment, flow="continuous")])  # fmt: skip
    out = reviewed_vessels(load_geometry(layout.geometry(video["video_id"])), table, review)
    row = out[out["segment"] == segment].iloc[0]
    assert row["flow"] == "continuous" and np.isnan(row["velocity_um_per_s"])
