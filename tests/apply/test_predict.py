"""Prediction on a file, a folder, a manifest and a simulated live camera: one streaming path."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import zarr
from _predict_fixtures import FPS, SAMPLING, make_run, vessel_frames, write_test_video
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sepsiscope.apply._streaming import RollingProbability
from sepsiscope.apply.predict import PredictSettings, predict
from sepsiscope.apply.sources import LiveSource
from sepsiscope.cli import app
from sepsiscope.data.video import probe_video, write_video
from sepsiscope.errors import InputError, PartialFailure

# 50 frames at 25 fps, 5 samples/s, k = 2 frames: anchors 0, 5, ..., 45 (t + 2k must exist)
N_SAMPLED = 10
BLACK, BLURRED = 20, 30
FAST = {"backend": "fp32", "block_s": 0.5, "batch_size": 8}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    video = write_test_video(root / "videos" / "a.avi", black=(BLACK,), blurred=(BLURRED,))
    write_test_video(root / "videos" / "b.avi", seed=1)
    return {"root": root, "run": make_run(root / "run"), "video": video}


def test_file_prediction_counts_gate_and_rolling_mean(media):
    result = predict(media["run"], media["video"], PredictSettings(**FAST), quiet=True)
    table = pd.read_parquet(result["table"])
    assert result["frames_sampled"] == N_SAMPLED == len(table)
    assert result["frames_used"] + result["frames_skipped"] == N_SAMPLED
    skipped = table.loc[~table["usable"], "frame_index"].tolist()
    assert skipped == [BLACK, BLURRED]
    assert "illumination" in table.set_index("frame_index").loc[BLACK, "skip_reason"]
    assert "focus" in table.set_index("frame_index").loc[BLURRED, "skip_reason"]
    assert table.loc[~table["usable"], "probability"].isna().all()
    probs = table["probability"].dropna()
    assert ((probs >= 0) & (probs <= 1)).all() and len(probs) == result["frames_used"]
    assert result["probability"] == pytest.approx(probs.mean())
    assert table["rolling_probability"].iloc[-1] == pytest.approx(probs.mean())
    low, high = result["interval"]
    assert 0 <= low <= result["probability"] <= high <= 1
    expected = "septic" if result["probability"] >= result["threshold"] else "non-septic"
    assert result["verdict"] == expected and result["threshold"] == 0.5
    assert (media["run"] / "predictions" / "a" / "frames.csv").exists()
    assert result["scale_known"] is False and result["um_per_px"] is None  # flagged
    augmented = predict(media["run"], media["video"], PredictSettings(**FAST, tta=True),
                        quiet=True)  # fmt: skip
    assert augmented["backend"].endswith("+tta") and 0 <= augmented["probability"] <= 1
    assert augmented["frames_used"] == result["frames_used"]
    # a stricter threshold flips the verdict, consistently
    strict = predict(media["run"], media["video"],
                     PredictSettings(**FAST, threshold=min(1.0, result["probability"] + 1e-3)),
                     quiet=True)  # fmt: skip
    assert strict["verdict"] == "non-septic"


def _field_run(media, tmp_path, field_um: float):
    """The media run, as if its store had been ingested with ``field_um``."""
    import shutil

    from sepsiscope.layout import RunLayout

    run = shutil.copytree(media["run"], tmp_path / "field_run")
    saved = json.loads(RunLayout(run).model_settings.read_text())
    saved["sampling"] = {**SAMPLING, "field_um": field_um}
    RunLayout(run).model_settings.write_text(json.dumps(saved))
    return run


@pytest.mark.parametrize("field_um", [None, 60.0])
def test_samples_match_ingest(media, tmp_path, field_um):
    """The samples predict makes are the ones ingest stores for the same video, also when both
    crop a fixed field in µm (60 µm at 0.75 µm/px: 80 px squares of the 128x96 frames)."""
    from sepsiscope.data._sampling import SamplingPlan, ingest_video
    from sepsiscope.layout import StoreLayout

    plan = SamplingPlan(every=None, rate_hz=SAMPLING["rate_hz"], size=SAMPLING["size"],
                        crop="center", channel_offset_s=SAMPLING["channel_offset_s"],
                        optimal_duration_s=5.0, min_duration_s=3.0, field_um=field_um)  # fmt: skip
    job = {"root": str(tmp_path), "video_id": "a", "video": str(media["video"]),
           "patient_id": "p", "label": "septic", "y": 1, "site": "", "camera": "",
           "um_per_px": 0.75, "fps": FPS, "plan": plan, "source_key": "k"}  # fmt: skip
    ingested = ingest_video(job)
    assert set(ingested["frames"]["crop_px"]) == {80 if field_um else 96}
    stored = zarr.open_array(str(StoreLayout(tmp_path).array("a")), mode="r")[:]
    seen = []

    def record(samples):
        seen.append(samples)
        return np.full(len(samples), 0.5, np.float32)

    from sepsiscope.apply._runinfo import load_run
    from sepsiscope.apply.predict import predict_stream
    from sepsiscope.apply.sources import file_frames

    run = _field_run(media, tmp_path, field_um) if field_um else media["run"]
    _, info = load_run(run)
    assert info.field_um == field_um
    settings = PredictSettings(quality_gate=False, um_per_px=0.75)
    for _ in predict_stream(file_frames(media["video"], FPS), record, info, fps=FPS,
                            settings=settings, live=False):  # fmt: skip
        pass
    np.testing.assert_array_equal(np.concatenate(seen), stored)
    frames = ingested["frames"]
    assert frames.loc[frames["frame_index"] == BLACK, "illumination_score"].item() == 10


def test_field_um_run_needs_the_scale_and_a_large_enough_field(media, tmp_path):
    """A run ingested with field_um: predict and explain take the scale from --um-per-px or the
    manifest, refuse without one, and refuse a field of view smaller than field_um."""
    from sepsiscope.apply.explain import ExplainSettings, explain

    run = _field_run(media, tmp_path, 60.0)
    out = {"out": tmp_path / "o"}
    with pytest.raises(InputError, match=r"a.avi: samples of a fixed 60 µm field \(field_um\) "
                       r"need the video's µm/px; give --um-per-px"):  # fmt: skip
        predict(run, media["video"], PredictSettings(**FAST, **out), quiet=True)
    with pytest.raises(InputError, match=r"the field of view, 64x48 µm \(128x96 px at 0.5 "
                       r"µm/px\), is smaller than the 60 µm samples"):  # fmt: skip
        predict(run, media["video"], PredictSettings(**FAST, **out, um_per_px=0.5), quiet=True)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"patient_id,video,label,um_per_px\np,{media['video']},septic,0.75\n")
    listed = predict(run, manifest, PredictSettings(**FAST, out=tmp_path / "m"), quiet=True)
    cli = CliRunner().invoke(app, ["predict", str(run), str(media["video"]), "--um-per-px",
                                   "0.75", "--backend", "fp32", "--out", str(tmp_path / "c"),
                                   "--json"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    given = json.loads(cli.stdout)
    assert given["frames_used"] == listed["videos"][0]["frames_used"] > 0
    assert (given["um_per_px"], given["scale_known"]) == (0.75, True)
    assert listed["videos"][0]["um_per_px"] == 0.75
    assert given["probability"] == pytest.approx(listed["videos"][0]["probability"], abs=1e-5)
    shown = explain(run, ExplainSettings(n=2, out=tmp_path / "e", um_per_px=0.75),
                    video=media["video"], quiet=True)  # fmt: skip
    assert shown["n"] == 2


def test_16_bit_folder_needs_fps_and_shares_ingest_white_level(media, tmp_path):
    """A 12-bit camera's PNGs whose first frame is dim: predict refuses to guess the rate, and
    with --fps its samples are ingest's (white from the opening frames, nothing clipped)."""
    from sepsiscope.apply._runinfo import load_run
    from sepsiscope.apply.predict import predict_stream
    from sepsiscope.apply.sources import file_frames
    from sepsiscope.data._sampling import SamplingPlan, ingest_video
    from sepsiscope.layout import StoreLayout

    deep = [f.astype(np.uint16) * (4 if i == 0 else 16) for i, f in enumerate(vessel_frames(30))]
    deep[4][30:60, 40:80] = 3000
    assert deep[0].max() < 1023
    folder = write_video(tmp_path / "deep", deep, FPS)
    with pytest.raises(InputError, match=r"deep: no frame rate in the file; give --fps"):
        predict(media["run"], folder, PredictSettings(**FAST, out=tmp_path / "o"), quiet=True)
    result = predict(media["run"], folder, PredictSettings(**FAST, fps=FPS, out=tmp_path / "o"),
                     quiet=True)  # fmt: skip
    assert result["frames_sampled"] > 0
    plan = SamplingPlan(every=None, rate_hz=SAMPLING["rate_hz"], size=SAMPLING["size"],
                        crop="center", channel_offset_s=SAMPLING["channel_offset_s"],
                        optimal_duration_s=5.0, min_duration_s=3.0)  # fmt: skip
    job = {"root": str(tmp_path), "video_id": "deep", "video": str(folder), "patient_id": "p",
           "label": "septic", "y": 1, "site": "", "camera": "", "um_per_px": 1.0,
           "fps": float("nan"), "plan": plan, "source_key": "k"}  # fmt: skip
    refused = ingest_video(job)  # no fps in the manifest and none in a folder: ingest's hint
    assert refused == {"reason": "no frame rate in the file; give fps in the manifest"}
    job["fps"] = FPS
    assert ingest_video(job)["video"]["white_level"] == 4095
    stored = zarr.open_array(str(StoreLayout(tmp_path).array("deep")), mode="r")[:]
    seen = []

    def record(samples):
        seen.append(samples)
        return np.full(len(samples), 0.5, np.float32)

    _, info = load_run(media["run"])
    for _ in predict_stream(file_frames(folder, FPS), record, info, fps=FPS,
                            settings=PredictSettings(quality_gate=False), live=False):  # fmt: skip
        pass
    np.testing.assert_array_equal(np.concatenate(seen), stored)
    assert stored.max() == round(3000 * 255 / 4095) and (stored == 255).sum() == 0


