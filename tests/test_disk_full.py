"""A full disk mid-stage: a clear message (exit 1), the store or folder still valid, and the same
command completes once there is space again."""

from __future__ import annotations

import errno
import json

import pandas as pd
import zarr
from _ingest_media import cohort
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data.ingest import store_info
from sepsiscope.data.store import FrameStore
from sepsiscope.layout import MeasurementLayout

runner = CliRunner()


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "frames.zarr/p02/c/0")


def test_ingest_on_a_full_disk_says_so_and_a_rerun_completes(tmp_path, monkeypatch):
    manifest, _ = cohort(tmp_path, 6)
    store = tmp_path / "store"
    args = ["ingest", str(manifest), "--store", str(store), "--folds", "0", "-q"]
    real, calls = zarr.create_array, []

    class FullAfterTwo:
        """zarr arrays whose third one cannot be written: the disk filled up."""

        def __init__(self, array):
            self.array = array

        def __setitem__(self, key, value):
            if len(calls) >= 3:
                disk_full()
            self.array[key] = value

    def create_array(*args, **kwargs):
        calls.append(1)
        return FullAfterTwo(real(*args, **kwargs))

    monkeypatch.setattr(zarr, "create_array", create_array)
    full = runner.invoke(app, [*args, "--json"])
    assert full.exit_code == 1, full.output
    assert json.loads(full.stdout)["exit_code"] == 1
    assert "the disk is full" in full.output and "run the same command again" in full.output
    assert not list((store / "frames.zarr").glob(".tmp-*"))  # no temporary folder left
    info = store_info(store)  # still a valid store
    assert info["last_ingest"] == "cut off"

    monkeypatch.setattr(zarr, "create_array", real)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(FrameStore(store).videos) == 6 and store_info(store)["last_ingest"] == "finished"


def test_measure_on_a_full_disk_keeps_what_it_finished(tmp_path, monkeypatch):
    from sepsiscope.microcirculation import _measure_cache

    manifest, _ = cohort(tmp_path, 3)
    out = MeasurementLayout(tmp_path / "m")
    args = ["measure", str(manifest), "--out", str(out.root), "-q"]
    real, saved = _measure_cache.write_table, []

    def write_table(path, table, **kwargs):
        if len(saved) >= 4:  # two files per video: the second video's are the last to fit
            disk_full()
        saved.append(path)
        return real(path, table, **kwargs)

    monkeypatch.setattr(_measure_cache, "write_table", write_table)
    full = runner.invoke(app, args)
    assert full.exit_code == 1 and "the disk is full" in full.output
    assert sorted(p.name for p in out.per_video.glob("*.json")) == ["p00.json", "p01.json"]

    monkeypatch.setattr(_measure_cache, "write_table", real)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert list(pd.read_parquet(out.videos)["video_id"]) == ["p00", "p01", "p02"]
