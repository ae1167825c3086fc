"""Ingest on small real videos: the store it writes, resuming, SIGKILL, bad inputs and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _ingest_media import cohort, vessel_frames, write_manifest
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data._sampling import ingest_video
from sepsiscope.data.frame_quality import make_samples
from sepsiscope.data.ingest import IngestSettings, ingest, store_info
from sepsiscope.data.store import FrameStore
from sepsiscope.data.video import to_uint8, write_video
from sepsiscope.errors import InputError, PartialFailure

# Test videos last 1.2 s, which Massey's duration rule scores unacceptable (it only gates when
# asked); most tests judge the rest.
SETTINGS = IngestSettings(folds=3, min_duration_s=0)
CONFIG_YAML = "folds: 3\nmin_duration_s: 0\n"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Six patients, one 320x240 MJPEG video each, ingested once."""
    root = tmp_path_factory.mktemp("cohort")
    manifest, rows = cohort(root)
    result = ingest(manifest, root / "store", SETTINGS, quiet=True)
    return root, manifest, rows, result


def _tables(store_dir):
    store = FrameStore(store_dir)
    return store.videos.drop(columns="path"), store.frames


def test_store_holds_samples_tables_splits_and_geometry(clean):
    root, manifest, _, result = clean
    assert result["videos"] == 6 and result["failures"] == 0 and result["videos_new"] == 6
    store = FrameStore(root / "store")
    # 30 frames at 25 fps, 2 samples/s, k = 4: samples at frames 0 and 12 (25 needs frame 33).
    assert result["samples"] == 12 and sorted(set(store.frames.frame_index)) == [0, 12]
    assert store.frames.time_s.max() == pytest.approx(12 / 25)
    np.testing.assert_allclose(store.frames.um_per_px, 1.0 * 240 / 224)  # microscan profile
    assert set(store.videos.split) == {"train", "val", "test"}
    for part in ("train", "val", "test"):
        patients = set(store.samples(part).patient_id)
        assert patients == set(store.splits[part]) and len(patients) == 2
    x = store.read_table(store.samples("train"))
    assert x.shape == (4, 3, 224, 224) and x.dtype == np.uint8
    meta = json.loads((root / "store" / "store.json").read_text())
    assert meta["format_version"] == 1 and meta["settings"]["size"] == 224
    copy = pd.read_csv(root / "store" / "manifest.csv")
    assert all(Path(v).is_absolute() for v in copy.video)
    info = store_info(root / "store")
    assert info["patients"]["by_label"] == {"non-septic": 3, "septic": 3}
    assert info["frames"]["by_split"] == {"test": 4, "train": 4, "val": 4}
    assert info["videos"]["total"] == 6 and info["failures"] == []
    assert sorted(sum(info["splits"].values(), [])) == [f"p{i:02d}" for i in range(6)]
    assert info["raw_bytes"] == 12 * 3 * 224 * 224 and info["size_bytes"] > 0


def test_rerun_adds_nothing_and_updated_manifest_adds_only_new(clean, tmp_path):
    root, manifest, rows, _ = clean
    shutil.copytree(root / "store", tmp_path / "store")
    before = _tables(tmp_path / "store")
    again = ingest(manifest, tmp_path / "store", SETTINGS, quiet=True)
    assert again["videos_new"] == 0 and again["videos_skipped"] == 6
    after = _tables(tmp_path / "store")
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])

    write_video(root / "videos" / "p00b.avi", vessel_frames(30, seed=9), 25)
    extra = {"patient_id": "p00", "video": "videos/p00b.avi", "label": "non-septic",
             "camera": "microscan"}  # fmt: skip
    updated = write_manifest(tmp_path / "m2.csv", [
        {**r, "video": str(root / r["video"])} for r in rows] + [
        {**extra, "video": str(root / extra["video"])}])  # fmt: skip
    grown = ingest(updated, tmp_path / "store", SETTINGS, quiet=True)
    assert grown["videos_new"] == 1 and grown["videos_skipped"] == 6 and grown["videos"] == 7
    assert FrameStore(tmp_path / "store").frames.groupby("video_id").size().to_dict() == {
        **{f"p{i:02d}": 2 for i in range(6)},
        "p00b": 2,
    }

    with pytest.raises(InputError, match="other settings .*size 224 -> 256"):
        ingest(updated, tmp_path / "store", SETTINGS.model_copy(update={"size": 256}))
    fresh = ingest(updated, tmp_path / "store", SETTINGS.model_copy(update={"size": 232}),
                   quiet=True, overwrite=True)  # fmt: skip
    assert fresh["videos_new"] == 7 and FrameStore(tmp_path / "store").size == 232


