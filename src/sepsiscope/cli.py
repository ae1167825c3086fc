"""The ``sepsiscope`` command: one verb per pipeline stage, each a thin call into the library.

Exit status: 0 success; 1 a stage failed; 2 a bad argument or input; 3 the stage finished but some
inputs (videos) failed, which are listed. ``--json`` prints one JSON object on stdout naming what
was written and the key figures; progress and logs go to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sepsiscope import __version__
from sepsiscope._io import to_json
from sepsiscope.errors import PartialFailure, SepsiscopeError

app = typer.Typer(
    help="Sepsis detection research on sublingual dark-field microcirculation videos. "
    "For research only, not for diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings (flags override it).")
]


def run_stage(fn: Callable[[], dict[str, Any]], *, as_json: bool, summary: Callable[[dict], str]):
    """Call a library function, print its result and turn known errors into an exit status."""
    try:
        result = fn()
    except PartialFailure as exc:
        result = getattr(exc, "result", None)
        if result is not None:
            typer.echo(to_json(result) if as_json else summary(result))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except SepsiscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
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


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder (sepsiscope train --out RUN).")],
    store: Annotated[
        Path | None, typer.Option("--store", help="Frame store (default: found from the run).")
    ] = None,
    measurements: Annotated[
        Path | None,
        typer.Option("--measurements", help="sepsiscope measure output (RUN/measurements)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default RUN/report.html).")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write one self-contained HTML report of a run (images embedded, no network)."""
    from sepsiscope.report import ReportSettings, report

    def go() -> dict[str, Any]:
        settings = ReportSettings.build(
            config,
            store=str(store) if store else None,
            measurements=str(measurements) if measurements else None,
            out=str(out) if out else None,
        )
        return report(run, settings)

    run_stage(go, as_json=as_json, summary=lambda r: f"report: {r['report']}")


def main() -> None:
    app()
