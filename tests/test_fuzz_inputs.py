"""Fuzzed manifests and videos: never a traceback, always a documented outcome (a table or an
InputError, i.e. exit status 2; a VideoError is an InputError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepsiscope.data.manifest import read_manifest
from sepsiscope.data.video import VideoError, iter_frames, probe_video, write_video
from sepsiscope.errors import InputError

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HEADER = b"patient_id,video,label,site,um_per_px,fps,camera\n"


def _read(path: Path) -> None:
    try:
        table = read_manifest(path, require_files=False, require_scale=False)
    except InputError:
        return
    assert isinstance(table, pd.DataFrame) and len(table) > 0
    assert set(table["label"]) <= {"septic", "non-septic"}
    assert (table["um_per_px"].dropna() > 0).all() and (table["fps"].dropna() > 0).all()


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_as_a_manifest(tmp_path, data):
    for suffix in (".csv", ".parquet", ".xlsx"):
        path = tmp_path / f"m{suffix}"
        path.write_bytes(data)
        _read(path)


@FUZZ
@given(st.lists(st.lists(st.text(max_size=12), min_size=7, max_size=7), min_size=1, max_size=6))
def test_random_cells_under_a_real_header(tmp_path, rows):
    path = tmp_path / "m.csv"
    path.write_bytes(HEADER + "\n".join(",".join(r) for r in rows).encode("utf-8", "replace"))
    _read(path)


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    frames = np.random.default_rng(0).integers(0, 255, (8, 48, 64), dtype=np.uint8)
    return {s: write_video(root / f"v{s}", frames, 25).read_bytes() for s in (".avi", ".tif")}


def _open(path: Path) -> None:
    try:
        probe_video(path)
        for _ in iter_frames(path):
            pass
    except VideoError:
        pass


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_as_a_video(tmp_path, data):
    for suffix in (".avi", ".mp4", ".tif"):
        path = tmp_path / f"v{suffix}"
        path.write_bytes(data)
        _open(path)


@FUZZ
@given(st.sampled_from([".avi", ".tif"]), st.data())
def test_mutated_real_videos(tmp_path, real_videos, suffix, data):
    original = bytearray(real_videos[suffix])
    n = data.draw(st.integers(1, 20))
    for _ in range(n):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    path = tmp_path / f"v{suffix}"
    path.write_bytes(bytes(original[:cut]))
    _open(path)
