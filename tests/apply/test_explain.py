"""The explain stage and verb (the maps themselves: models/test_gradcam.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from _predict_fixtures import SIZE, make_run, vessel_frames, write_test_video
from typer.testing import CliRunner

from sepsiscope.apply.explain import ExplainSettings, explain
from sepsiscope.cli import app
from sepsiscope.data.video import write_video


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
