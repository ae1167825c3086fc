"""Checkpoints run no code from the file, and a copied run folder resumes from its own files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sepsiscope._checkpoints import load_checkpoint, rebase_checkpoint
from sepsiscope.cli import app
from sepsiscope.errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "run_v0_1"
runner = CliRunner()


class _Payload:
    """Unpickling this would create ``marker`` (what an attacker's checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {}, "epoch": 0, "hook": _Payload(marker)}, path)


@pytest.fixture
def old(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "old"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    write_evil_checkpoint(evil, marker)
    with pytest.raises(InputError, match="refused.*could run code.*posix.system"):
        load_checkpoint(evil)
    assert not marker.exists()
    (tmp_path / "garbage.ckpt").write_bytes(b"\x80garbage")
    with pytest.raises(InputError, match="corrupted checkpoint"):
        load_checkpoint(tmp_path / "garbage.ckpt")


def test_rebase_moves_every_stored_path_into_the_checkpoints_folder(old):
    last = old / "run" / "classifier" / "checkpoints" / "last.ckpt"
    assert rebase_checkpoint(last) is True
    here = str(last.parent.resolve())
    for state in load_checkpoint(last)["callbacks"].values():
        if "dirpath" in state:
            assert state["dirpath"] == here
            paths = [state["best_model_path"], *state.get("best_k_models", {})]
            assert all(p.startswith(here) or p == "" for p in paths), paths
    assert rebase_checkpoint(last) is False  # already at home: left alone


@pytest.mark.parametrize(
    ("verb", "checkpoint"),
    [
        ("train", "run/classifier/checkpoints/last.ckpt"),
        ("train", "run/classifier/checkpoints/best.ckpt"),
        ("autoencode", "run/autoencoder/b1152/checkpoints/last.ckpt"),
    ],
)
def test_every_verb_that_reads_a_checkpoint_refuses_one_that_would_run_code(
    old, tmp_path, verb, checkpoint
):
    marker = tmp_path / "pwned"
    if checkpoint.endswith("best.ckpt"):  # a clean last.ckpt to resume from, an evil best.ckpt
        good = old / "run/classifier/checkpoints/last.ckpt"
        shutil.copy(good, good.with_name("best.ckpt"))
        rebase_checkpoint(good)
    write_evil_checkpoint(old / checkpoint, marker)
    args = [verb, "--store", str(old / "store"), "--out", str(old / "run"), "--resume"]
    args += ["--epochs", "2"]
    result = runner.invoke(app, args)
    assert not marker.exists()
    assert result.exit_code == 2, result.output
    assert "refused" in result.output and "could run code" in result.output
