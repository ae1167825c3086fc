"""Verbs of the microcirculation metrics: measure, interpret."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sepsiscope.cli._common import (
    ConfigOption,
    JsonFlag,
    QuietFlag,
    app,
    fps_option,
    out_option,
    run_stage,
    scheduler_option,
    um_per_px_option,
    workers_option,
)


@app.command("measure")
def measure_cmd(
    source: Annotated[
        Path,
        typer.Argument(help="A video (file or frame folder), a folder of videos, or a manifest."),
    ],
    out: Annotated[Path, out_option("Folder for tables and figures.")],
    um_per_px: Annotated[float | None, um_per_px_option()] = None,
    fps: Annotated[float | None, fps_option("Frame rate (overrides manifest/container).")] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Known camera for µm/px (microscan, cytocam).")
    ] = None,
    workers: Annotated[int | None, workers_option()] = None,
    scheduler: Annotated[str | None, scheduler_option()] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            "--fields",
            help="Interlaced (analogue) video, each frame's two fields measured at twice the "
            "frame rate: auto where the frames show it (or the container marks it), "
            "top_first or bottom_first always, progressive never [default: auto]",
        ),
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Consensus microcirculation metrics per video (TVD, PPV, PVD, MFI, De Backer, velocity),
    per vessel and per patient (HI), with overlays and space-time diagrams."""
    from sepsiscope.microcirculation.measure import MeasureSettings, measure, summary_text

    def go() -> dict[str, Any]:
        settings = MeasureSettings.build(
            config,
            um_per_px=um_per_px,
            fps=fps,
            camera=camera,
            workers=workers,
            scheduler=scheduler,
            fields=fields,
        )
        return measure(source, out, settings, quiet=quiet)

    run_stage(go, as_json=as_json, summary=summary_text)


@app.command("interpret")
def interpret_cmd(
    measurements: Annotated[Path, typer.Argument(help="Folder written by sepsiscope measure.")],
    run: Annotated[
        Path | None, typer.Option("--run", help="Run whose network probabilities to combine.")
    ] = None,
    folds: Annotated[
        int | None, typer.Option("--folds", help="Cross-validation folds [default: 5]")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,  # accepted as by every verb; nothing here draws progress
    as_json: JsonFlag = False,
) -> None:
    """Patient-level logistic regression on the consensus metrics (grouped cross-validation),
    and with --run a combined model with the network's patient probability; AUCs side by side."""
    from sepsiscope.microcirculation.interpret import InterpretSettings, interpret, summary_text

    def go() -> dict[str, Any]:
        settings = InterpretSettings.build(config, folds=folds)
        return interpret(measurements, settings, run_dir=run)

    run_stage(go, as_json=as_json, summary=summary_text)
