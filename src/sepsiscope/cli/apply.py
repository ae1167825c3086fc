"""Verbs that apply a run and show it: predict, explain, export, report, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sepsiscope.cli._common import (
    ConfigOption,
    JsonFlag,
    QuietFlag,
    RunStoreOption,
    app,
    fps_option,
    out_option,
    overwrite_flag,
    run_stage,
    store_option,
    um_per_px_option,
)


@app.command("predict")
def predict_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    source: Annotated[
        str,
        typer.Argument(
            help="A video, a folder or manifest of videos, a camera index (0) or a stream URL."
        ),
    ],
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="auto, fp32 (torch), bf16, onnx or int8 (default auto)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or cuda (default cpu).")
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option("--annotate", help="Write an annotated .mp4 (a folder for many videos)."),
    ] = None,
    out: Annotated[Path | None, out_option("Output folder (default RUN/predictions).")] = None,
    realtime: Annotated[
        bool | None,
        typer.Option("--realtime", help="Replay a file at its frame rate, as a live camera."),
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop a live source after this many s.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Samples per second (default: the run's ingest rate)."),
    ] = None,
    fps: Annotated[float | None, fps_option("Frame rate (overrides manifest/container).")] = None,
    um_per_px: Annotated[
        float | None,
        um_per_px_option("Scale of the input (runs ingested with --field-um)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Override the threshold fixed on validation."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for inference (1: steadiest live).")
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average each sample over its 8 flips and turns (8x).")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Per-frame probabilities, a rolling video probability with an interval, and the verdict at
    the validation threshold, for a video, a folder, a manifest or a live camera (research use
    only, not a diagnosis)."""
    from sepsiscope.apply.predict import PredictSettings, predict, summary_text

    def go() -> dict[str, Any]:
        settings = PredictSettings.build(
            config, backend=backend, device=device, annotate=annotate, out=out,
            realtime=realtime, max_seconds=seconds, rate_hz=rate, fps=fps, threshold=threshold,
            threads=threads, um_per_px=um_per_px, tta=tta or None,
        )  # fmt: skip
        return predict(run, source, settings, quiet=quiet)

    run_stage(go, as_json=as_json, summary=summary_text)


@app.command("explain")
def explain_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    video: Annotated[
        Path | None, typer.Argument(help="A video to explain (else samples of --store).")
    ] = None,
    store: RunStoreOption = None,
    split: Annotated[
        str | None, typer.Option("--split", help="train, val or test (default test).")
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Samples: half highest, half lowest p (default 8).")
    ] = None,
    index: Annotated[
        list[int] | None, typer.Option("--index", help="Explain this sample (repeatable).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="predicted, septic or non-septic (default predicted)."),
    ] = None,
    out: Annotated[
        Path | None,
        out_option("Output folder (default RUN/explanations; a VIDEO's: .../videos/NAME)."),
    ] = None,
    fps: Annotated[float | None, fps_option("Frame rate of VIDEO (overrides its own).")] = None,
    um_per_px: Annotated[
        float | None,
        um_per_px_option("Scale of a VIDEO (runs ingested with --field-um)."),
    ] = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Grad-CAM overlays (layer2) of the samples with the highest and lowest probability of a
    store split, or of a video, with sanity checks of the maps."""
    from sepsiscope.apply.explain import ExplainSettings, explain

    def go() -> dict[str, Any]:
        settings = ExplainSettings.build(
            None,
            store=store,
            split=split,
            n=n,
            indices=index or None,
            target=target,
            out=out,
            fps=fps,
            um_per_px=um_per_px,
        )
        return explain(run, settings, video=video, quiet=quiet)

    run_stage(go, as_json=as_json, summary=lambda r: f"{r['n']} overlays in {r['out']}")


@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    out: Annotated[
        Path | None,
        out_option("The .onnx file (default RUN/classifier/model.onnx)."),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also an int8 model (ONNX Runtime static quantisation, "
            "calibrated on the store's train split) for CPUs without bf16.",
        ),
    ] = False,
    store: RunStoreOption = None,
    quiet: QuietFlag = False,  # accepted as by every verb; nothing here draws progress
    as_json: JsonFlag = False,
) -> None:
    """Write the classifier, preprocessing included, as one self-contained ONNX file (uint8
    samples in, probability out) and check it against torch."""
    from sepsiscope.apply.export import export

    def summary(r: dict) -> str:
        text = f"{r['onnx']} (opset {r['opset']}, max |Δp| vs torch {r['max_abs_diff']:.1e})"
        if "int8" in r:
            q = r["int8"]
            text += (f"\n{q['onnx']} (int8; vs fp32 on {q['n_check']} validation samples: max "
                     f"|Δp| {q['max_abs_diff']:.3f}, mean {q['mean_abs_diff']:.4f}, "
                     f"{q['flips']} decision(s) flipped)")  # fmt: skip
        return text

    run_stage(lambda: export(run, out=out, int8=int8, store=store), as_json=as_json,
              summary=summary)  # fmt: skip


@app.command("report")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder (sepsiscope train --out RUN).")],
    store: Annotated[
        Path | None, store_option("Frame store (default: found from the run).")
    ] = None,
    measurements: Annotated[
        Path | None,
        typer.Option("--measurements", help="sepsiscope measure output (RUN/measurements)."),
    ] = None,
    out: Annotated[Path | None, out_option("HTML file to write (default RUN/report.html).")] = None,
    config: ConfigOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No lines about sections not run.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write one self-contained HTML report of a run (images embedded, no network)."""
    from sepsiscope.reporting.report import ReportSettings, report

    def go() -> dict[str, Any]:
        settings = ReportSettings.build(
            config,
            store=str(store) if store else None,
            measurements=str(measurements) if measurements else None,
            out=str(out) if out else None,
        )
        return report(run, settings, quiet=quiet)

    run_stage(go, as_json=as_json, summary=lambda r: f"report: {r['report']}")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, out_option("Folder of the demo.")] = Path("sepsiscope-demo"),
    tiny: Annotated[
        bool, typer.Option("--tiny", help="About a minute: tiny videos, one epoch (a smoke test).")
    ] = False,
    overwrite: Annotated[bool, overwrite_flag("Start an earlier demo folder again.")] = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the whole pipeline on a synthetic cohort (about 6 minutes on 2 cores; reruns resume)
    and print the path of the HTML report."""
    from sepsiscope.demo import DemoSettings, run_demo

    settings = DemoSettings.tiny() if tiny else DemoSettings()
    run_stage(
        lambda: run_demo(out, settings, quiet=quiet, overwrite=overwrite),
        as_json=as_json,
        summary=lambda r: r["report"],
    )
