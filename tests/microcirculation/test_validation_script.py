"""benchmarks/validate_measure.py runs on a tiny cohort and reports agreement as the field does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _benchmarks import load_benchmark

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "validate_measure.py"


@pytest.mark.slow
def test_validation_prints_agreement_and_worst_videos(tmp_path):
    png = tmp_path / "ba.png"
    args = ["--patients", "3", "--videos-per-patient", "1", "--seconds", "1.5", "--workers", "1"]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--work", str(tmp_path / "w"), "--png", str(png)],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert "Validation on 3 simulated videos" in out
    agreement = out.split("Agreement with truth")[1].split("Ten worst")[0]
    rows = [line for line in agreement.splitlines() if line.startswith("| all |")]
    metrics = {row.split("|")[2].strip() for row in rows}
    assert {"tvd_mm_per_mm2", "pvd_mm_per_mm2", "ppv_percent", "mfi"} <= metrics
    header = next(line for line in agreement.splitlines() if line.startswith("| camera"))
    assert all(name in header for name in ("bias", "loa", "bias_%", "icc", "ccc"))
    assert out.count("Ten worst videos by") == 5 and "cause" in out
    assert png.stat().st_size > 10_000


def test_blur_is_named_where_it_can_account_for_a_ppv_over_read():
    cause = load_benchmark("validate_measure").likely_cause
    row = pd.Series({"blurred_length_percent": 12.0, "tvd_mm_per_mm2_true": 10.0})
    assert cause(row, 20.0) == "none flagged"  # 12 % of the length: no blur for any metric
    assert cause(row, 20.0, ppv_error=20.0).startswith("fast-flow blur read as flow (12 %")
    assert cause(row, 20.0, ppv_error=30.0) == "none flagged"  # blur explains under half of it
    assert cause(row, 20.0, ppv_error=-20.0) == "none flagged"  # an under-read is no blur
    assert "fast-flow blur" in cause(row.replace(12.0, 35.0), 20.0)


def test_the_interlaced_benchmark_weaves_two_frames_into_one(tmp_path):
    from sepsiscope.data.video import read_frames, write_video

    weave = load_benchmark("interlaced_fields").weave
    source = tmp_path / "fifty"
    (source / "videos").mkdir(parents=True)
    frames = np.stack([np.full((16, 24), 20 + 30 * t, np.uint8) for t in range(6)])
    write_video(source / "videos" / "v.avi", frames, 50.0, quality=95)
    pd.DataFrame([{"patient_id": "P1", "video": "videos/v.avi", "fps": 50.0}]).to_csv(
        source / "manifest.csv", index=False
    )
    weave(source, tmp_path / "woven", interlaced=True)
    woven = read_frames(tmp_path / "woven" / "videos" / "v.avi").astype(int)
    assert len(woven) == 3 and pd.read_csv(tmp_path / "woven" / "manifest.csv").fps[0] == 25.0
    assert abs(woven[1, 4, 5] - 80) <= 3 and abs(woven[1, 5, 5] - 110) <= 3  # frames 2 and 3