def test_live_source_uses_the_same_path(media, caplog):
    fileresult = predict(media["run"], media["video"], PredictSettings(**FAST), quiet=True)
    live = predict(media["run"], media["video"],
                   PredictSettings(**FAST, realtime=True, out=media["root"] / "live"),
                   quiet=True)  # fmt: skip
    assert live["mode"] == "live" and fileresult["mode"] == "file"
    assert live["elapsed_s"] >= 0.9 * (50 - 1) / FPS  # paced like a camera
    lat = live["latency"]
    assert lat["n"] == live["frames_used"] and 0 < lat["median_ms"] <= lat["p95_ms"]
    assert {"median_ms", "p95_ms", "max_ms", "goal_ms", "goal_met"} <= lat.keys()
    a = pd.read_parquet(fileresult["table"])["probability"].to_numpy()
    b = pd.read_parquet(live["table"])["probability"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)  # batch size 1 vs 32: same numbers
    assert live["probability"] == pytest.approx(fileresult["probability"], abs=1e-6)


def test_live_source_stops_after_max_seconds(media):
    events = list(LiveSource(media["video"], 100.0, max_seconds=0.1))
    assert [e.index for e in events] == list(range(10))
    assert np.diff([e.arrival for e in events]) == pytest.approx(np.full(9, 0.01))


