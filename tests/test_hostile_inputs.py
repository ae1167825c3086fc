"""What a hostile or corrupt input may cost: refused from its header, with a message, by every
verb that reads it (never a traceback, never gigabytes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _ingest_media import cohort, png_claiming
from _predict_fixtures import make_run
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data.video import write_video

runner = CliRunner()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A cohort of six videos, one of them a frame folder whose third frame is a 30000x30000
    decompression bomb, and a trained run."""
    root = tmp_path_factory.mktemp("bomb")
    manifest, rows = cohort(root, 6)
    folder = root / "videos" / "p00_frames"
    write_video(folder, np.full((30, 240, 320), 150, np.uint8), 25)
    png_claiming(folder / "frame_00002.png", 30000, 30000)
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace("videos/p00.avi", "videos/p00_frames")
    header = lines[0] + ",fps"
    manifest.write_text("\n".join([header] + [line + ",25" for line in lines[1:]]) + "\n")
    return {"root": root, "manifest": manifest, "folder": folder, "run": make_run(root / "run")}


LIMIT = "30000x30000 px (900 megapixels) are beyond the limit"


def test_ingest_lists_the_bomb_as_failed_and_stores_the_rest(bomb):
    store = bomb["root"] / "store"
    result = runner.invoke(app, ["ingest", str(bomb["manifest"]), "--store", str(store),
                                 "--folds", "0", "--json", "-q"])  # fmt: skip
    assert result.exit_code == 3, result.output
    out = json.loads(result.stdout)
    assert out["videos"] == 5 and [f["video"] for f in out["failed"]] == [str(bomb["folder"])]
    assert LIMIT in out["failed"][0]["reason"]


def test_measure_and_predict_refuse_it_with_a_message(bomb, tmp_path):
    measured = runner.invoke(app, ["measure", str(bomb["folder"]), "--out", str(tmp_path / "m"),
                                   "--um-per-px", "1", "--fps", "25"])  # fmt: skip
    assert measured.exit_code in (2, 3) and LIMIT in measured.output
    assert "Traceback" not in measured.output
    predicted = runner.invoke(app, ["predict", str(bomb["run"]), str(bomb["folder"]),
                                    "--fps", "25", "--out", str(tmp_path / "p")])  # fmt: skip
    assert predicted.exit_code in (2, 3) and LIMIT in predicted.output
    assert "Traceback" not in predicted.output
