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
    # Lightning logs through handlers of its own: without --verbose its INFO lines (devices found,
    # tips about its cloud services) are noise; with it, they should not print twice.
    for name in ("lightning.pytorch", "lightning.fabric"):
        engine_log = logging.getLogger(name)
        engine_log.propagate = False
        if not verbose:
            engine_log.setLevel(logging.WARNING)


@app.command("simulate")
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder of the cohort to write.")],
    patients: Annotated[int | None, typer.Option("--patients", help="Patients [24].")] = None,
    videos_per_patient: Annotated[
        int | None, typer.Option("--videos-per-patient", help="Videos (sites) per patient [3].")
    ] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Video length, s [3].")] = None,
    camera: Annotated[
        str | None,
        typer.Option("--camera", help="microscan, cytocam or mixed (default: microscan)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed [0].")] = None,
    width: Annotated[
        int | None, typer.Option("--width", help="Override the frame width, px (tests).")
    ] = None,
    height: Annotated[
        int | None, typer.Option("--height", help="Override the frame height, px (tests).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Parallel processes [CPU count, max 4].")
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
    store: Annotated[Path, typer.Option("--store", help="Frame store folder to write.")],
    every: Annotated[
        int | None, typer.Option("--every", help="Sample every N-th frame (instead of --rate).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Samples per second of video [default: 2].")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", help="Sample side, px [224].")] = None,
    crop: Annotated[
        str | None, typer.Option("--crop", help="center (one square) or tiles (cover the field).")
    ] = None,
    channel_offset_ms: Annotated[
        float | None, typer.Option("--channel-offset-ms", help="Time between channels [150].")
    ] = None,
    val: Annotated[float | None, typer.Option("--val", help="Validation fraction [0.2].")] = None,
    test: Annotated[float | None, typer.Option("--test", help="Test fraction [0.2].")] = None,
    folds: Annotated[int | None, typer.Option("--folds", help="Folds, 0 for none [5].")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Split seed [0].")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel videos [1].")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start the store again instead of resuming.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Turn a manifest of videos into a patient-split frame store (resumes; exit 3 if some
    videos failed, each listed)."""
    from sepsiscope.errors import InputError
    from sepsiscope.ingest import IngestSettings, ingest

    def go() -> dict[str, Any]:
        if every is not None and rate is not None:
            raise InputError("give --every or --rate, not both")
        offset_s = None if channel_offset_ms is None else channel_offset_ms / 1000.0
        settings = IngestSettings.build(
            config, every=every, rate_hz=rate, size=size, crop=crop, channel_offset_s=offset_s,
            val=val, test=test, folds=folds, seed=seed, workers=workers,
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


@app.command("train")
def train_cmd(
    store: Annotated[Path, typer.Option("--store", help="Frame store (sepsiscope ingest).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (RUN/classifier/).")],
    epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum epochs [30].")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Frames per step [32].")
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate [1e-3].")] = None,
    input_mode: Annotated[
        str | None, typer.Option("--input-mode", help="time (t, t+k, t+2k) or single [time].")
    ] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="ImageNet ResNet18 state dict for the trunk.")
    ] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No augmentation.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of everything [0].")] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="auto, fp32 or bf16 [auto].")
    ] = None,
    accelerator: Annotated[
        str | None, typer.Option("--accelerator", help="auto, cpu or gpu [auto].")
    ] = None,
    devices: Annotated[
        str | None, typer.Option("--devices", help="Devices per node: a count or auto [auto].")
    ] = None,
    num_nodes: Annotated[int | None, typer.Option("--num-nodes", help="Nodes [1].")] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="auto, ddp, ddp_spawn, ... [auto].")
    ] = None,
    max_frames_per_epoch: Annotated[
        int | None, typer.Option("--max-frames-per-epoch", help="Random subset per epoch.")
    ] = None,
    split_by: Annotated[
        str | None, typer.Option("--split-by", help="patient, or frame (LEAKY, for study).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from last.ckpt.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Discard an earlier run in --out.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the 10-layer ResNet18-based classifier, choosing the model by the validation
    patients' AUC (RUN/classifier/: model.safetensors, checkpoints, metrics.csv)."""
    from sepsiscope.train import TrainSettings, train

    def go() -> dict[str, Any]:
        settings = TrainSettings.build(
            config, epochs=epochs, batch_size=batch_size, lr=lr, input_mode=input_mode,
            init=None if init is None else str(init), augment=False if no_augment else None,
            seed=seed, precision=precision, accelerator=accelerator,
            devices=None if devices is None else (int(devices) if devices.isdigit() else devices),
            num_nodes=num_nodes, strategy=strategy, max_frames_per_epoch=max_frames_per_epoch,
            split_by=split_by,
        )  # fmt: skip
        return train(store, out, settings, quiet=quiet, resume=resume, overwrite=overwrite)

    def summary(r: dict[str, Any]) -> str:
        auc = r.get("best_val_patient_auc")
        auc_text = "undefined" if auc is None else f"{auc:.3f}"
        return (
            f"model {r['model']}: best validation patient AUC {auc_text} at epoch "
            f"{r['best_epoch']} ({r['epochs_run']} epochs, {r['precision']})"
            + (f"\nWARNING: {r['warning']}" if r.get("warning") else "")
        )

    run_stage(go, as_json=as_json, summary=summary)


def _interval_text(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "undefined"
    low, high = entry.get("interval") or (None, None)
    return f"{entry['value']:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    split: Annotated[
        str | None, typer.Option("--split", help="Split to judge: test (default), val or train.")
    ] = None,
    bootstrap: Annotated[
        int | None, typer.Option("--bootstrap", help="Patient resamples for intervals [1000].")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Frame store (default: the run's own).")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Judge a trained classifier by frame, video and patient with bootstrap intervals, beside
    a logistic-regression baseline; threshold fixed on validation (RUN/evaluation/)."""
    from sepsiscope.evaluate import EvaluateSettings, evaluate

    def go() -> dict[str, Any]:
        settings = EvaluateSettings.build(config, split=split, n_bootstrap=bootstrap, store=store)
        return evaluate(run, settings, quiet=quiet)

    run_stage(
        go,
        as_json=as_json,
        summary=lambda r: (
            f"{r['split']} split, {r['n_patients']} patients, threshold {r['threshold']:.3f}: "
            f"patient AUC {_interval_text(r['patient_auc'])}, accuracy "
            f"{_interval_text(r['patient_accuracy'])}; baseline patient AUC "
            f"{_interval_text(r['baseline_patient_auc'])}; {r['metrics']}"
        ),
    )


@app.command("crossval")
def crossval_cmd(
    store: Annotated[Path, typer.Option("--store", help="Frame store with folds (ingest).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (folds/, crossval/).")],
    folds: Annotated[
        int | None, typer.Option("--folds", help="Number of folds; must match the store's.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per fold.")] = None,
    bootstrap: Annotated[
        int | None, typer.Option("--bootstrap", help="Patient resamples for intervals [200].")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Retrain folds that are already done.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Patient-grouped k-fold cross-validation: one model per fold, out-of-fold predictions for
    every patient, mean and spread of each metric (finished folds are kept)."""
    from sepsiscope.crossval import CrossvalSettings, crossval

    def go() -> dict[str, Any]:
        base = CrossvalSettings.build(config, folds=folds, overwrite=overwrite or None)
        updates: dict[str, Any] = {}
        if epochs is not None:
            updates["train"] = {**base.train, "epochs": epochs}
        if bootstrap is not None:
            updates["evaluate"] = base.evaluate.model_copy(update={"n_bootstrap": bootstrap})
        settings = CrossvalSettings.build(None, **{**base.model_dump(), **updates})
        return crossval(store, out, settings, quiet=quiet)

    def summary(r: dict[str, Any]) -> str:
        mean, std = r["patient_auc_mean"], r["patient_auc_std"]
        spread = f"{mean:.3f} ± {std:.3f}" if mean is not None and std is not None else str(mean)
        return (
            f"{r['n_folds']} folds, {r['n_patients']} patients: patient AUC over folds {spread}; "
            f"pooled out-of-fold {_interval_text(r['pooled_patient_auc'])}; {r['metrics']}"
        )

    run_stage(go, as_json=as_json, summary=summary)


store_app = typer.Typer(help="Inspect a frame store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("info")
def store_info_cmd(
    store: Annotated[Path, typer.Argument(help="Frame store folder (sepsiscope ingest --store).")],
    as_json: JsonFlag = False,
) -> None:
    """Patients, videos and frames by label and split, quality exclusions and failures."""
    from sepsiscope.ingest import store_info

    def summary(r: dict[str, Any]) -> str:
        lines = [f"store {r['store']}"]
        for name in ("patients", "videos", "frames"):
            c = r[name]
            lines.append(
                f"  {name}: {c['total']}  by label {c['by_label']}  by split {c['by_split']}"
            )
        q = r["quality"]
        lines.append(f"  unusable: {q['videos_unusable']} videos, {q['frames_unusable']} frames")
        lines.append(f"  failures: {len(r['failures'])}")
        lines += [f"    {f['video']}: {f['reason']}" for f in r["failures"]]
        return "\n".join(lines)

    run_stage(lambda: store_info(store), as_json=as_json, summary=summary)


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


@app.command("autoencode")
def autoencode_cmd(
    store: Annotated[Path, typer.Option("--store", help="Frame store to learn from.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (writes RUN/autoencoder/).")],
    bottleneck: Annotated[
        str | None,
        typer.Option(
            "--bottleneck",
            help="Bottleneck size at 224 px, or a comma list to sweep, e.g. 288,576,1152,2304 "
            "[1152].",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs [20].")] = None,
    input_mode: Annotated[
        str | None, typer.Option("--input-mode", help="single (grey frame) or time [single].")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from each size's last checkpoint.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the unsupervised convolutional autoencoder (3 conv + 3 transposed conv, no skips)
    on the train split; per-epoch reconstruction PNGs, bottleneck features, size sweep."""
    from sepsiscope.autoencode import AutoencodeSettings, autoencode

    def go() -> dict[str, Any]:
        settings = AutoencodeSettings.build(
            config, bottleneck=bottleneck, epochs=epochs, input_mode=input_mode
        )
        return autoencode(store, out, settings, resume=resume, quiet=quiet)

    run_stage(
        go,
        as_json=as_json,
        summary=lambda r: (
            f"autoencoder b{r['recommended_bottleneck']} ({r['feature_dim']} features): "
            f"val MSE {r['val_mse']:.4f}, PSNR {r['val_psnr_db']:.1f} dB, SSIM "
            f"{r['val_ssim']:.3f}; {r['files'][0]}"
        ),
    )


@app.command("embed")
def embed_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    split: Annotated[
        str | None, typer.Option("--split", help="Split to map: val, test or train [val].")
    ] = None,
    perplexity: Annotated[
        float | None,
        typer.Option("--perplexity", help="t-SNE perplexity, clipped to (frames-1)/3 [30]."),
    ] = None,
    place: Annotated[
        str | None, typer.Option("--place", help="Also place this split's frames into the map.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="t-SNE seed [0].")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Frame store (default: the run's own).")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """t-SNE map of the classifier's 128-d features by diagnosis, patient and camera, with
    silhouette and k-NN scores: does diagnosis or patient drive the grouping?"""
    from sepsiscope.embed import EmbedSettings, embed

    def go() -> dict[str, Any]:
        settings = EmbedSettings.build(
            config, split=split, perplexity=perplexity, place=place, seed=seed, store=store
        )
        return embed(run, settings, quiet=quiet)

    def summary(r: dict[str, Any]) -> str:
        s = r["scores"]
        return (
            f"{r['split']}: {r['n_frames']} frames, perplexity {r['perplexity']:.1f}; "
            f"silhouette diagnosis {s['silhouette_diagnosis']:.2f}, patient "
            f"{s['silhouette_patient']:.2f}; kNN diagnosis {s['knn_diagnosis']:.2f} "
            f"({s['knn_diagnosis_other_patients']:.2f} from other patients), patient "
            f"{s['knn_patient']:.2f}; {Path(r['files'][2]).parent}"
        )

    run_stage(go, as_json=as_json, summary=summary)


@app.command("cluster")
def cluster_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with an autoencoder or a classifier.")],
    k: Annotated[int | None, typer.Option("--k", help="Clusters [2].")] = None,
    features: Annotated[
        str | None,
        typer.Option("--features", help="autoencoder, classifier or auto [auto]."),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="val, test, train or all [val].")
    ] = None,
    bottleneck: Annotated[
        int | None, typer.Option("--bottleneck", help="Autoencoder size [recommended].")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Frame store (default: the run's own).")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """K-means on standardised learned features, a k sweep, and agreement of the clusters
    with diagnosis (ARI, NMI, purity) and with patient (RUN/clusters/)."""
    from sepsiscope.cluster import ClusterSettings, cluster

    def go() -> dict[str, Any]:
        settings = ClusterSettings.build(
            config, k=k, features=features, split=split, bottleneck=bottleneck, store=store
        )
        return cluster(run, settings, quiet=quiet)

    run_stage(
        go,
        as_json=as_json,
        summary=lambda r: (
            f"{r['features']} features ({r['n_frames']} frames, k={r['k']}): diagnosis ARI "
            f"{r['ari']:.2f}, NMI {r['nmi']:.2f}, purity {r['purity']:.2f}; patient ARI "
            f"{r['ari_patient']:.2f}, NMI {r['nmi_patient']:.2f}"
        ),
    )


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder of the demo.")] = Path(
        "sepsiscope-demo"
    ),
    tiny: Annotated[
        bool, typer.Option("--tiny", help="About a minute: tiny videos, one epoch (a smoke test).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start an earlier demo folder again.")
    ] = False,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the whole pipeline on a synthetic cohort (about 10 minutes on 2 cores; reruns resume)
    and print the path of the HTML report."""
    from sepsiscope.demo import DemoSettings, run_demo

    settings = DemoSettings.tiny() if tiny else DemoSettings()
    run_stage(
        lambda: run_demo(out, settings, quiet=quiet, overwrite=overwrite),
        as_json=as_json,
        summary=lambda r: r["report"],
    )


@app.command("measure")
def measure_cmd(
    source: Annotated[Path, typer.Argument(help="A video, or a manifest (.csv/.parquet).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for tables and figures.")],
    um_per_px: Annotated[
        float | None, typer.Option("--um-per-px", help="Pixel size, µm (overrides manifest).")
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate (overrides manifest/container).")
    ] = None,
    camera: Annotated[
        str | None, typer.Option("--camera", help="Known camera for µm/px (microscan, cytocam).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Parallel videos [1].")] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Consensus microcirculation metrics per video (TVD, PPV, PVD, MFI, De Backer, velocity),
    per vessel and per patient (HI), with overlays and space-time diagrams."""
    from sepsiscope.measure import MeasureSettings, measure, summary_text

    def go() -> dict[str, Any]:
        settings = MeasureSettings.build(
            config, um_per_px=um_per_px, fps=fps, camera=camera, workers=workers
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
        int | None, typer.Option("--folds", help="Cross-validation folds [5].")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Patient-level logistic regression on the consensus metrics (grouped cross-validation),
    and with --run a combined model with the network's patient probability; AUCs side by side."""
    from sepsiscope.metrics_model import InterpretSettings, interpret, summary_text

    def go() -> dict[str, Any]:
        settings = InterpretSettings.build(config, folds=folds)
        return interpret(measurements, settings, run_dir=run)

    run_stage(go, as_json=as_json, summary=summary_text)


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
        typer.Option("--backend", help="auto, fp32 (torch), bf16 or onnx (default auto)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or cuda (default cpu).")
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option("--annotate", help="Write an annotated .mp4 (a folder for many videos)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default RUN/predictions).")
    ] = None,
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
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate for files without one.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Override the threshold fixed on validation."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads for inference (1: steadiest live).")
    ] = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Per-frame probabilities, a rolling video probability with an interval, and the verdict at
    the validation threshold, for a video, a folder, a manifest or a live camera (research use
    only, not a diagnosis)."""
    from sepsiscope.predict import PredictSettings, predict, summary_text

    def go() -> dict[str, Any]:
        settings = PredictSettings.build(
            config, backend=backend, device=device, annotate=annotate, out=out,
            realtime=realtime, max_seconds=seconds, rate_hz=rate, fps=fps, threshold=threshold,
            threads=threads,
        )  # fmt: skip
        return predict(run, source, settings, quiet=quiet)

    run_stage(go, as_json=as_json, summary=summary_text)


@app.command("export")
def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The .onnx file (default RUN/classifier/model.onnx)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the classifier, preprocessing included, as one self-contained ONNX file (uint8
    samples in, probability out) and check it against torch."""
    from sepsiscope.backends import export

    run_stage(
        lambda: export(run, out=out),
        as_json=as_json,
        summary=lambda r: (
            f"{r['onnx']} (opset {r['opset']}, max |Δp| vs torch {r['max_abs_diff']:.1e})"
        ),
    )


@app.command("explain")
def explain_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    video: Annotated[
        Path | None, typer.Argument(help="A video to explain (else samples of --store).")
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Frame store (default: the run's own).")
    ] = None,
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
        Path | None, typer.Option("--out", help="Output folder (default RUN/explanations).")
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frame rate of a VIDEO that has none.")
    ] = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Grad-CAM overlays (layer2) of the samples with the highest and lowest probability of a
    store split, or of a video, with sanity checks of the maps."""
    from sepsiscope.explain import ExplainSettings, explain

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
        )
        return explain(run, settings, video=video, quiet=quiet)

    run_stage(go, as_json=as_json, summary=lambda r: f"{r['n']} overlays in {r['out']}")


def main() -> None:
    app()
