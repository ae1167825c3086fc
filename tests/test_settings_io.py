"""Settings objects, provenance and atomic writes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepsiscope._io import atomic_path, read_json, to_json, write_json
from sepsiscope.errors import InputError
from sepsiscope.settings import StageSettings


class DemoSettings(StageSettings):
    epochs: int = 3
    lr: float = 1e-3


def test_build_layers_defaults_yaml_and_flags(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text("epochs: 7\nlr: 0.5\n")
    s = DemoSettings.build(config, lr=0.1, epochs=None)
    assert (s.epochs, s.lr) == (7, 0.1)
    with pytest.raises(InputError, match="epochs"):
        DemoSettings.build(epochs="many")
    config.write_text("epoch: 7\n")  # a typo is an error, not silently ignored
    with pytest.raises(InputError, match="epoch"):
        DemoSettings.build(config)


def test_save_records_versions_and_loads_back(tmp_path):
    path = DemoSettings(epochs=2).save(tmp_path / "settings.json")
    saved = read_json(path)
    assert saved["settings"] == {"epochs": 2, "lr": 1e-3}
    assert "torch" in saved["versions"] and saved["created_utc"]
    assert DemoSettings.load(path) == DemoSettings(epochs=2)


def test_json_handles_numpy_and_nan(tmp_path):
    text = to_json({"a": np.float32(1.5), "b": np.arange(3), "c": math.nan, "d": [np.inf]})
    assert read_json(write_json(tmp_path / "x.json", {"t": text}))["t"] == text
    assert '"c": null' in text and '"b": [\n    0,' in text


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
