"""The demo end to end at a tiny size: every stage runs and leaves its artifact, a rerun resumes,
and the report gathers them. The only test of the whole pipeline in one go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.demo import STAGES, DemoSettings, run_demo
from sepsiscope.errors import InputError
from sepsiscope.layout import DemoLayout

PIPELINE = ("simulate", "ingest", "train", "evaluate", "embed", "autoencode", "cluster",
            "measure", "interpret", "report")  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    return out, run_demo(out, DemoSettings.tiny(), quiet=True)


def test_every_stage_ran_and_left_its_artifact(demo):
    out, result = demo
    names = [stage.name for stage in STAGES]
    assert [n for n in names if n in PIPELINE] == list(PIPELINE), names
    layout = DemoLayout(out)
    for stage in STAGES:
        assert result["stages"][stage.name]["status"] == "done"
        assert stage.artifact(layout).exists(), stage.name
    assert result["report"] == str(layout.run.report)
    state = json.loads(layout.state.read_text())
    assert set(state["stages"]) == set(names)
    assert all(v["seconds"] >= 0 for v in state["stages"].values())


def test_report_has_every_section_filled(demo):
    _, result = demo
    html = Path(result["report"]).read_text(encoding="utf-8")
    state = json.loads(DemoLayout(result["out_dir"]).state.read_text())
    report = state["stages"]["report"]
    sections = report["result"]["sections"]
    assert sections.pop("crossval") == "not run"  # the demo evaluates one split; no k-fold
    assert all(status == "ok" for status in sections.values()), sections
    assert "Synthetic data." in html and "not a medical device" in html
    assert 'src="data:image/png;base64,' in html


def test_rerun_resumes_and_cli_json_parses(demo):
    out, first = demo
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--tiny", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["report"] == first["report"]
    statuses = {name: v["status"] for name, v in payload["stages"].items()}
    assert all(s == "skipped" for s in statuses.values()), statuses


def test_refuses_other_settings_and_foreign_folders(demo, tmp_path):
    out, _ = demo
    with pytest.raises(InputError, match="other settings"):
        run_demo(out, DemoSettings.tiny(epochs=2), quiet=True)
    (tmp_path / "mine.txt").write_text("not a demo")
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--tiny"])
    assert res.exit_code == 2
    assert "holds no demo" in res.output
