"""One writer at a time for a store, a run folder or a measurement folder.

A stage that writes a folder holds an exclusive ``fcntl.flock`` on ``FOLDER/.sepsiscope.lock``
while it runs. A second process that wants to write the same folder is refused at once, with a
message naming the holder (pid, host, command, since when) that the holder wrote into the file.
The operating system releases the lock when its process ends, however it ends (a kill, a crash,
a machine that sleeps and is shut down), so a stale lock file never blocks the next run.

Readers (evaluate reading a store, report reading a run) take no lock: every file is written to
a temporary name and renamed into place (:mod:`sepsiscope._io`), so a reader sees the old file or
the new one, never half of one.

flock works between processes of one machine and on most local and NFSv4 file systems; a folder
on a network file system without lock support is written without this protection (a warning
says so).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sepsiscope.errors import InputError

log = logging.getLogger(__name__)

LOCK_NAME = ".sepsiscope.lock"

# folders this process holds: a stage called by another stage on the same folder (none today)
# must not lock itself out
_held: dict[Path, int] = {}
_held_guard = threading.Lock()

F = TypeVar("F", bound=Callable[..., Any])


class FolderBusy(InputError):
    """Another process is writing the folder (exit status 2: nothing was changed)."""


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process (no details recorded)"
    return (
        f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"running `{holder.get('command', '?')}` since {holder.get('since', '?')}"
    )


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike, what: str, *, create: bool = True) -> Iterator[Path]:
    """Hold the write lock of ``folder`` for the ``with`` block.

    Raises :class:`FolderBusy` at once when another process holds it. ``what`` names the stage
    for the holder record (e.g. ``"ingest"``). A missing folder is created, or with
    ``create=False`` (stages that only add to an existing folder) left alone and not locked: the
    stage then stops with its own message about what is missing.
    """
    import fcntl

    folder = Path(folder).resolve()
    if not create and not folder.is_dir():
        yield folder
        return
    with _held_guard:
        if folder in _held:
            _held[folder] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield folder
        finally:
            with _held_guard:
                _held[folder] -= 1
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"{folder} is being written by {_holder_text(path)}; wait for it to finish "
                f"(or stop it) before running {what} on this folder"
            ) from None
        except OSError as exc:  # a file system without flock support
            log.warning("%s: cannot lock (%s); no protection against a second writer", path, exc)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or what,
            "stage": what,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        with _held_guard:
            _held[folder] = 1
        try:
            yield folder
        finally:
            with _held_guard:
                _held.pop(folder, None)
            if created and folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                # a stage refused before writing anything leaves no empty folder behind
                path.unlink(missing_ok=True)
                folder.rmdir()
    finally:
        os.close(fd)  # releases the lock


def is_locked(folder: str | os.PathLike) -> bool:
    """Whether a process holds the write lock of ``folder`` now (this one included)."""
    import fcntl

    folder = Path(folder).resolve()
    path = folder / LOCK_NAME
    if folder in _held:
        return True
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def writes(parameter: str, what: str | None = None, *, create: bool = True) -> Callable[[F], F]:
    """Decorate a stage function so that it holds the write lock of the folder given as its
    argument ``parameter`` while it runs (``create``: see :func:`writer_lock`)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            folder = signature.bind(*args, **kwargs).arguments[parameter]
            with writer_lock(folder, what or fn.__name__, create=create):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
