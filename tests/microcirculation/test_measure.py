"""The measure and interpret stages and their CLI verbs, on small rendered videos."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data.video import write_video
from sepsiscope.errors import InputError, PartialFailure
from sepsiscope.layout import MeasurementLayout, RunLayout
from sepsiscope.microcirculation.interpret import interpret
from sepsiscope.microcirculation.measure import JSON_METRICS, MeasureSettings, measure

try:  # tests/ is a package in some checkouts and a plain folder in others
    from ._vessel_render import Vessel, line, render
except ImportError:
    from _vessel_render import Vessel, line, render

runner = CliRunner()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure")
    scene = [Vessel(line(30, 0, 30, 159), 8, 500), Vessel(line(0, 90, 159, 60), 10, 0)]
    good = write_video(root / "good.avi", render(scene, seconds=1.6, seed=4), 25.0)
    short = write_video(root / "short.avi", render(scene, seconds=0.6, seed=5), 25.0)
    broken = root / "broken.avi"
    broken.write_bytes(b"not a video at all")
    return root, good, short, broken


def test_cli_measures_one_video_as_json(videos, tmp_path):
    _, good, _, _ = videos
    out = tmp_path / "m"
    result = runner.invoke(app, ["measure", str(good), "--out", str(out), "--um-per-px", "1.0",
                                 "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (video,) = payload["videos"]
    assert set(JSON_METRICS) <= set(video)
    assert video["status"] == "ok" and video["n_segments"] >= 2 and video["n_vessels"] >= 2
    assert (video["fps"], video["fields"]) == (25.0, "progressive")
    assert video["warnings"] == "" and video["message"] == ""  # dark vessels on smooth tissue
    # two vessels crossing a 0.16 x 0.16 mm field: about 0.32 mm / 0.0256 mm²
    assert video["tvd_mm_per_mm2"] == pytest.approx(0.32 / 0.0256, rel=0.2)
    assert 40 <= video["ppv_percent"] <= 70  # one of two equal-length capillaries flows
    layout = MeasurementLayout(out)
    assert layout.overlay("good").exists() and layout.kymograph("good").exists()
    vessels = pd.read_csv(layout.vessels.with_suffix(".csv"))
    assert set(vessels["flow"]) >= {"continuous", "none"}
    assert pd.read_parquet(layout.videos).loc[0, "tvd_mm_per_mm2"] == video["tvd_mm_per_mm2"]


def test_twelve_bit_data_in_a_16_bit_stack_is_not_too_dark(tmp_path):
    import tifffile

    scene = [Vessel(line(30, 0, 30, 159), 8, 500), Vessel(line(0, 90, 159, 60), 10, 0)]
    frames = render(scene, seconds=1.6, seed=4).astype(np.uint16) * 16  # 12-bit range
    frames[0] //= 8  # a dim first frame (< 1023) must not set the white and saturate the rest
    assert frames[0].max() < 1023 < frames[1:].max()
    tifffile.imwrite(tmp_path / "deep.tif", frames, photometric="minisblack")
    with pytest.raises(PartialFailure) as no_rate:  # a TIFF has no rate: measure's own hint
        measure(tmp_path / "deep.tif", tmp_path / "m", MeasureSettings(um_per_px=1.0), quiet=True)
    (failure,) = no_rate.value.result["failures"]
    assert failure["reason"].endswith(
        "deep.tif: no frame rate in the file; give --fps or a fps column"
    )
    settings = MeasureSettings(um_per_px=1.0, fps=25.0)
    (video,) = measure(tmp_path / "deep.tif", tmp_path / "m", settings, quiet=True)["videos"]
    assert video["status"] == "ok" and video["n_segments"] >= 2


def test_flag_gives_the_scale_a_manifest_lacks(videos, tmp_path):
    _, good, _, _ = videos
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"patient_id": ["p1"], "video": [str(good)], "label": ["septic"]}).to_csv(
        manifest, index=False
    )
    with pytest.raises(InputError, match=r"manifest.csv: no video has a µm/px: give its "
                       r"um_per_px, or a known camera \(microscan, cytocam\), in the manifest "
                       r"row, or one scale for every video with --um-per-px"):  # fmt: skip
        measure(manifest, tmp_path / "m", MeasureSettings(), quiet=True)
    result = measure(manifest, tmp_path / "m", MeasureSettings(um_per_px=1.0), quiet=True)
    assert result["videos"][0]["status"] == "ok"


def test_a_manifest_row_without_scale_is_refused_alone(videos, tmp_path):
    _, good, _, _ = videos
    copy = tmp_path / "copy.avi"
    copy.write_bytes(good.read_bytes())
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"Patient ID": ["p1", "p2"], "video": [str(good), str(copy)],
                  "label": ["septic", "control"], "um_per_px": ["1.0", ""]}).to_csv(
        manifest, index=False
    )  # fmt: skip
    with pytest.raises(PartialFailure) as caught:
        measure(manifest, tmp_path / "m", MeasureSettings(), quiet=True)
    result = caught.value.result
    assert [v["video_id"] for v in result["videos"]] == ["good"]
    (failure,) = result["failures"]
    assert failure["video"] == str(copy) and "no µm/px: give its um_per_px" in failure["reason"]


def test_a_video_finer_than_0_8_um_per_px_is_analysed_shrunk_to_it(tmp_path):
    """The cross of test_cli_measures_one_video_as_json drawn at 0.5 µm/px (320x320 px, the same
    160 µm field): analysed at 0.8 µm/px (200x200 px) with the same figures in µm, and the
    vessels' end points in the original pixels. finest_um_per_px=None analyses it at 0.5."""
    scene = [Vessel(line(60, 0, 60, 319), 8, 500), Vessel(line(0, 180, 319, 120), 10, 0)]
    frames = render(scene, size=(320, 320), um_per_px=0.5, seconds=1.6, seed=4)
    fine = write_video(tmp_path / "fine.avi", frames, 25.0)
    result = measure(fine, tmp_path / "m", MeasureSettings(um_per_px=0.5), quiet=True)
    (video,) = result["videos"]
    row = pd.read_parquet(MeasurementLayout(tmp_path / "m").videos).iloc[0]
    assert (row["analysed_width"], row["analysed_height"]) == (200, 200)
    assert row["analysed_um_per_px"] == pytest.approx(0.8) and row["um_per_px"] == 0.5
    assert video["status"] == "ok"
    assert video["tvd_mm_per_mm2"] == pytest.approx(0.32 / 0.0256, rel=0.2)
    assert 40 <= video["ppv_percent"] <= 70
    vessels = pd.read_parquet(MeasurementLayout(tmp_path / "m").vessels)
    across = vessels[(vessels.start_row_px - vessels.end_row_px).abs() < 5]
    assert len(across) and across[["start_row_px", "end_row_px"]].stack().sub(60).abs().max() < 3
    assert vessels[["end_col_px", "start_col_px"]].max().max() > 250  # original grid, not 200
    native = MeasureSettings(um_per_px=0.5, finest_um_per_px=None, overlays=False, kymographs=0)
    measure(fine, tmp_path / "n", native, quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "n").videos).iloc[0]
    assert (row["analysed_width"], row["analysed_um_per_px"]) == (320, 0.5)


