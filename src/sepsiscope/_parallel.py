"""Per-video work, in parallel: in this process, in a local process pool, or on Dask distributed.

``ingest`` and ``measure`` hand each video to :func:`each_finished`, which yields the results as
they come, in any order; the caller records each one at once, so the outputs and the resume
behaviour are the same whichever way the work ran.

``scheduler``:

- ``None``: ``workers`` local processes (one: this process, no pool);
- ``"local"``: a Dask ``LocalCluster`` of ``workers`` single-threaded worker processes;
- an address (``tcp://host:8786``): a running Dask scheduler. Its workers must see the videos
  and the output folder at the same paths as this machine (a shared file system), and have
  sepsiscope installed at the same version.

Dask (``pip install "sepsiscope[distributed]"``) is imported only when a scheduler is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, TypeVar

from sepsiscope.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

# Waiting longer than this for a remote scheduler is a wrong address, not a slow network.
CONNECT_TIMEOUT_S = 30


def each_finished(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    spawn: bool = False,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` for every item, as each finishes.

    ``fn`` must be a module-level function (it is pickled) that returns its failures rather than
    raising them: an exception from ``fn`` stops the whole run. ``spawn`` starts local pool
    processes fresh rather than forked (no inherited locks or threads).
    """
    items = list(items)
    if scheduler:
        yield from _on_dask(fn, items, workers=workers, scheduler=scheduler)
    elif workers <= 1 or len(items) <= 1:
        for item in items:
            yield item, fn(item)
    else:
        context = get_context("spawn") if spawn else None
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=context) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                yield futures[future], future.result()


def _on_dask(
    fn: Callable[[T], R], items: list[T], *, workers: int, scheduler: str
) -> Iterator[tuple[T, R]]:
    if not items:
        return
    with _dask_client(scheduler, workers=min(workers, len(items))) as client:
        from distributed import as_completed as dask_completed

        # pure=False: the same item twice is two tasks, never a cached result
        futures = client.map(fn, items, pure=False)
        item_of = {future.key: item for future, item in zip(futures, items, strict=True)}
        finished = dask_completed(futures)
        del futures  # from here a future is held only until its result is read
        for future in finished:
            result = future.result()
            future.release()
            yield item_of.pop(future.key), result


@contextmanager
def _dask_client(scheduler: str, *, workers: int) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError(
            f'--scheduler {scheduler} needs Dask distributed: pip install "sepsiscope[distributed]"'
        ) from None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=max(workers, 1), threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.ERROR,
        )  # fmt: skip
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"could not reach the Dask scheduler {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