def test_folder_and_manifest_with_a_bad_video(media, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a.avi", "b.avi"):
        (folder / name).write_bytes((media["root"] / "videos" / name).read_bytes())
    (folder / "broken.avi").write_bytes(b"not a video at all")
    with pytest.raises(PartialFailure) as info:
        predict(media["run"], folder, PredictSettings(**FAST, out=tmp_path / "out"), quiet=True)
    result = info.value.result
    assert result["summary"]["n_predicted"] == 2 and result["summary"]["n_failed"] == 1
    assert "broken.avi" in result["failures"][0]["video"]
    assert pd.read_csv(result["table"])["name"].tolist() == ["a", "b"]
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"patient_id": ["p1", "p2"], "video": ["videos/a.avi", "videos/b.avi"],
                  "label": ["septic", "non-septic"], "um_per_px": [1.0, 1.0]}).to_csv(
        manifest, index=False)  # fmt: skip
    result = predict(media["run"], manifest, PredictSettings(**FAST, out=tmp_path / "m"),
                     quiet=True)  # fmt: skip
    assert [v["patient_id"] for v in result["videos"]] == ["p1", "p2"]
    assert [v["label"] for v in result["videos"]] == ["septic", "non-septic"]
    (folder / "b.avi").unlink()
    (folder / "broken.avi").unlink()
    one = predict(media["run"], folder, PredictSettings(**FAST, out=tmp_path / "o"), quiet=True)
    assert [v["name"] for v in one["videos"]] == ["a"]  # a folder always gives the list form