def test_an_interlaced_video_is_measured_field_by_field(tmp_path):
    """Cells moving 500 µm/s along a vertical capillary, the probe swaying 7 µm to and fro each
    second, drawn at 50 fields/s and woven into 25 interlaced frames/s (even rows first):
    measured as fields, at 50/s, twice as many; so told by the frames (auto), or warned where
    asked otherwise."""
    scene = [Vessel(line(5, 80, 155, 80), 7, 500), Vessel(line(10, 15, 150, 45), 7, 0),
             Vessel(line(10, 115, 150, 145), 7, 0)]  # fmt: skip
    wide = render(scene, size=(160, 176), seconds=2.0, fps=50.0, seed=4)
    sway = np.rint(8 + 7 * np.sin(2 * np.pi * np.arange(len(wide)) / 50)).astype(int)
    fields = np.stack([field[:, x : x + 160] for x, field in zip(sway, wide, strict=True)])
    woven = fields[0::2].copy()
    woven[:, 1::2] = fields[1::2, 1::2]
    video = write_video(tmp_path / "woven.avi", woven, 25.0, quality=95)
    settings = MeasureSettings(um_per_px=1.0, fields="top_first", overlays=False, kymographs=0)
    measure(video, tmp_path / "m", settings, quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "m").videos).iloc[0]
    assert row["status"] == "ok" and row["fps"] == 50.0 and row["n_frames"] == 2 * len(woven)
    assert row["video_duration_s"] == pytest.approx(2.0)
    assert row["mean_velocity_um_per_s"] == pytest.approx(500, rel=0.05)
    assert row["fields"] == "top_first" and row["warnings"] == ""
    auto = MeasureSettings(um_per_px=1.0, overlays=False, kymographs=0)  # fields: auto
    measure(video, tmp_path / "a", auto, quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "a").videos).iloc[0]
    assert row["fields"] == "top_first" and row["fps"] == 50.0
    assert "its frames comb as an interlaced capture's (top_first)" in row["message"]
    assert row["mean_velocity_um_per_s"] == pytest.approx(500, rel=0.05)
    for asked in ("progressive", "bottom_first"):  # as asked, with a warning
        other = auto.model_copy(update={"fields": asked})
        measure(video, tmp_path / asked, other, quiet=True)
        row = pd.read_parquet(MeasurementLayout(tmp_path / asked).videos).iloc[0]
        assert row["fields"] == asked and row["warnings"] == "interlaced"
        assert f"(top_first), measured as {asked} as asked" in row["message"]
    cli = runner.invoke(app, ["measure", str(video), "--out", str(tmp_path / "bad"),
                              "--um-per-px", "1", "--fields", "odd_first"])  # fmt: skip
    assert cli.exit_code == 2 and "fields" in cli.output


