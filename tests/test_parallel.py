"""Per-video work on Dask distributed gives the same outputs and resume as the local pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepsiscope import _parallel
from sepsiscope._parallel import each_finished
from sepsiscope.data.ingest import IngestSettings, ingest
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.microcirculation.measure import MeasureSettings, measure
from tests._ingest_media import cohort

pytest.importorskip("distributed")


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize(
    ("workers", "scheduler"), [(1, None), (2, None), (2, "local")], ids=["here", "pool", "dask"]
)
def test_every_item_once_whichever_way(workers: int, scheduler: str | None) -> None:
    results = list(each_finished(_square, range(7), workers=workers, scheduler=scheduler))
    assert sorted(results) == [(i, i * i) for i in range(7)]


def test_unreachable_scheduler_is_a_clear_input_error(monkeypatch) -> None:
    monkeypatch.setattr(_parallel, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match="could not reach the Dask scheduler tcp://127.0.0.1:9"):
        list(each_finished(_square, [1, 2], scheduler="tcp://127.0.0.1:9"))


@pytest.mark.slow
def test_ingest_and_measure_on_a_local_cluster_equal_the_serial_run(tmp_path: Path) -> None:
    manifest, _ = cohort(tmp_path / "cohort", 4, n_frames=30)
    base = IngestSettings(size=32, folds=0, val=0, test=0)
    serial = ingest(manifest, tmp_path / "serial", base, quiet=True)
    dask_settings = base.model_copy(update={"workers": 2, "scheduler": "local"})
    on_dask = ingest(manifest, tmp_path / "dask", dask_settings, quiet=True)
    assert on_dask["samples"] == serial["samples"] > 0
    a, b = FrameStore(tmp_path / "serial"), FrameStore(tmp_path / "dask")
    pd.testing.assert_frame_equal(a.frames, b.frames)
    for video_id in a.videos["video_id"]:
        np.testing.assert_array_equal(a.array(video_id)[:], b.array(video_id)[:])

    quick = {"kymographs": 0, "overlays": False}
    serial_m = measure(manifest, tmp_path / "m_serial", MeasureSettings(**quick), quiet=True)
    settings = MeasureSettings(**quick, workers=2, scheduler="local")
    dask_m = measure(manifest, tmp_path / "m_dask", settings, quiet=True)
    assert dask_m["n_measured"] == serial_m["n_measured"] == 4
    columns = ["video_id", "tvd_mm_per_mm2", "ppv_percent", "mfi", "n_segments"]
    left = pd.read_csv(tmp_path / "m_serial" / "videos.csv")[columns]
    right = pd.read_csv(tmp_path / "m_dask" / "videos.csv")[columns]
    pd.testing.assert_frame_equal(left, right)

    # resume: a rerun on the cluster finds every video done and measures none again
    per_video = sorted((tmp_path / "m_dask" / "per_video").glob("*.json"))
    assert len(per_video) == 4
    before = {p: p.stat().st_mtime_ns for p in per_video}
    again = measure(manifest, tmp_path / "m_dask", settings, quiet=True)
    assert again["n_measured"] == 4
    assert {p: p.stat().st_mtime_ns for p in per_video} == before