def test_annotated_video_and_missing_threshold(media, tmp_path, caplog):
    run = make_run(tmp_path / "run", threshold=None)
    out = tmp_path / "annotated.mp4"
    with caplog.at_level(logging.WARNING):
        result = predict(run, media["video"], PredictSettings(**FAST, annotate=out), quiet=True)
    assert "threshold.json not found" in caplog.text and result["threshold"] == 0.5
    info = probe_video(out)
    assert info.n_frames == result["frames_sampled"] and info.width > info.height


def test_cli_predict_json_keys_and_bad_input(media, tmp_path):
    runner = CliRunner()
    args = ["predict", str(media["run"]), str(media["video"]), "--backend", "fp32",
            "--out", str(tmp_path), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {"probability", "verdict", "frames_used", "frames_skipped", "table"} <= payload.keys()
    assert payload["table"].startswith(str(tmp_path))
    missing = runner.invoke(app, ["predict", str(media["run"]), str(tmp_path / "nope.avi")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    with pytest.raises(InputError, match="unknown back end|backend"):
        PredictSettings.build(None, backend="tpu")


def test_rolling_interval_needs_two_blocks():
    rolling = RollingProbability(block_s=1.0)
    assert np.isnan(rolling.probability)
    rolling.add(0.1, 0.8)
    rolling.add(0.5, 0.6)
    assert rolling.interval == (0.0, 1.0)  # one block: not estimable, say so
    rolling.add(1.2, 0.7)
    assert rolling.probability == pytest.approx(0.7)
    assert rolling.interval == pytest.approx((0.7, 0.7))  # equal block means: no spread


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.floats(0.2, 3.0))
def test_rolling_interval_contains_mean_within_unit_range(probs, block_s):
    rolling = RollingProbability(block_s=block_s)
    for i, p in enumerate(probs):
        rolling.add(i * 0.25, p)
    low, high = rolling.interval
    assert 0 <= low <= rolling.probability + 1e-12 and rolling.probability - 1e-12 <= high <= 1
    assert rolling.probability == pytest.approx(np.mean(probs))


def test_folder_of_single_page_tiff_frames_is_one_video(media, tmp_path, caplog):
    import tifffile

    folder = tmp_path / "tifframes"
    folder.mkdir()
    for i, frame in enumerate(vessel_frames(50)):
        tifffile.imwrite(folder / f"img_{i}.tif", frame)  # unpadded: img_10 sorts after img_9
    (folder / "notes.txt").write_text("exported by the camera")
    with caplog.at_level(logging.WARNING, logger="sepsiscope.apply.predict"):
        result = predict(media["run"], folder, PredictSettings(**FAST, fps=FPS), quiet=True)
    assert result["name"] == "tifframes" and result["frames_sampled"] == N_SAMPLED
    assert "a folder of frames; skipped 1 entries: notes.txt" in caplog.text
    assert "too short" not in caplog.text


def test_folder_of_videos_stacks_and_frame_subfolders(tmp_path, caplog):
    import tifffile

    from sepsiscope.apply.predict import _resolve

    frames = np.stack(vessel_frames(4))
    write_video(tmp_path / "c.avi", frames, FPS)
    tifffile.imwrite(tmp_path / "b10.tif", frames, photometric="minisblack")  # stacks: videos
    tifffile.imwrite(tmp_path / "b9.tif", frames, photometric="minisblack")
    write_video(tmp_path / "a", frames, FPS)  # a sub-folder of PNG frames is a video
    (tmp_path / "empty").mkdir()
    (tmp_path / "cover.png").write_bytes((tmp_path / "a" / "frame_00000.png").read_bytes())
    with caplog.at_level(logging.WARNING, logger="sepsiscope.apply.predict"):
        items = _resolve(str(tmp_path))
    assert [i["name"] for i in items] == ["a", "b9", "b10", "c"]
    assert "a folder of videos; skipped 2 entries: cover.png, empty/" in caplog.text


def test_cli_json_prints_the_failures_when_no_video_could_be_predicted(media, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "one.avi").write_bytes(b"not a video")
    (folder / "two.mp4").write_bytes(b"nor this")
    args = ["predict", str(media["run"]), str(folder), "--backend", "fp32", "--out",
            str(tmp_path / "out"), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "no video could be predicted" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["summary"]["n_failed"] == 2 and payload["videos"] == []
    assert [f["video"].rsplit("/", 1)[-1] for f in payload["failures"]] == ["one.avi", "two.mp4"]
