"""The command line's shared parts: the app, common flags, and how results and errors print.

Exit status: 0 success; 1 a stage failed; 2 a bad argument or input; 3 the stage finished but some
inputs (videos) failed, which are listed. ``--json`` prints one JSON object on stdout naming what
was written and the key figures; progress and logs go to stderr. On an error the message goes to
stderr, and stdout holds the result only where the error carries one (``.result``: exit 3, or a
batch in which every video failed, with the failures listed).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sepsiscope import __version__
from sepsiscope._io import is_disk_full, to_json
from sepsiscope.errors import SepsiscopeError

app = typer.Typer(
    help="Sepsis detection research on sublingual dark-field microcirculation videos. "
    "For research only, not for diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # reflows the verbs' docstrings instead of keeping their breaks
)


def _plain_flags() -> None:
    """Show on/off flags in ``--help`` without a type, as flags (``--tiny``, not ``--tiny <bool>``).

    typer 0.29's rich help prints every option's type, flags included, so ``--json <bool>`` read
    as if it took a value; its plain help and older releases leave flags bare. Only the help text
    changes: a flag still takes no value.
    """
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "plain_flags", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        return shown(self, ctx)

    display_type_rich.plain_flags = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_plain_flags()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings (flags override it).")
]


# The options many verbs share, each declared once. A verb passes the help text that says what
# the option means for it (its default in brackets); the flag itself is spelled only here.
def out_option(help: str) -> Any:
    """``--out``: the folder (or file) a verb writes."""
    return typer.Option("--out", help=help)


def store_option(help: str = "Frame store (default: the run's own).") -> Any:
    """``--store``: a frame store written by ``sepsiscope ingest``."""
    return typer.Option("--store", help=help)


def seed_option(help: str = "Random seed [default: 0]") -> Any:
    """``--seed``: the seed of a stage's randomness."""
    return typer.Option("--seed", help=help)


def overwrite_flag(help: str) -> Any:
    """``--overwrite``: start again instead of resuming or refusing."""
    return typer.Option("--overwrite", help=help)


def fps_option(help: str = "Frame rate, frames/s (overrides manifest/container).") -> Any:
    """``--fps``: the frame rate of the input."""
    return typer.Option("--fps", help=help)


def um_per_px_option(help: str = "Pixel size, µm (overrides manifest).") -> Any:
    """``--um-per-px``: the scale of the input, µm per pixel."""
    return typer.Option("--um-per-px", help=help)


def workers_option(help: str = "Parallel videos [default: 1]") -> Any:
    """``--workers``: parallel processes."""
    return typer.Option("--workers", help=help)


def scheduler_option() -> Any:
    """``--scheduler``: run the per-video work on Dask distributed."""
    return typer.Option(
        "--scheduler",
        help="Dask: 'local' (a LocalCluster of --workers processes) or a scheduler address "
        "(tcp://host:8786; its workers must see the files at the same paths).",
    )


RunStoreOption = Annotated[Path | None, store_option()]


def run_stage(fn: Callable[[], dict[str, Any]], *, as_json: bool, summary: Callable[[dict], str]):
    """Call a library function, print its result and turn known errors into an exit status."""
    try:
        result = fn()
    except SepsiscopeError as exc:  # PartialFailure, and any error that carries what was done
        result = getattr(exc, "result", None)
        if result is not None:
            typer.echo(to_json(result) if as_json else summary(result))
        elif as_json:  # a script reading stdout always gets JSON, here the error and its status
            typer.echo(to_json({"error": str(exc), "exit_code": exc.exit_code}))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        message = (
            f"the disk is full (writing {exc.filename or 'a file'}): free some space, then run "
            "the same command again. What was written is whole (every file is written to a "
            "temporary name and renamed), and the stage resumes where it stopped"
        )
        if as_json:
            typer.echo(to_json({"error": message, "exit_code": 1}))
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(to_json(result) if as_json else summary(result))
    return result


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sepsiscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Lightning logs through handlers of its own: without --verbose its INFO lines (devices found,
    # tips about its cloud services) are noise; with it, they should not print twice.
    for name in ("lightning.pytorch", "lightning.fabric"):
        engine_log = logging.getLogger(name)
        engine_log.propagate = False
        if not verbose:
            engine_log.setLevel(logging.WARNING)
