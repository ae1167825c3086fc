"""Killed at any moment, resumed without loss: each long stage is started on a tiny cohort, killed
with SIGKILL at seeded random moments, run again with the same command, and its result compared
with an uninterrupted run's (docs/promises.md says what each stage resumes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from sepsiscope.data.store import FrameStore
from sepsiscope.layout import CohortLayout, MeasurementLayout, RunLayout
from sepsiscope.simulate import SimulateSettings, simulate_cohort

pytestmark = pytest.mark.slow
SEED = 20261204
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count in every run: same floats


def cli(*args: str) -> list[str]:
    quiet = [] if args[0] == "report" else ["--quiet"]  # report shows no progress anyway
    return [sys.executable, "-m", "sepsiscope", *args, *quiet]


def run(args: list[str]) -> float:
    """Run a command to its end; its wall time, s."""
    start = time.monotonic()
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - start


def kill_then_rerun(args: list[str], rerun: list[str], delay_s: float) -> None:
    """Start ``args``, SIGKILL it after ``delay_s`` (if still running), then run ``rerun``."""
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run(rerun)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six tiny simulated videos, ingested into a store with 3 folds."""
    root = tmp_path_factory.mktemp("killed")
    plan = SimulateSettings(patients=6, videos_per_patient=1, seconds=1.5, camera="microscan",
                            width=96, height=96, seed=1)  # fmt: skip
    simulate_cohort(root / "cohort", plan, quiet=True)
    manifest = str(CohortLayout(root / "cohort").manifest)
    ingest = ["ingest", manifest, "--size", "48", "--rate", "10", "--folds", "3"]
    config = root / "c.yaml"
    config.write_text("min_duration_s: 0.5\noptimal_duration_s: 1.5\n")
    ingest += ["--config", str(config)]
    wall = run(cli(*ingest, "--store", str(root / "store")))
    return {"root": root, "manifest": manifest, "ingest": ingest, "ingest_s": wall,
            "rng": random.Random(SEED)}  # fmt: skip


def delays(cohort, wall_s: float, n: int) -> list[float]:
    """``n`` seeded moments within the first 90 % of a run that takes ``wall_s``."""
    return [cohort["rng"].uniform(0.2, 0.9) * wall_s for _ in range(n)]


def test_ingest(cohort):
    root = cohort["root"]
    for i, delay in enumerate(delays(cohort, cohort["ingest_s"], 2)):
        args = cli(*cohort["ingest"], "--store", str(root / f"store{i}"))
        kill_then_rerun(args, args, delay)
        clean, resumed = FrameStore(root / "store"), FrameStore(root / f"store{i}")
        columns = [c for c in clean.videos.columns if c != "path"]
        pd.testing.assert_frame_equal(resumed.videos[columns], clean.videos[columns])
        pd.testing.assert_frame_equal(resumed.frames, clean.frames)
        np.testing.assert_array_equal(resumed.read_table(resumed.frames),
                                      clean.read_table(clean.frames))  # fmt: skip


def test_train_continues_from_its_last_checkpoint(cohort):
    root = cohort["root"]
    train = ["train", "--store", str(root / "store"), "--epochs", "2"]
    wall = run(cli(*train, "--out", str(root / "run")))
    reference = load_file(str(RunLayout(root / "run").model))
    for i, delay in enumerate(delays(cohort, wall, 1)):
        out = ["--out", str(root / f"run{i}")]
        kill_then_rerun(cli(*train, *out), cli(*train, *out, "--resume"), delay)
        weights = load_file(str(RunLayout(root / f"run{i}").model))
        for name, value in reference.items():
            np.testing.assert_allclose(weights[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_autoencode_continues_from_its_last_checkpoint(cohort):
    root = cohort["root"]
    auto = ["autoencode", "--store", str(root / "store"), "--epochs", "2", "--bottleneck", "1152"]
    wall = run(cli(*auto, "--out", str(root / "auto")))
    reference = np.load(RunLayout(root / "auto").autoencoder_model(1152).features)
    for i, delay in enumerate(delays(cohort, wall, 1)):
        out = ["--out", str(root / f"auto{i}")]
        kill_then_rerun(cli(*auto, *out), cli(*auto, *out, "--resume"), delay)
        features = np.load(RunLayout(root / f"auto{i}").autoencoder_model(1152).features)
        np.testing.assert_allclose(features, reference, rtol=1e-4, atol=1e-5)


def test_crossval_keeps_finished_folds(cohort):
    root = cohort["root"]
    cv = ["crossval", "--store", str(root / "store"), "--epochs", "1", "--bootstrap", "20"]
    wall = run(cli(*cv, "--out", str(root / "cv")))
    reference = pd.read_parquet(RunLayout(root / "cv").oof_patients)
    for i, delay in enumerate(delays(cohort, wall, 1)):
        args = cli(*cv, "--out", str(root / f"cv{i}"))
        kill_then_rerun(args, args, delay)
        resumed = pd.read_parquet(RunLayout(root / f"cv{i}").oof_patients)
        pd.testing.assert_frame_equal(resumed, reference, rtol=1e-4)


def test_measure_keeps_finished_videos(cohort):
    root = cohort["root"]
    measure = ["measure", cohort["manifest"]]
    wall = run(cli(*measure, "--out", str(root / "m")))
    reference = pd.read_parquet(MeasurementLayout(root / "m").videos).drop(columns="seconds")
    for i, delay in enumerate(delays(cohort, wall, 2)):
        args = cli(*measure, "--out", str(root / f"m{i}"))
        kill_then_rerun(args, args, delay)
        resumed = pd.read_parquet(MeasurementLayout(root / f"m{i}").videos)
        pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), reference)


def test_report_is_whole_after_a_kill(cohort):
    root = cohort["root"]
    if not RunLayout(root / "run").model.exists():
        run(cli("train", "--store", str(root / "store"), "--epochs", "1", "--out",
                str(root / "run")))  # fmt: skip
    wall = run(cli("report", str(root / "run")))
    size = RunLayout(root / "run").report.stat().st_size
    for delay in delays(cohort, wall, 1):
        args = cli("report", str(root / "run"))
        kill_then_rerun(args, args, delay)
        text = RunLayout(root / "run").report.read_text(encoding="utf-8")
        assert text.rstrip().endswith("</html>") and abs(len(text) - size) < 0.05 * size
