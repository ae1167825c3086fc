"""benchmarks/second_renderer.py: an independent renderer whose cohort measure and the validation
script read unchanged, with truth that follows the consensus definitions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _benchmarks import BENCHMARKS, load_benchmark

from sepsiscope.data.video import probe_video, read_frames
from sepsiscope.microcirculation.measure import MeasureSettings, measure

renderer = load_benchmark("second_renderer")
SECONDS, WIDTH, HEIGHT = 1.2, 240, 200


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("second") / "cohort"
    renderer.render_cohort(out, patients=2, videos_per_patient=1, seconds=SECONDS, seed=3,
                           width=WIDTH, height=HEIGHT)  # fmt: skip
    return out


def test_renderer_shares_no_code_with_the_simulator():
    source = (BENCHMARKS / "second_renderer.py").read_text()
    assert "sepsiscope" not in "".join(x for x in source.splitlines() if "import" in x)


def test_files_match_and_videos_decode_at_the_stated_rate(cohort):
    manifest = pd.read_csv(cohort / "manifest.csv")
    truth = pd.read_csv(cohort / "truth.csv")
    records = json.loads((cohort / "vessels.json").read_text())["videos"]
    assert list(manifest.columns) == renderer.MANIFEST_COLUMNS
    assert list(truth.columns) == renderer.TRUTH_COLUMNS
    assert list(manifest["video"]) == list(truth["video"])
    assert sorted(records) == sorted(Path(v).stem for v in manifest["video"])
    assert set(manifest["camera"]) == set(renderer.CAMERAS)  # mixed: one of each
    for row in manifest.itertuples():
        info = probe_video(cohort / row.video)
        frames = read_frames(cohort / row.video)
        camera = renderer.CAMERAS[row.camera]
        assert row.fps == camera.fps and row.um_per_px == camera.um_per_px
        assert frames.shape == (round(SECONDS * row.fps), HEIGHT, WIDTH)
        assert frames.dtype == np.uint8 and 40 < frames.mean() < 220
        if info.fps is not None:  # the container's rate (a PNG folder has none)
            assert info.fps == pytest.approx(row.fps)
        assert (cohort / "masks" / f"{Path(row.video).stem}.png").exists()


def _in_frame_length(line: np.ndarray, width: int, height: int, step: float = 0.05) -> float:
    """Length (px) of a polyline inside the frame, by dense sampling."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    at = np.arange(step / 2, arc[-1], step)
    x, y = np.interp(at, arc, line[:, 0]), np.interp(at, arc, line[:, 1])
    return step * float(((x >= 0) & (x < width) & (y >= 0) & (y < height)).sum())


def test_truth_is_the_drawn_centreline_length(cohort):
    truth = pd.read_csv(cohort / "truth.csv").set_index("video")
    for video in json.loads((cohort / "vessels.json").read_text())["videos"].values():
        w, h, um = video["width"], video["height"], video["um_per_px"]
        area_mm2 = w * h * (um / 1000) ** 2
        total = small = perfused = 0.0
        count = 0
        for v in video["vessels"]:
            length = _in_frame_length(np.asarray(v["centreline_px"]), w, h) * um / 1000
            if not v["visible"] or length <= 0:
                continue
            count += 1
            total += length
            small += length * v["small"]
            perfused += length * (v["small"] and v["flow"] in ("continuous", "sluggish"))
        row = truth.loc[video["video"]]
        assert row["tvd_mm_per_mm2"] == pytest.approx(total / area_mm2, rel=0.01)
        assert row["tvd_small_mm_per_mm2"] == pytest.approx(small / area_mm2, rel=0.01)
        assert row["ppv_percent"] == pytest.approx(100 * perfused / small, abs=0.5)
        assert abs(row["n_segments"] - count) <= 2  # a vessel grazing the edge
        assert 8 < row["tvd_small_mm_per_mm2"] < 35
        assert all(4 <= v["diameter_um"] <= 50 for v in video["vessels"])


def test_all_small_vessels_perfused_gives_ppv_100_and_mfi_3():
    camera = renderer.CAMERAS["strobe800"]
    rng = np.random.default_rng(0)
    patient = renderer.draw_patient(rng, "P", False, camera)
    patient.severity = 0.0
    vessels = renderer.build_network(rng, camera, 16.0)
    renderer.assign_flow(rng, vessels, patient, 0.0, 0.5)
    records = renderer.vessel_records(vessels)
    truth = renderer.video_truth(records, camera.width, camera.height, camera.um_per_px)
    assert all(v.flow == "continuous" and v.visible for v in vessels)
    assert truth["ppv_percent"] == 100 and truth["mfi"] == 3
    assert truth["pvd_mm_per_mm2"] == pytest.approx(truth["tvd_small_mm_per_mm2"])
    assert 600 <= truth["mean_velocity_um_per_s"] <= 2000
    assert truth["tvd_small_mm_per_mm2"] == pytest.approx(16.0, rel=0.25)


@pytest.mark.slow
def test_validation_functions_run_on_the_second_cohort(cohort, tmp_path):
    validate = load_benchmark("validate_measure")
    measure(cohort / "manifest.csv", tmp_path / "m", MeasureSettings(workers=1), quiet=True)
    joined = validate.compare(cohort, tmp_path / "m")
    assert len(joined) == 2 and (joined["status"] == "ok").all()
    assert joined["tvd_seen_mm_per_mm2_true"].notna().all()
    errors = validate.error_table(joined)
    tvd = errors[errors["metric"].isin(["tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "mfi"])]
    assert np.isfinite(tvd[["bias", "median_abs_error"]].to_numpy()).all()
    agreement = validate.agreement_table(joined)
    assert np.isfinite(agreement.loc[agreement["camera"] == "all", "bias"]).all()
    counts = validate.vessel_count_table(joined)
    assert counts.loc[0, "n_vessels_ratio"] > 0