def test_sigkill_mid_run_leaves_a_readable_store_that_resumes_to_the_clean_result(clean, tmp_path):
    root, manifest, _, _ = clean
    (tmp_path / "c.yaml").write_text(CONFIG_YAML)
    store_dir = tmp_path / "store"
    env = {**os.environ, "SEPSISCOPE_INGEST_PAUSE_S": "0.6"}
    cmd = [sys.executable, "-m", "sepsiscope", "ingest", str(manifest), "--store", str(store_dir),
           "--config", str(tmp_path / "c.yaml"), "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = 0
    while done < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        try:
            done = len(pd.read_parquet(store_dir / "videos.parquet"))
        except Exception:
            done = 0
    assert proc.poll() is None, proc.stderr.read().decode()  # still running: kill it mid-way
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = FrameStore(store_dir)
    n_killed = len(killed.videos)
    assert 1 <= n_killed < 6
    assert killed.read_table(killed.samples(usable_only=False)).shape[0] == 2 * n_killed
    assert store_info(store_dir)["last_ingest"] == "cut off"

    resumed = ingest(manifest, store_dir, SETTINGS, quiet=True)
    assert resumed["videos_skipped"] == n_killed and resumed["videos_new"] == 6 - n_killed
    a, b = _tables(root / "store"), _tables(store_dir)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    clean_store, resumed_store = FrameStore(root / "store"), FrameStore(store_dir)
    np.testing.assert_array_equal(
        clean_store.read_table(clean_store.frames), resumed_store.read_table(resumed_store.frames)
    )
    assert not list((store_dir / "frames.zarr").glob(".tmp-*"))
    assert store_info(store_dir)["last_ingest"] == "finished"


def _bad_inputs(root: Path) -> list[tuple[str, str]]:
    """(file name, expected reason) for every bad input in the issue; written under root."""
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.avi").write_bytes(b"")
    (bad / "text.avi").write_text("this is not a video\n")
    write_video(bad / "full.avi", vessel_frames(60, seed=3), 25)
    data = (bad / "full.avi").read_bytes()
    (bad / "truncated.avi").write_bytes(data[: len(data) // 3])
    (bad / "unknown_codec.avi").write_bytes(data.replace(b"MJPG", b"XVQ9"))
    write_video(bad / "one_frame.avi", vessel_frames(1), 25)
    write_video(bad / "small.avi", vessel_frames(12, 150, 200), 25)
    return [
        ("bad/zero.avi", "empty file (0 bytes)"),
        ("bad/text.avi", "not a readable video"),
        ("bad/truncated.avi", "truncated: decoded"),
        ("bad/unknown_codec.avi", "unsupported codec"),
        ("bad/one_frame.avi", "1 frame(s) is too short for one sample"),
        ("bad/small.avi", "frames of 200x150 px are smaller than the 224 px"),
        ("bad/missing.avi", "file not found"),
    ]


def test_bad_inputs_fail_alone_and_a_4k_video_ingests(clean, tmp_path, caplog):
    root, _, rows, _ = clean
    bad = _bad_inputs(tmp_path)
    write_video(tmp_path / "uhd.avi", vessel_frames(6, 2160, 3840, noise=2), 10, quality=60)
    manifest_rows = [{**r, "video": str(root / r["video"])} for r in rows]
    for i, (name, _) in enumerate(bad):
        manifest_rows.append({**rows[i % 6], "video": name})
    manifest_rows.append({**rows[0], "video": "uhd.avi"})
    manifest = write_manifest(tmp_path / "manifest.csv", manifest_rows)
    with pytest.raises(PartialFailure, match="7 of 14 video"):
        ingest(manifest, tmp_path / "store", SETTINGS, quiet=True)
    store = FrameStore(tmp_path / "store")
    assert len(store.videos) == 7 and len(store.failures) == 7
    for (name, reason), failure in zip(bad, store.failures.itertuples(), strict=True):
        assert failure.video == str(tmp_path / name) and reason in failure.reason
        assert name in caplog.text
    uhd = store.frames[store.frames.video_id == "uhd"]
    assert len(uhd) == 1 and uhd.um_per_px.iloc[0] == pytest.approx(2160 / 224)
    assert store.read_table(uhd).shape == (1, 3, 224, 224)
    assert store.videos.set_index("video_id").loc["uhd", "width"] == 3840
    with pytest.raises(PartialFailure) as rerun:
        ingest(manifest, tmp_path / "store", SETTINGS, quiet=True)
    assert rerun.value.result["videos_skipped"] == 7 and rerun.value.result["failures"] == 7


def test_16_bit_tiff_and_colour_png_folder(tmp_path):
    grey = vessel_frames(14, seed=4)
    write_video(tmp_path / "deep.tif", [(f.astype(np.uint16) * 16) for f in grey], 25)
    write_video(tmp_path / "nofps.tif", grey, 25)
    green = [np.stack([np.zeros_like(f), np.full_like(f, 20 + 6 * i), np.zeros_like(f)], -1)
             for i, f in enumerate(vessel_frames(30))]  # fmt: skip
    write_video(tmp_path / "colour", green, 25)
    rows = [
        {"patient_id": "a", "video": "deep.tif", "label": "septic", "um_per_px": 1, "fps": 25},
        {"patient_id": "b", "video": "colour", "label": "no", "um_per_px": 1, "fps": 25},
        {"patient_id": "c", "video": "nofps.tif", "label": "no", "um_per_px": 1, "fps": ""},
    ]
    settings = IngestSettings(val=0, test=0, folds=0, min_duration_s=0)
    with pytest.raises(PartialFailure) as failed:
        ingest(write_manifest(tmp_path / "m.csv", rows), tmp_path / "store", settings, quiet=True)
    assert "nofps.tif: no frame rate in the file; give fps in the manifest" in str(failed.value)
    store = FrameStore(tmp_path / "store")
    deep = store.frames[store.frames.video_id == "deep"]
    assert store.videos.set_index("video_id").loc["deep", "white_level"] == 4095
    expected = make_samples(np.stack([grey[0], grey[4], grey[8]]))
    assert np.abs(store.read_table(deep).astype(int) - expected).max() <= 1
    colour = store.read_table(store.frames[store.frames.video_id == "colour"])
    means = colour.reshape(2, 3, -1).mean(-1)  # uniform green planes -> luminance 0.587 G
    expected = [[round(0.587 * (20 + 6 * t)) for t in (s, s + 4, s + 8)] for s in (0, 12)]
    np.testing.assert_allclose(means, expected, atol=1)


def test_16_bit_white_level_comes_from_the_opening_frames_not_the_first(tmp_path):
    """A 12-bit camera whose first frame peaks below 1023: later frames reaching 3000 must not
    saturate (a white taken from the first frame alone would be 1023)."""
    grey = vessel_frames(30, seed=5)
    deep = [f.astype(np.uint16) * (4 if i == 0 else 16) for i, f in enumerate(grey)]
    deep[8][100:120, 150:170] = 3000  # inside the centre crop, in the first sample
    assert deep[0].max() < 1023 and max(int(f.max()) for f in deep) >= 3000
    write_video(tmp_path / "deep", deep, 25)  # a folder of 16-bit PNGs
    rows = [{"patient_id": "a", "video": "deep", "label": "septic", "um_per_px": 1, "fps": 25}]
    settings = IngestSettings(val=0, test=0, folds=0, min_duration_s=0)
    ingest(write_manifest(tmp_path / "m.csv", rows), tmp_path / "store", settings, quiet=True)
    store = FrameStore(tmp_path / "store")
    assert store.videos.set_index("video_id").loc["deep", "white_level"] == 4095
    samples = store.read_table(store.frames[store.frames.video_id == "deep"])
    eight = [to_uint8(f, max_value=4095) for f in deep]
    expected = [make_samples(np.stack([eight[t], eight[t + 4], eight[t + 8]])) for t in (0, 12)]
    assert np.abs(samples.astype(int) - np.concatenate(expected)).max() <= 1
    assert samples.max() == round(3000 * 255 / 4095) and (samples == 255).sum() == 0


def test_dark_video_is_flagged_unusable_and_left_out_of_training(tmp_path):
    manifest, rows = cohort(tmp_path, 6)
    write_video(tmp_path / "dark.avi", [f // 10 for f in vessel_frames(30)], 25)
    rows.append({**rows[0], "video": "dark.avi"})
    result = ingest(write_manifest(manifest, rows), tmp_path / "store", SETTINGS.model_copy(
        update={"workers": 2}), quiet=True)  # fmt: skip
    assert result["videos_unusable"] == 1 and result["samples_unusable"] == 2
    assert "warning" not in result  # a minority of samples flagged: no alarm
    store = FrameStore(tmp_path / "store")
    dark = store.videos.set_index("video_id").loc["dark"]
    assert dark.illumination_score == 10 and not dark.usable
    assert "dark" not in set(store.samples(store.split_of()["p00"]).video_id)
    info = store_info(tmp_path / "store")
    assert info["quality"]["videos_rejected_illumination"] == 1
    assert info["quality"]["frames_unusable"] == 2


def test_cli_ingest_and_store_info(clean, tmp_path):
    root, manifest, rows, _ = clean
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", str(manifest), "--store", str(tmp_path / "s"), "--json",
                              "--quiet", "--folds", "3", "--every", "5"])  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["videos"] == 6 and result["samples"] == 6 * 5  # frames 0, 5, ..., 20
    assert result["samples_unusable"] == 0 and "warning" not in result  # duration only scored
    gated = tmp_path / "gate.yaml"
    gated.write_text("duration_gate: true\n")
    args = ["ingest", str(manifest), "--store", str(tmp_path / "g"), "--json", "--quiet"]
    out = runner.invoke(app, [*args, "--folds", "3", "--every", "5", "--config", str(gated)])
    result = json.loads(out.stdout)
    assert result["samples_unusable"] == 30  # 1.2 s videos: Massey duration rejects them
    assert "duration (6 videos)" in result["warning"]
    info = runner.invoke(app, ["store", "info", str(tmp_path / "s"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["quality"]["videos_rejected_duration"]

    bad = write_manifest(tmp_path / "bad.csv", [
        {**rows[0], "video": str(root / rows[0]["video"])},
        {**rows[1], "video": str(tmp_path / "gone.avi")}])  # fmt: skip
    out = runner.invoke(app, ["ingest", str(bad), "--store", str(tmp_path / "b"), "--json",
                              "--val", "0", "--test", "0", "--folds", "0", "-q"])  # fmt: skip
    assert out.exit_code == 3 and json.loads(out.stdout)["failed"][0]["reason"] == "file not found"
    assert "gone.avi: file not found" in out.stderr

    unknown = write_manifest(tmp_path / "u.csv", [{**rows[0], "label": "sick"}])
    out = runner.invoke(app, ["ingest", str(unknown), "--store", str(tmp_path / "u")])
    assert out.exit_code == 2 and "unknown label" in out.stderr
    out = runner.invoke(app, ["ingest", str(manifest), "--store", "x", "--every", "2",
                              "--rate", "3"])  # fmt: skip
    assert out.exit_code == 2 and "not both" in out.stderr
    out = runner.invoke(app, ["store", "info", str(tmp_path / "nowhere")])
    assert out.exit_code == 2 and "sepsiscope ingest" in out.stderr


def test_store_stays_readable_when_every_video_fails(tmp_path):
    rows = [{"patient_id": p, "video": f"{p}.avi", "label": lab, "um_per_px": 1}
            for p, lab in (("a", "septic"), ("b", "control"))]  # fmt: skip
    settings = IngestSettings(val=0, test=0, folds=0)
    with pytest.raises(PartialFailure, match="2 of 2 video"):
        ingest(write_manifest(tmp_path / "m.csv", rows), tmp_path / "s", settings, quiet=True)
    info = store_info(tmp_path / "s")
    assert info["videos"]["total"] == 0 and len(info["failures"]) == 2
    assert FrameStore(tmp_path / "s").samples("train").empty


def test_small_cohort_gets_as_many_folds_as_it_allows(caplog):
    from sepsiscope.data.ingest import feasible_folds

    labels = {"a": "septic", "b": "septic", "c": "septic", "d": "non-septic", "e": "non-septic"}
    assert feasible_folds(labels, 2) == 2
    with caplog.at_level("WARNING"):
        assert feasible_folds(labels, 5) == 2  # two non-septic patients: two folds
    assert "making 2 fold(s) instead" in caplog.text
    assert feasible_folds({"a": "septic", "b": "non-septic", "c": "septic"}, 5) == 0


def _scene(side_px: int, seed: int = 3) -> np.ndarray:
    """A grey field of dark blurred lines (vessels), drawn at 0.5 µm/px."""
    import cv2

    rng = np.random.default_rng(seed)
    scene = np.full((side_px, side_px), 170, np.uint8)
    for _ in range(40):
        p0, p1 = (tuple(int(v) for v in rng.integers(0, side_px, 2)) for _ in range(2))
        cv2.line(scene, p0, p1, int(rng.integers(40, 110)), int(rng.integers(6, 16)))
    return cv2.GaussianBlur(scene, (0, 0), 2.0)


def test_field_um_crops_every_camera_to_the_same_physical_field(tmp_path):
    """Two cameras see one scene at 1.0 and 1.5 µm/px over 300 and 450 µm: sized in pixels their
    samples differ in scale; with field_um = 150 both show the same central 150 µm, at one
    µm per sample pixel. A camera whose field is under 150 µm fails with the reason."""
    import cv2

    scene = _scene(900)  # 450 µm at 0.5 µm/px
    fine = cv2.resize(scene[150:750, 150:750], (300, 300), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(scene, (300, 300), interpolation=cv2.INTER_AREA)
    small = fine[90:210, 90:210]  # 120 µm at 1.0 µm/px
    rows = []
    for name, frame, um in (("fine", fine, 1.0), ("coarse", coarse, 1.5), ("small", small, 1.0)):
        write_video(tmp_path / f"{name}.tif", [frame] * 30, 25)
        rows.append({"patient_id": name, "video": f"{name}.tif", "label": "septic",
                     "um_per_px": um, "fps": 25})  # fmt: skip
    manifest = write_manifest(tmp_path / "m.csv", rows)
    base = IngestSettings(val=0, test=0, folds=0, min_duration_s=0, size=64)

    def samples(store_dir, settings):
        try:
            ingest(manifest, store_dir, settings, quiet=True)
            reason = ""
        except PartialFailure as failed:
            reason = str(failed)
        store = FrameStore(store_dir)
        frames = store.frames.set_index("video_id")
        return store, {v: store.read_table(store.frames[store.frames.video_id == v])[0]
                       for v in ("fine", "coarse")}, frames, reason  # fmt: skip

    _, by_px, _, reason = samples(tmp_path / "px", base)
    assert reason == ""  # sized in pixels, a 120 µm field is a 120 px square like any other
    store, by_field, frames, reason = samples(tmp_path / "um", base.model_copy(
        update={"field_um": 150.0}))  # fmt: skip
    assert ("small.tif: the field of view, 120x120 µm (120x120 px at 1 µm/px), is smaller than "
            "the 150 µm samples (field_um)") in reason  # fmt: skip
    assert frames.loc["fine", "crop_px"].tolist() == [150, 150]
    assert frames.loc["coarse", "crop_px"].tolist() == [100, 100]
    np.testing.assert_allclose(frames["um_per_px"], 150 / 64)
    assert frames.loc["coarse", "crop_y"].tolist() == [100, 100]
    gap_field = np.abs(by_field["fine"].astype(int) - by_field["coarse"]).mean()
    gap_px = np.abs(by_px["fine"].astype(int) - by_px["coarse"]).mean()
    assert gap_field < 3 < 15 < gap_px  # same tissue at one scale vs two scales
    assert store.meta["settings"]["field_um"] == 150.0
    with pytest.raises(InputError, match=r"field_um 150.0 -> 120.0"):
        ingest(manifest, tmp_path / "um", base.model_copy(update={"field_um": 120.0}), quiet=True)
    # tiles of the fixed field cover the frame: 300 px / 150 px = 2 x 2 tiles on the fine camera
    _, _, tiled, _ = samples(tmp_path / "tiles", base.model_copy(
        update={"field_um": 150.0, "crop": "tiles"}))  # fmt: skip
    fine_tiles = tiled.loc["fine"]
    assert len(fine_tiles) == 2 * 4 and set(fine_tiles["crop_px"]) == {150}
    corners = set(zip(fine_tiles.crop_y, fine_tiles.crop_x, strict=True))
    assert corners == {(0, 0), (0, 150), (150, 0), (150, 150)}


def test_a_studys_spreadsheet_without_scale_ingests_flagged(tmp_path):
    """An .xlsx with only Patient ID, Video, Label (and a text site): every video is stored,
    sampled by pixels and flagged as of unknown scale; --field-um refuses just those videos."""
    cohort(tmp_path, 6)
    rows = [
        {"Patient ID": f"p{p:02d}", "Video": f"videos/p{p:02d}.avi",
         "LABEL": "septic" if p % 2 else "control", "Site": "sublingual left"}
        for p in range(6)
    ]  # fmt: skip
    manifest = tmp_path / "study.xlsx"
    pd.DataFrame(rows).to_excel(manifest, index=False)
    result = ingest(manifest, tmp_path / "store", IngestSettings(folds=0, min_duration_s=0),
                    quiet=True)  # fmt: skip
    assert result["videos"] == 6 and result["failures"] == 0
    videos = FrameStore(tmp_path / "store").videos
    assert not videos["scale_known"].any() and videos["um_per_px"].isna().all()
    assert set(videos["site"]) == {"sublingual left"}
    info = store_info(tmp_path / "store")
    assert info["unknown_scale"]["videos"] == 6
    text = CliRunner().invoke(app, ["store", "info", str(tmp_path / "store")]).output
    assert "unknown scale (no µm/px): 6 videos" in text
    with pytest.raises(PartialFailure) as caught:
        ingest(manifest, tmp_path / "field", IngestSettings(folds=0, min_duration_s=0,
               field_um=150), quiet=True)  # fmt: skip
    reasons = [f["reason"] for f in caught.value.result["failed"]]
    assert len(reasons) == 6 and all("um_per_px" in r and "camera" in r for r in reasons)


def test_thousands_of_missing_files_are_found_before_decoding_and_summarised(tmp_path, monkeypatch):
    from sepsiscope.data import ingest as ingest_module

    manifest, rows = cohort(tmp_path, 6)
    rows += [
        {**rows[i % 6], "video": f"videos/gone{i}.avi"} for i in range(2000)
    ]  # same patients and labels, files that are not there
    write_manifest(manifest, rows)
    writes = []
    original = ingest_module._State.write
    monkeypatch.setattr(ingest_module._State, "write", lambda s: writes.append(1) or original(s))
    decoded = []
    monkeypatch.setattr(ingest_module, "ingest_video",
                        lambda job: decoded.append(job["video"]) or ingest_video(job))  # fmt: skip
    with pytest.raises(PartialFailure) as caught:
        ingest(manifest, tmp_path / "store", SETTINGS, quiet=True)
    message = str(caught.value)
    assert message.startswith("2000 of 2006 video(s) could not be ingested: 2000 file not found")
    assert "gone0.avi, gone1.avi, gone2.avi and 1997 more" in message
    assert len(decoded) == 6  # no missing file reached a decoder
    # the tables are rewritten a few times, not once per video
    assert len(writes) <= 3 + caught.value.result["seconds"] / ingest_module.WRITE_EVERY_S
    assert len(store_info(tmp_path / "store")["failures"]) == 2000
