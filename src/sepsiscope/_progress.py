"""Progress bars on stderr (stdout stays free for ``--json``), silenced by ``quiet``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
_console = Console(stderr=True)


def track(
    items: Iterable[T], *, description: str, total: int | None = None, quiet: bool = False
) -> Iterator[T]:
    """Iterate ``items`` with a progress bar on stderr unless ``quiet``."""
    if quiet:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def lightning_progress(quiet: bool) -> list[Any]:
    """Lightning callbacks for a progress bar on stderr (none when ``quiet``).

    Lightning's own bar writes to stdout, which would break ``--json``.
    """
    if quiet:
        return []
    from sepsiscope._epoch_bar import EpochBar

    return [EpochBar(console_kwargs={"stderr": True})]
