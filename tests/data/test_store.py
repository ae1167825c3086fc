"""The frame store's reading side and its atomic array writes."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sepsiscope._io import write_json, write_table
from sepsiscope.data.store import FrameStore, write_sample_array
from sepsiscope.errors import InputError
from sepsiscope.layout import STORE_FORMAT_VERSION, StoreLayout


def _tiny_store(root, size=16):
    layout = StoreLayout(root)
    rows = []
    for v, (patient, y) in enumerate([("p1", 1), ("p2", 0), ("p3", 1)]):
        samples = np.full((4, 3, size, size), 10 * v, np.uint8)
        samples[:, :, 0, 0] = np.arange(4)[:, None]  # row index, to check ordering
        write_sample_array(layout, f"v{v}", samples)
        for r in range(4):
            rows.append(dict(video_id=f"v{v}", row=r, patient_id=patient, y=y, usable=r != 3))
    write_table(layout.frames, pd.DataFrame(rows))
    write_table(
        layout.videos,
        pd.DataFrame({"video_id": ["v0", "v1", "v2"], "patient_id": ["p1", "p2", "p3"]}),
    )
    write_json(layout.splits, {"train": ["p1", "p2"], "val": ["p3"], "test": []})
    write_json(layout.meta, {"format_version": STORE_FORMAT_VERSION, "settings": {"size": size}})
    return layout


def test_samples_split_and_quality_filter(tmp_path):
    store = FrameStore(_tiny_store(tmp_path).root)
    train = store.samples("train")
    assert set(train.patient_id) == {"p1", "p2"} and len(train) == 6  # row 3 is unusable
    assert len(store.samples("train", usable_only=False)) == 8
    assert set(store.samples("val").split) == {"val"}
    with pytest.raises(InputError, match="unknown split"):
        store.samples("validation")


def test_read_table_keeps_row_order_across_videos(tmp_path):
    store = FrameStore(_tiny_store(tmp_path).root)
    table = store.frames.iloc[[9, 0, 5, 2]].reset_index(drop=True)
    x = store.read_table(table)
    assert x.shape == (4, 3, 16, 16) and x.dtype == np.uint8
    assert list(x[:, 0, 0, 0]) == [1, 0, 1, 2]  # row index written into pixel (0, 0)
    assert list(x[:, 0, 5, 5]) == [20, 0, 10, 0]  # video brightness


def test_rewriting_an_array_replaces_it_and_leaves_no_temporaries(tmp_path):
    layout = StoreLayout(tmp_path)
    write_sample_array(layout, "v", np.zeros((5, 3, 8, 8), np.uint8))
    write_sample_array(layout, "v", np.ones((2, 3, 8, 8), np.uint8))
    store_files = [p.name for p in layout.arrays.iterdir()]
    assert store_files == ["v"]
    with pytest.raises(ValueError, match="uint8"):
        write_sample_array(layout, "w", np.zeros((2, 3, 8, 8), np.float32))


def test_missing_or_incompatible_store_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="run `sepsiscope ingest` first"):
        FrameStore(tmp_path / "nowhere")
    layout = _tiny_store(tmp_path)
    layout.meta.write_text(json.dumps({"format_version": 999, "settings": {"size": 16}}))
    with pytest.raises(InputError, match="format 999 is not supported"):
        FrameStore(layout.root)


@given(st.text(max_size=30))
def test_safe_name_is_a_plain_file_name(name):
    from sepsiscope.layout import safe_name

    safe = safe_name(name)
    assert safe and set(safe) <= set(string.ascii_letters + string.digits + "._-")
    assert safe not in (".", "..") and not safe.startswith(".")
    assert safe_name(safe) == safe  # already safe names are kept as they are
