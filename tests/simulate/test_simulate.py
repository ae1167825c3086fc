"""The synthetic cohort: files decode, truth matches pixels, one seed one cohort, classes differ."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data.video import read_frames
from sepsiscope.layout import CohortLayout
from sepsiscope.microcirculation.skeleton import resample_path
from sepsiscope.simulate import SimulateSettings, camera_profile, simulate_cohort, simulate_truth
from sepsiscope.simulate.cohort import MANIFEST_COLUMNS, TRUTH_COLUMNS
from sepsiscope.simulate.flow import FLOW_SCORE, category_probabilities
from sepsiscope.simulate.render import MARGIN_PX, draw_optics, prepare, render_frames
from sepsiscope.simulate.vessels import Vessel

TINY = {"seconds": 0.4, "width": 160, "height": 120}
runner = CliRunner()


@pytest.fixture(scope="module")
def mixed_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    settings = SimulateSettings(patients=4, videos_per_patient=2, camera="mixed", seed=7, **TINY)
    return out, simulate_cohort(out, settings, quiet=True)


def test_cohort_files_decode_and_tables_follow_the_interface(mixed_cohort):
    out, result = mixed_cohort
    layout = CohortLayout(out)
    manifest = pd.read_csv(layout.manifest)
    truth = pd.read_csv(layout.truth)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(truth.columns) == TRUTH_COLUMNS
    assert result["n_videos"] == len(manifest) == len(truth) == 8
    assert set(manifest.camera) == {"microscan", "cytocam"}  # mixed: both cameras
    assert sorted(manifest.label.unique()) == ["non-septic", "septic"]
    assert manifest.groupby("patient_id").label.nunique().eq(1).all()
    assert sorted(manifest.site.unique()) == [1, 2]
    for row in manifest.itertuples():
        cam = camera_profile(row.camera)
        assert (row.um_per_px, row.fps) == (cam.um_per_px, cam.fps)
        assert row.video.endswith(".avi" if row.camera == "microscan" else ".mp4")
        frames = read_frames(out / row.video)  # PyAV decodes both MJPEG and H.264
        assert frames.shape == (round(0.4 * row.fps), 120, 160)
        assert frames.dtype == np.uint8
        mask = cv2.imread(str(layout.mask(row.video.split("/")[1].split(".")[0])), 0)
        assert mask.shape == (120, 160) and set(np.unique(mask)) <= {0, 255}
    vessels = json.loads(layout.vessels.read_text())["videos"]
    assert len(vessels) == 8
    assert json.loads(layout.settings.read_text())["settings"]["seed"] == 7


def test_truth_agrees_with_vessels_json_and_the_fast_path(mixed_cohort):
    out, _ = mixed_cohort
    layout = CohortLayout(out)
    truth = pd.read_csv(layout.truth).set_index("video")
    videos = json.loads(layout.vessels.read_text())["videos"]
    for record in videos.values():
        row = truth.loc[record["video"]]
        visible_small = [v for v in record["vessels"] if v["visible"] and v["small"]]
        quads = np.zeros((4, 4))
        for v in visible_small:
            # the stored centreline is simplified: long straight pieces are cut back into
            # short steps so that each is attributed to the quadrant it lies in
            pts = resample_path(np.asarray(v["centreline_px"]), 0.5)
            mid = 0.5 * (pts[1:] + pts[:-1])
            inside = (mid >= 0).all(1) & (mid[:, 0] < record["width"]) & (mid[:, 1] < 120)
            lengths = np.linalg.norm(np.diff(pts, axis=0), axis=1) * inside
            q = (mid[:, 0] >= 80).astype(int) + 2 * (mid[:, 1] >= 60).astype(int)
            np.add.at(quads[:, FLOW_SCORE[v["flow"]]], q, lengths)
        scored = quads.sum(1) > 0
        if scored.any():  # the MFI follows the flow categories of each quadrant's vessels
            assert np.argmax(quads[scored], 1).mean() == pytest.approx(row.mfi, rel=1e-5)
        assert sum(v["visible"] for v in record["vessels"]) >= row.n_segments
        visible_length = 0.0
        for v in record["vessels"]:
            pts = np.asarray(v["centreline_px"])
            if not v["visible"] or len(pts) < 2:
                continue
            pts = resample_path(pts, 0.5)
            mid = 0.5 * (pts[1:] + pts[:-1])
            inside = (mid >= 0).all(1) & (mid[:, 0] < record["width"]) & (mid[:, 1] < 120)
            visible_length += (np.linalg.norm(np.diff(pts, axis=0), axis=1) * inside).sum()
        length_mm = visible_length * record["um_per_px"] / 1000  # simplified centrelines
        assert length_mm == pytest.approx(row.total_length_mm, rel=0.05, abs=0.02)
        assert all(not v["visible"] for v in record["vessels"] if v["flow"] == "plasma")
    fast = simulate_truth(
        SimulateSettings(patients=4, videos_per_patient=2, camera="mixed", seed=7, **TINY)
    ).set_index("video")
    pd.testing.assert_frame_equal(fast, truth, check_exact=False, rtol=1e-5)
    assert (truth.pvd_mm_per_mm2 <= truth.tvd_small_mm_per_mm2 + 1e-9).all()
    assert (truth.tvd_small_mm_per_mm2 <= truth.tvd_mm_per_mm2 + 1e-9).all()


def _darkness(frame: np.ndarray, mask: np.ndarray) -> float:
    """Mean of (local background - pixel) over the mask; background from pixels off the mask."""
    off = (~mask).astype(np.float32)
    local = cv2.GaussianBlur(frame * off, (0, 0), 12) / (cv2.GaussianBlur(off, (0, 0), 12) + 1e-6)
    return float((local - frame)[mask].mean())


def test_mask_pixels_are_darker_than_the_background(mixed_cohort):
    out, _ = mixed_cohort
    manifest = pd.read_csv(CohortLayout(out).manifest)
    for row in manifest.itertuples():
        frames = read_frames(out / row.video).astype(np.float32)
        mask = cv2.imread(str(CohortLayout(out).mask(row.video[7:-4])), 0) > 0
        assert 0 < mask.mean() < 0.8
        # drift moves the field by a few px around the mask's mean position
        best = max(_darkness(frame, mask) for frame in frames)
        assert best > 10.0, row.video
        assert _darkness(frames.mean(axis=0), mask) > 3.0, row.video


def _scene(flows: list[str]) -> list[Vessel]:
    """Straight horizontal capillaries, one per flow, 20 px apart, across a 160x120 frame."""
    vessels = []
    for i, flow in enumerate(flows):
        y = MARGIN_PX + 20 + 25 * i
        points = np.stack([np.arange(0, 160 + 2 * MARGIN_PX, 1.0), np.full(208, float(y))], 1)
        v = Vessel(points, 7.0, flow=flow)
        v.velocity_um_per_s = {"stopped": 0.0, "sluggish": 250.0}.get(flow, 0.0)
        vessels.append(v)
    return vessels


def _render(vessels: list[Vessel], n_frames: int = 25) -> np.ndarray:
    cam = camera_profile("microscan", width=160, height=120)
    optics = draw_optics(np.random.default_rng(3))
    plan = prepare(np.random.default_rng(4), vessels, cam, optics, n_frames=n_frames, motion=False)
    return np.stack(list(render_frames(plan))).astype(np.float32), plan.mask


def test_stopped_vessel_is_static_and_sluggish_cells_move():
    frames, mask = _render(_scene(["stopped", "sluggish"]))
    rows = {"stopped": 20, "sluggish": 45}
    background = frames[:, 100:110, 10:150].std(axis=0).mean()  # noise + light changes
    stopped = frames[:, rows["stopped"], 10:150].std(axis=0).mean()
    sluggish = frames[:, rows["sluggish"], 10:150].std(axis=0).mean()
    assert stopped <= 1.5 * background
    assert sluggish > 3.0 * background
    assert mask[rows["stopped"]].all() and mask[rows["sluggish"]].all() and not mask[100].any()


def test_red_cell_free_capillary_leaves_no_trace():
    with_plasma, mask = _render(_scene(["stopped", "plasma"]), n_frames=5)
    without, _ = _render(_scene(["stopped"]), n_frames=5)
    np.testing.assert_array_equal(with_plasma, without)
    assert not mask[45].any()  # and it is not in the vessel mask


def test_same_seed_same_cohort_other_seed_other_cohort(tmp_path):
    def make(name: str, seed: int):
        out = tmp_path / name
        settings = SimulateSettings(
            patients=2, videos_per_patient=1, camera="mixed", seed=seed, **TINY
        )
        simulate_cohort(out, settings, quiet=True)
        return out

    a, b, c = make("a", 1), make("b", 1), make("c", 2)
    videos = pd.read_csv(a / "manifest.csv").video.tolist()
    assert {v[-4:] for v in videos} == {".avi", ".mp4"}
    for name in ("manifest.csv", "truth.csv", "vessels.json", *videos):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "truth.csv").read_bytes() != (c / "truth.csv").read_bytes()
    other = pd.read_csv(c / "manifest.csv").video.tolist()
    for mine, theirs in zip(videos, other, strict=True):
        assert not np.array_equal(read_frames(a / mine)[0], read_frames(c / theirs)[0])


def test_worker_processes_make_the_same_cohort(tmp_path, caplog):
    settings = SimulateSettings(patients=2, videos_per_patient=1, camera="mixed", seed=3, **TINY)
    simulate_cohort(tmp_path / "one", settings.model_copy(update={"workers": 1}), quiet=True)
    simulate_cohort(tmp_path / "two", settings.model_copy(update={"workers": 2}), quiet=True)
    assert "worker processes failed" not in caplog.text  # the pool really ran
    videos = pd.read_csv(tmp_path / "one/manifest.csv").video.tolist()
    for name in ("truth.csv", "vessels.json", *videos):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_class_means_move_in_the_documented_directions():
    truth = simulate_truth(SimulateSettings(patients=20, seed=0))
    patients = truth.drop(columns="video").groupby(["patient_id", "label"]).mean().reset_index()
    means = patients.drop(columns="patient_id").groupby("label").mean()
    septic, normal = means.loc["septic"], means.loc["non-septic"]
    for lower in ("ppv_percent", "mfi", "pvd_mm_per_mm2", "mean_velocity_um_per_s"):
        assert septic[lower] < normal[lower], lower
    assert normal.ppv_percent > 97 and normal.mfi > 2.8
    assert 14 < normal.tvd_small_mm_per_mm2 < 21
    assert abs(septic.tvd_small_mm_per_mm2 / normal.tvd_small_mm_per_mm2 - 1) < 0.15
    assert 1000 < normal.mean_velocity_um_per_s < 1600
    # the classes overlap: the most normal-looking septic patient looks normal
    assert patients[patients.label == "septic"].mfi.max() >= 2.75


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["microscan", "cytocam"]))
def test_truth_invariants_hold_for_any_seed(seed, camera):
    truth = simulate_truth(
        SimulateSettings(patients=2, videos_per_patient=1, camera=camera, seed=seed, **TINY)
    )
    assert (truth.tvd_small_mm_per_mm2 <= truth.tvd_mm_per_mm2 + 1e-9).all()
    assert (truth.pvd_mm_per_mm2 <= truth.tvd_small_mm_per_mm2 + 1e-9).all()
    ppv, mfi = truth.ppv_percent.dropna(), truth.mfi.dropna()
    assert ppv.between(0, 100).all() and mfi.between(0, 3).all()
    assert (truth.n_segments >= 0).all() and (truth.total_length_mm >= 0).all()
    area_mm2 = 160 * 120 * (camera_profile(camera).um_per_px / 1000) ** 2
    np.testing.assert_allclose(truth.total_length_mm / area_mm2, truth.tvd_mm_per_mm2, rtol=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_flow_score_falls_with_severity(x1, x2):
    p1, p2 = category_probabilities(x1), category_probabilities(x2)
    assert p1.sum() == pytest.approx(1.0) and (p1 >= 0).all()
    scores = np.arange(4)
    if x1 < x2:
        assert p1 @ scores >= p2 @ scores - 1e-9


@pytest.mark.parametrize(
    "args",
    [
        ["--patients", "-2"],
        ["--videos-per-patient", "0"],
        ["--camera", "webcam"],
        ["--seconds", "-1"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_message(tmp_path, args):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "c"), *args])
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and len(result.stderr.strip().splitlines()) == 1


def test_cli_unwritable_folder_exits_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["simulate", "--out", str(blocker / "cohort"), "--patients", "2"])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr and str(blocker) in result.stderr


def test_cli_json_output(tmp_path):
    args = ["simulate", "--out", str(tmp_path / "c"), "--patients", "2", "--seconds", "0.2"]
    result = runner.invoke(app, [*args, "--videos-per-patient", "1", "--width", "96",
                                 "--height", "64", "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_videos"] == 2 and report["n_patients"] == 2
    assert report["n_frames"] == 2 * 5
    assert pd.read_csv(report["manifest"]).shape[0] == 2
