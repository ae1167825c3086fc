"""Verbs that make and inspect data: simulate, ingest, store info."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sepsiscope.cli._common import (
    ConfigOption,
    JsonFlag,
    QuietFlag,
    app,
    out_option,
    overwrite_flag,
    run_stage,
    scheduler_option,
    seed_option,
    store_option,
    workers_option,
)


@app.command("simulate")
def simulate_cmd(
    out: Annotated[Path, out_option("Folder of the cohort to write.")],
    patients: Annotated[
        int | None, typer.Option("--patients", help="Patients [default: 24]")
    ] = None,
    videos_per_patient: Annotated[
        int | None,
        typer.Option("--videos-per-patient", help="Videos (sites) per patient [default: 3]"),
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Video length, s [default: 3]")
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option("--camera", help="microscan, cytocam or mixed (default: microscan)."),
    ] = None,
    seed: Annotated[int | None, seed_option()] = None,
    width: Annotated[
        int | None, typer.Option("--width", help="Override the frame width, px (tests).")
    ] = None,
    height: Annotated[
        int | None, typer.Option("--height", help="Override the frame height, px (tests).")
    ] = None,
    workers: Annotated[
        int | None, workers_option("Parallel processes [default: CPU count, max 4]")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Simulate a synthetic cohort of septic and non-septic dark-field videos with ground truth
    (manifest.csv, truth.csv, vessels.json, masks; docs/simulator.md)."""
    from sepsiscope.simulate import SimulateSettings, simulate_cohort

    def go() -> dict[str, Any]:
        settings = SimulateSettings.build(
            config, patients=patients, videos_per_patient=videos_per_patient, seconds=seconds,
            camera=camera, seed=seed, width=width, height=height, workers=workers,
        )  # fmt: skip
        return simulate_cohort(out, settings, quiet=quiet)

    run_stage(
        go,
        as_json=as_json,
        summary=lambda r: (
            f"cohort {r['out_dir']}: {r['n_patients']} patients ({r['n_septic']} septic), "
            f"{r['n_videos']} videos, {r['n_frames']} frames in {r['seconds_taken']:.1f} s; "
            f"manifest {r['manifest']}"
        ),
    )


@app.command("ingest")
def ingest_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV or Parquet (docs/manifest.md).")],
    store: Annotated[Path, store_option("Frame store folder to write.")],
    every: Annotated[
        int | None, typer.Option("--every", help="Sample every N-th frame (instead of --rate).")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Samples per second of video [default: 2]"),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Sample side, px [default: 224]")
    ] = None,
    crop: Annotated[
        str | None,
        typer.Option(
            "--crop", help="center (one square) or tiles (cover the field) [default: center]"
        ),
    ] = None,
    field_um: Annotated[
        float | None,
        typer.Option(
            "--field-um",
            help="Crop squares of this side in µm (one physical scale for every camera) "
            "[default: sized in px]",
        ),
    ] = None,
    channel_offset_ms: Annotated[
        float | None,
        typer.Option("--channel-offset-ms", help="Time between channels [default: 150]"),
    ] = None,
    val: Annotated[
        float | None, typer.Option("--val", help="Validation fraction [default: 0.2]")
    ] = None,
    test: Annotated[
        float | None, typer.Option("--test", help="Test fraction [default: 0.2]")
    ] = None,
    folds: Annotated[
        int | None, typer.Option("--folds", help="Folds, 0 for none [default: 5]")
    ] = None,
    seed: Annotated[int | None, seed_option("Split seed [default: 0]")] = None,
    workers: Annotated[int | None, workers_option()] = None,
    scheduler: Annotated[str | None, scheduler_option()] = None,
    overwrite: Annotated[
        bool, overwrite_flag("Start the store again instead of resuming.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Turn a manifest of videos into a patient-split frame store (resumes; exit 3 if some
    videos failed, each listed)."""
    from sepsiscope.data.ingest import IngestSettings, ingest
    from sepsiscope.errors import InputError

    def go() -> dict[str, Any]:
        if every is not None and rate is not None:
            raise InputError("give --every or --rate, not both")
        offset_s = None if channel_offset_ms is None else channel_offset_ms / 1000.0
        settings = IngestSettings.build(
            config, every=every, rate_hz=rate, size=size, crop=crop, field_um=field_um,
            channel_offset_s=offset_s,
            val=val, test=test, folds=folds, seed=seed, workers=workers, scheduler=scheduler,
        )  # fmt: skip
        return ingest(manifest, store, settings, quiet=quiet, overwrite=overwrite)

    run_stage(
        go,
        as_json=as_json,
        summary=lambda r: (
            f"store {r['store']}: {r['videos']} videos ({r['videos_new']} new), {r['samples']} "
            f"samples ({r['samples_unusable']} flagged unusable), {r['failures']} failed"
        ),
    )


store_app = typer.Typer(help="Inspect a frame store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("info")
def store_info_cmd(
    store: Annotated[Path, typer.Argument(help="Frame store folder (sepsiscope ingest --store).")],
    as_json: JsonFlag = False,
) -> None:
    """Patients, videos and frames by label and split, quality exclusions and failures."""
    from sepsiscope.data.ingest import store_info

    def summary(r: dict[str, Any]) -> str:
        lines = [f"store {r['store']}"]
        if r.get("last_ingest") == "cut off":
            lines.append("  the last ingest was cut off before its end: run it again to complete")
        elif r.get("last_ingest") == "running":
            lines.append("  an ingest into this store is running now")
        for name in ("patients", "videos", "frames"):
            c = r[name]
            lines.append(
                f"  {name}: {c['total']}  by label {c['by_label']}  by split {c['by_split']}"
            )
        q = r["quality"]
        lines.append(f"  unusable: {q['videos_unusable']} videos, {q['frames_unusable']} frames")
        unknown = r.get("unknown_scale", {}).get("videos", 0)
        if unknown:
            lines.append(
                f"  unknown scale (no µm/px): {unknown} videos, sampled by pixels; measure "
                "cannot measure them (give um_per_px or a known camera in the manifest)"
            )
        lines.append(f"  failures: {len(r['failures'])}")
        lines += [f"    {f['video']}: {f['reason']}" for f in r["failures"]]
        return "\n".join(lines)

    run_stage(lambda: store_info(store), as_json=as_json, summary=summary)
