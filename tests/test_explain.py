"""Grad-CAM: properties of the maps, sanity checks, and the explain stage and verb."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _predict_fixtures import SIZE, make_run, tiny_model, vessel_frames, write_test_video
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.explain import ExplainSettings, GradCAM, explain, gradcam_sanity, overlay_rgb
from sepsiscope.frames import make_samples
from sepsiscope.video import write_video


@pytest.fixture(scope="module")
def samples():
    frames = vessel_frames(8)
    return np.concatenate([make_samples(np.stack(frames[i : i + 3]), size=SIZE) for i in (0, 3)])


def test_gradcam_maps_are_input_sized_non_negative_and_scaled(samples):
    model = tiny_model()
    cams, probs = GradCAM(model, input_mode="time")(samples)
    assert cams.shape == (len(samples), SIZE, SIZE) and cams.dtype == np.float32
    assert (cams >= 0).all() and (cams <= 1).all()
    assert np.allclose(cams.reshape(len(cams), -1).max(1), 1.0) or (cams == 0).all()
    assert ((probs > 0) & (probs < 1)).all()
    septic, _ = GradCAM(model, input_mode="time")(samples, target="septic")
    other, _ = GradCAM(model, input_mode="time")(samples, target="non-septic")
    assert not np.allclose(septic, other)  # opposite classes highlight different regions
    # hooks are removed: the model is untouched and Grad-CAM gives the same maps twice
    assert not model.layer2._forward_hooks
    again, _ = GradCAM(model, input_mode="time")(samples)
    np.testing.assert_allclose(again, cams, atol=1e-5)


def test_gradcam_sanity_checks(samples):
    checks = gradcam_sanity(tiny_model(), samples, input_mode="time")
    assert checks["non_negative"] and checks["in_unit_range"] and checks["input_sized"]
    assert checks["changes_with_input"]
    assert checks["randomisation_correlation"] < 0.95


def test_overlay_is_rgb_of_the_input_size():
    grey = np.full((SIZE, SIZE), 100, np.uint8)
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[:8, :8] = 1.0
    rgb = overlay_rgb(grey, cam)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[-1, -1])  # the hot corner differs from the rest


def test_explain_video_and_cli(tmp_path):
    run = make_run(tmp_path / "run")
    video = write_test_video(tmp_path / "v.avi")
    result = explain(run, ExplainSettings(n=2, out=tmp_path / "x"), video=video, quiet=True)
    assert result["n"] == 2 and all(p.endswith(".png") for p in result["pngs"])
    table = pd.read_parquet(result["table"])
    assert table["probability"].iloc[0] >= table["probability"].iloc[1]
    assert result["sanity"]["non_negative"]
    cli = CliRunner().invoke(
        app, ["explain", str(run), str(video), "--index", "1", "--out", str(tmp_path / "y"),
              "--json"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout)
    assert payload["n"] == 1 and {"pngs", "table", "sanity"} <= payload.keys()
    bad = CliRunner().invoke(app, ["explain", str(run), str(video), "--index", "999"])
    assert bad.exit_code == 2 and "out of range" in bad.output
    frames = write_video(tmp_path / "frames", vessel_frames(12), 25)  # PNGs keep no rate
    no_rate = CliRunner().invoke(app, ["explain", str(run), str(frames), "--out", str(tmp_path)])
    assert no_rate.exit_code == 2 and "no frame rate in the file; give --fps" in no_rate.output


def test_explain_store_split_cli(tmp_path):
    from _train_store import write_tiny_store

    run = make_run(tmp_path / "run")
    splits = {"train": ["non0", "sep0"], "val": [], "test": ["non1", "sep1"], "folds": []}
    write_tiny_store(tmp_path / "store", per_class=2, frames=3, size=SIZE, splits=splits)
    args = ["explain", str(run), "--store", str(tmp_path / "store"), "--split", "test",
            "--n", "3", "--target", "septic", "--json"]  # fmt: skip
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout)
    table = pd.read_parquet(payload["table"])
    assert payload["n"] == 3 and set(table["video_id"]) <= {"non1_v0", "sep1_v0"}
    assert all(Path(p).exists() for p in payload["pngs"])
    assert payload["out"] == str(run / "explanations")
    # One video's explanations get their own folder: the split's table and overlays stay intact.
    video = write_test_video(tmp_path / "clip.avi")
    one = explain(run, ExplainSettings(n=2), video=video, quiet=True)
    assert one["out"] == str(run / "explanations" / "videos" / "clip")
    assert all(Path(p).parent == run / "explanations" / "videos" / "clip" for p in one["pngs"])
    assert pd.read_parquet(payload["table"]).equals(table)
    assert sorted(p.name for p in (run / "explanations").glob("*.png")) == sorted(
        Path(p).name for p in payload["pngs"]
    )
