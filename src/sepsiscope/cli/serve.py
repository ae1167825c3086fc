"""The verb of the web app: serve."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from sepsiscope.cli._common import app, workers_option

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_cmd(
    run: Annotated[
        Path | None, typer.Argument(help="A trained run: the network beside the metrics.")
    ] = None,
    data: Annotated[
        Path, typer.Option("--data", help="Project folder (videos, results, queue).")
    ] = Path("sepsiscope-data"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Required on every request (any --host but 127.0.0.1 "
            "gets a generated one when none is given).",
        ),
    ] = None,
    workers: Annotated[int, workers_option("Videos processed at a time, one process each")] = 1,
    live: Annotated[
        str | None,
        typer.Option(
            "--live",
            help="A camera for the live view: index (0), device, stream URL, "
            "or a video file replayed as a camera (needs RUN).",
        ),
    ] = None,
) -> None:
    """A local web app: add videos, follow their progress, review and correct the vessels,
    read the metrics beside the network's probability, export (research use only)."""
    import uvicorn

    from sepsiscope.app.server import create_app
    from sepsiscope.errors import InputError

    if run is not None and not (run / "classifier").is_dir():
        typer.echo(f"error: {run} is not a trained run (no classifier/ in it)", err=True)
        raise typer.Exit(2)
    if workers < 0:
        typer.echo("error: --workers must be 0 or more", err=True)
        raise typer.Exit(2)
    if live is not None and run is None:
        typer.echo("error: --live needs a trained RUN (the network draws on the picture)", err=True)
        raise typer.Exit(2)
    if host not in LOCAL_HOSTS and token is None:
        token = secrets.token_urlsafe(24)
    from sepsiscope._lock import is_locked

    if is_locked(data):
        typer.echo(f"error: another sepsiscope server uses {data} (see {data}/.sepsiscope.lock); "
                   "stop it or give another --data", err=True)  # fmt: skip
        raise typer.Exit(2)
    try:
        application = create_app(data, run, token=token, workers=workers, live=live)
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = "localhost" if host in LOCAL_HOSTS else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    typer.echo(f"sepsiscope serves {Path(data).resolve()} at {url}  (Ctrl-C stops)")
    typer.echo("Research use only: not a medical device.")
    uvicorn.run(application, host=host, port=port, log_level="warning")
