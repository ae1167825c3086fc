"""One writer at a time: a second writer is refused at once, naming the holder; a killed holder
leaves no lock behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
from _ingest_media import cohort
from typer.testing import CliRunner

from sepsiscope._lock import LOCK_NAME, FolderBusy, writer_lock
from sepsiscope.cli import app
from sepsiscope.layout import StoreLayout

HOLD = textwrap.dedent(
    """
    import sys, time
    from sepsiscope._lock import writer_lock
    with writer_lock(sys.argv[1], "test"):
        print("holding", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of tmp_path/"folder"; killed with SIGKILL after."""
    folder = tmp_path / "folder"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "holding"
    yield folder, child
    child.kill()
    child.wait()


def test_a_second_writer_is_refused_naming_the_holder(holder):
    folder, child = holder
    busy = rf"is being written by pid {child.pid} on .*running `.*` since"
    with pytest.raises(FolderBusy, match=busy), writer_lock(folder, "ingest"):
        pass
    assert (folder / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_process_does_not_block(holder):
    folder, child = holder
    child.send_signal(signal.SIGKILL)
    child.wait()
    with writer_lock(folder, "ingest") as held:  # the OS released it with the process
        assert held == folder.resolve()


def test_the_same_process_may_nest_on_one_folder(tmp_path):
    with writer_lock(tmp_path / "f", "crossval"), writer_lock(tmp_path / "f", "evaluate"):
        pass
    with writer_lock(tmp_path / "f", "again"):  # and the lock was let go
        pass


def test_a_stage_missing_its_folder_does_not_create_it(tmp_path):
    with writer_lock(tmp_path / "absent", "evaluate", create=False):
        pass
    assert not (tmp_path / "absent").exists()


def test_cli_ingest_into_a_busy_store_is_refused_and_writes_nothing(tmp_path, holder):
    store, child = holder
    manifest, _ = cohort(tmp_path / "cohort", 6)
    result = CliRunner().invoke(app, ["ingest", str(manifest), "--store", str(store), "-q"])
    assert result.exit_code == 2, result.output
    assert f"pid {child.pid}" in result.output and "wait for it to finish" in result.output
    assert not StoreLayout(store).meta.exists()