def test_missing_scale_is_an_input_error(videos, tmp_path):
    _, good, _, _ = videos
    result = runner.invoke(app, ["measure", str(good), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "um-per-px" in result.output
    with pytest.raises(InputError, match="unknown camera"):
        measure(good, tmp_path / "m", MeasureSettings(camera="no-such-camera"))


def test_manifest_with_a_short_and_a_broken_video(videos, tmp_path):
    root, good, short, broken = videos
    manifest = root / "manifest.csv"
    pd.DataFrame(
        {"patient_id": ["P1", "P1", "P2"], "video": [good.name, short.name, broken.name],
         "label": ["septic", "septic", "non-septic"], "site": ["1", "2", "1"],
         "um_per_px": [1.0, 1.0, 1.0], "fps": [25, 25, 25]}
    ).to_csv(manifest, index=False)  # fmt: skip
    out = tmp_path / "m"
    result = runner.invoke(app, ["measure", str(manifest), "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 3  # one failure, the others measured
    payload = json.loads(result.stdout)
    assert payload["n_failed"] == 1 and "broken.avi" in payload["failures"][0]["reason"]
    by_id = {v["video_id"]: v for v in payload["videos"]}
    assert by_id["good"]["status"] == "ok"
    assert by_id["short"]["status"] == "rejected" and "too_short" in by_id["short"]["quality_flags"]
    assert by_id["short"]["tvd_mm_per_mm2"] is None  # no made-up numbers (NaN -> null)
    assert MeasurementLayout(out).failures.exists()


def _fake_measurements(tmp_path, n_patients=16, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        septic = i % 2 == 0
        for site in ("1", "2"):
            rows.append(
                {"patient_id": f"P{i:02d}", "label": "septic" if septic else "non-septic",
                 "site": site, "status": "ok",
                 "tvd_mm_per_mm2": rng.normal(18, 2), "tvd_small_mm_per_mm2": rng.normal(15, 2),
                 "ppv_percent": rng.normal(75 if septic else 97, 8),
                 "pvd_mm_per_mm2": rng.normal(11 if septic else 15, 2),
                 "mfi": rng.normal(2.2 if septic else 2.9, 0.3),
                 "mean_velocity_um_per_s": rng.normal(900 if septic else 1300, 150)}
            )  # fmt: skip
    layout = MeasurementLayout(tmp_path / "measurements")
    layout.root.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(layout.videos)
    return layout


def test_interpret_metrics_and_combined_models(tmp_path):
    layout = _fake_measurements(tmp_path)
    run = RunLayout(tmp_path / "run")
    run.crossval.mkdir(parents=True)
    patients = pd.DataFrame({"patient_id": [f"P{i:02d}" for i in range(16)]})
    patients["probability"] = np.linspace(0.9, 0.1, 16)  # uninformative of the alternation
    patients.to_parquet(run.oof_patients)
    result = interpret(layout.root, run_dir=run.root)
    names = [m["model"] for m in result["models"]]
    assert names == ["metrics (logistic regression)"] * 2 + ["network", "network + metrics"]
    assert result["models"][0]["auc"] > 0.85  # PPV, PVD and MFI separate the classes
    assert result["coefficients"][0]["metric"] in {"ppv_percent", "mfi", "pvd_mm_per_mm2",
                                                   "mean_velocity_um_per_s"}  # fmt: skip
    assert layout.interpret.auc.exists()
    assert not any("only" in note for note in result["notes"])  # 16 patients: no warning
    cli = runner.invoke(app, ["interpret", str(layout.root), "--json"])
    assert cli.exit_code == 0 and json.loads(cli.stdout)["models"][0]["n_patients"] == 16
    few = patients.iloc[:6]  # 6 patients with the network's probability: the AUCs say little
    few.to_parquet(run.oof_patients)
    notes = interpret(layout.root, run_dir=run.root)["notes"]
    assert sum("only 6 patients" in note for note in notes) == 3  # metrics, network, combined
    # the figures are out-of-fold already: more patients, not crossval, would steady them
    assert not any("sepsiscope crossval" in note for note in notes)


def test_interpret_with_few_evaluated_patients_fits_the_metrics_and_says_to_crossval(tmp_path):
    layout = _fake_measurements(tmp_path)
    run = RunLayout(tmp_path / "run")
    run.evaluation.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["P00", "P01"], "probability": [0.7, 0.2],
                  "split": ["test", "test"]}).to_parquet(run.evaluation_patients)  # fmt: skip
    cli = runner.invoke(app, ["interpret", str(layout.root), "--run", str(run.root), "--quiet"])
    assert cli.exit_code == 0
    message = " ".join(cli.output.split())
    assert "network and combined models not fitted" in message
    assert "only 2 patients (1 septic, 1 non-septic)" in message
    assert "sepsiscope crossval --store STORE --out RUN" in message
    assert "--run CV_DIR" in message
    result = json.loads(layout.interpret.result.read_text())
    assert [m["model"] for m in result["models"]] == ["metrics (logistic regression)"]
    assert result["models"][0]["n_patients"] == 16
    # a crossval's out-of-fold patients that match none measured: another manifest, an error
    run.crossval.mkdir()
    pd.DataFrame({"patient_id": ["X1", "X2"], "probability": [0.7, 0.2]}).to_parquet(
        run.oof_patients
    )
    with pytest.raises(InputError, match="share patient_id"):
        interpret(layout.root, run_dir=run.root)
    # three of them measured: a note, and the metrics model on all 16
    pd.DataFrame({"patient_id": ["P00", "P01", "P02"], "probability": [0.7, 0.2, 0.6]}).to_parquet(
        run.oof_patients
    )
    result = interpret(layout.root, run_dir=run.root)
    assert len(result["models"]) == 1 and "Measure more of the run's patients" in " ".join(
        result["notes"]
    )
    with pytest.raises(InputError, match="neither .*oof_patients.parquet.*sepsiscope crossval"):
        interpret(layout.root, run_dir=tmp_path / "empty")


def test_interpret_accepts_a_crossval_folder_itself(tmp_path):
    layout = _fake_measurements(tmp_path)
    run = RunLayout(tmp_path / "cv")
    run.crossval.mkdir(parents=True)
    patients = pd.DataFrame({"patient_id": [f"P{i:02d}" for i in range(16)]})
    patients["probability"] = np.where(np.arange(16) % 2 == 0, 0.8, 0.2)  # P00 septic, ranked right
    patients.to_parquet(run.oof_patients)
    for given in (run.root, run.crossval):
        result = interpret(layout.root, run_dir=given)
        assert result["network_source"] == "crossval out-of-fold"
        network = result["models"][2]
        assert network["model"] == "network" and network["n_patients"] == 16
        assert network["auc"] == pytest.approx(1.0)


def test_a_folder_of_videos_is_measured_video_by_video(videos, tmp_path):
    root, good, _, _ = videos
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.avi", "a.avi"):
        (folder / name).write_bytes(good.read_bytes())
    (folder / "notes.txt").write_text("exported by the camera")
    result = runner.invoke(app, ["measure", str(folder), "--out", str(tmp_path / "m"),
                                 "--um-per-px", "1.0", "--quiet", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["videos"]
    assert [r["video_id"] for r in rows] == ["a", "b"]
    assert rows[0]["tvd_mm_per_mm2"] == pytest.approx(rows[1]["tvd_mm_per_mm2"])


def test_a_rerun_measures_only_what_is_missing_and_matches_a_full_run(
    videos, tmp_path, monkeypatch
):
    from sepsiscope.microcirculation import measure as measure_module

    root, good, _, _ = videos
    paths = []
    for name in ("a", "b", "c"):
        paths.append(tmp_path / f"{name}.avi")
        paths[-1].write_bytes(good.read_bytes())
    manifest = tmp_path / "m.csv"
    rows = {"patient_id": ["p1", "p2", "p3"], "video": [str(p) for p in paths],
            "label": ["septic", "control", "septic"], "um_per_px": [1.0] * 3}  # fmt: skip
    pd.DataFrame(rows).to_csv(manifest, index=False)
    settings = MeasureSettings(kymographs=1)
    measure(manifest, tmp_path / "full", settings, quiet=True)
    full = pd.read_parquet(MeasurementLayout(tmp_path / "full").videos)

    out = MeasurementLayout(tmp_path / "m")
    measure(manifest, out.root, settings, quiet=True)
    # as a kill after two videos leaves it: the third's kept result and every table gone
    for path in (out.per_video_meta("c"), out.videos, out.vessels):
        path.unlink()
    measured = []
    original = measure_module._safe_measure

    def counted(row, **kwargs):
        measured.append(row["video_id"])
        return original(row, **kwargs)

    monkeypatch.setattr(measure_module, "_safe_measure", counted)
    measure(manifest, out.root, settings, quiet=True)
    assert measured == ["c"]
    again = pd.read_parquet(out.videos)
    timing = ["seconds"]  # the one column that depends on the machine's load
    pd.testing.assert_frame_equal(again.drop(columns=timing), full.drop(columns=timing))
    vessels = pd.read_parquet(out.vessels)
    assert len(vessels) == len(pd.read_parquet(MeasurementLayout(tmp_path / "full").vessels))

    # another manifest into the same folder: nothing of the old videos stays beside it
    pd.DataFrame({k: v[:1] for k, v in rows.items()}).to_csv(manifest, index=False)
    measured.clear()
    measure(manifest, out.root, settings, quiet=True)
    assert measured == [] and list(pd.read_parquet(out.videos)["video_id"]) == ["a"]
    assert sorted(p.name for p in out.overlays.iterdir()) == ["a.png"]
    assert not out.per_video_meta("b").exists() and not out.kymograph("c").exists()
    changed = settings.model_copy(update={"min_contrast": 0.05})
    measure(manifest, out.root, changed, quiet=True)
    assert measured == ["a"]  # other settings: measured again


def test_a_still_video_its_container_marks_interlaced_is_measured_as_fields(tmp_path):
    """Nothing moves, so the frames cannot tell: the container's mark decides (auto), and a
    video measured as frames against it is warned about."""
    import av

    scene = [Vessel(line(60, 0, 60, 159), 8, 0), Vessel(line(0, 100, 159, 60), 10, 0)]
    frames = render(scene, seconds=1.6, seed=4)
    path = tmp_path / "marked.mp4"
    with av.open(str(path), "w") as container:  # H.264 flagged interlaced, top field first
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 160, "yuv420p"
        stream.options = {"x264-params": "interlaced=1:tff=1", "crf": "12"}
        for frame in frames:
            rgb = np.repeat(frame[..., None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    measure(path, tmp_path / "m", MeasureSettings(um_per_px=1.0, kymographs=0), quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "m").videos).iloc[0]
    assert row["fields"] == "top_first" and row["fps"] == 50.0 and row["warnings"] == ""
    assert "its container marks it interlaced (top_first)" in row["message"]
    frames = MeasureSettings(um_per_px=1.0, kymographs=0, fields="progressive")
    measure(path, tmp_path / "f", frames, quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "f").videos).iloc[0]
    assert row["warnings"] == "interlaced" and row["fps"] == 25.0


def test_moving_frames_overrule_the_container_and_an_unclear_verdict_is_said(tmp_path):
    """x264 marks progressive frames interlaced when told to: where cells move, the frames
    decide (and the mark is noted); where they move but cannot tell, auto says so."""
    import av

    from sepsiscope.microcirculation.measure import _choose_fields

    moving = [Vessel(line(5, 80, 155, 80), 7, 500), Vessel(line(80, 5, 80, 155), 7, 300)]
    path = tmp_path / "marked.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 160, "yuv420p"
        stream.options = {"x264-params": "interlaced=1:tff=1", "crf": "12"}
        for frame in render(moving, seconds=1.6, seed=2):
            rgb = np.repeat(frame[..., None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    measure(path, tmp_path / "m", MeasureSettings(um_per_px=1.0, kymographs=0), quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "m").videos).iloc[0]
    assert (row["fields"], row["fps"]) == ("progressive", 25.0)
    assert "its container marks it interlaced (top_first), but its frames show" in row["message"]
    plain = write_video(tmp_path / "p.avi", render(moving, seconds=0.4, seed=2), 25.0)
    fields, warnings, messages = _choose_fields("auto", "unclear", plain)
    assert (fields, warnings) == ("progressive", ["fields_unclear"]) and "--fields" in messages[0]
    assert _choose_fields("top_first", "unclear", plain) == ("top_first", [], [])
    assert _choose_fields("auto", "unclear", path)[0] == "top_first"  # then the mark decides


def test_fields_asked_of_a_progressive_video_are_measured_with_a_warning(tmp_path):
    moving = [Vessel(line(5, 80, 155, 80), 7, 500), Vessel(line(80, 5, 80, 155), 7, 300)]
    video = write_video(tmp_path / "p.avi", render(moving, seconds=1.6, seed=2), 25.0, quality=95)
    auto = MeasureSettings(um_per_px=1.0, overlays=False, kymographs=0)
    measure(video, tmp_path / "a", auto, quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "a").videos).iloc[0]
    assert (row["fields"], row["fps"], row["warnings"]) == ("progressive", 25.0, "")
    measure(video, tmp_path / "t", auto.model_copy(update={"fields": "top_first"}), quiet=True)
    row = pd.read_parquet(MeasurementLayout(tmp_path / "t").videos).iloc[0]
    assert (row["fields"], row["fps"]) == ("top_first", 50.0)
    assert "not_interlaced" in row["warnings"].split(";")
    assert "its frames show no interlacing" in row["message"]
