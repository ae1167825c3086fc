"""Verbs of the classifier: train, evaluate, crossval."""

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
    out_option,
    overwrite_flag,
    run_stage,
    seed_option,
    store_option,
)


@app.command("train")
def train_cmd(
    store: Annotated[Path, store_option("Frame store (sepsiscope ingest).")],
    out: Annotated[Path, out_option("Run folder to write (RUN/classifier/).")],
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Maximum epochs [default: 30]")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Frames per step [default: 32]")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Adam learning rate [default: 1e-3]")
    ] = None,
    input_mode: Annotated[
        str | None,
        typer.Option(
            "--input-mode", help="single (one grey frame) or time (t, t+k, t+2k) [default: single]"
        ),
    ] = None,
    init: Annotated[
        Path | None, typer.Option("--init", help="ImageNet ResNet18 state dict for the trunk.")
    ] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No augmentation.")] = False,
    seed: Annotated[int | None, seed_option("Seed of everything [default: 0]")] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="auto, fp32 or bf16 [default: auto]")
    ] = None,
    accelerator: Annotated[
        str | None, typer.Option("--accelerator", help="auto, cpu or gpu [default: auto]")
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option("--devices", help="Devices per node: a count or auto [default: auto]"),
    ] = None,
    num_nodes: Annotated[int | None, typer.Option("--num-nodes", help="Nodes [default: 1]")] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="auto, ddp, ddp_spawn, ... [default: auto]")
    ] = None,
    max_frames_per_epoch: Annotated[
        int | None, typer.Option("--max-frames-per-epoch", help="Random subset per epoch.")
    ] = None,
    split_by: Annotated[
        str | None,
        typer.Option("--split-by", help="patient; frame (LEAKY, for study); all (no selection)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from last.ckpt.")] = False,
    overwrite: Annotated[bool, overwrite_flag("Discard an earlier run in --out.")] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Train the 10-layer ResNet18-based classifier, choosing the model by the validation
    patients' AUC (RUN/classifier/: model.safetensors, checkpoints, metrics.csv)."""
    from sepsiscope.classifier.train import TrainSettings, train

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
        # epochs counted from 1 as the progress bar does (train.json keeps Lightning's from 0)
        best = "no epoch" if r["best_epoch"] is None else f"epoch {r['best_epoch'] + 1}"
        return (
            f"model {r['model']}: best validation patient AUC {auc_text} at {best} of "
            f"{r['epochs_run']}; precision {r.get('precision_reason', r['precision'])}"
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
        int | None,
        typer.Option("--bootstrap", help="Patient resamples for intervals [default: 1000]"),
    ] = None,
    store: RunStoreOption = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Average each sample over its 8 flips and turns.")
    ] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Judge a trained classifier by frame, video and patient with bootstrap intervals, beside
    a logistic-regression baseline; threshold fixed on validation (RUN/evaluation/)."""
    from sepsiscope.classifier.evaluate import EvaluateSettings, evaluate

    def go() -> dict[str, Any]:
        settings = EvaluateSettings.build(
            config, split=split, n_bootstrap=bootstrap, store=store, tta=tta or None
        )
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
    store: Annotated[Path, store_option("Frame store with folds (ingest).")],
    out: Annotated[Path, out_option("Run folder to write (folds/, crossval/).")],
    folds: Annotated[
        int | None, typer.Option("--folds", help="Number of folds; must match the store's.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs per fold.")] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option("--bootstrap", help="Patient resamples for intervals [default: 200]"),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option("--refit", help="Also train RUN/refit on every patient (one network)."),
    ] = False,
    overwrite: Annotated[bool, overwrite_flag("Retrain folds that are already done.")] = False,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Patient-grouped k-fold cross-validation: one model per fold, out-of-fold predictions for
    every patient, mean and spread of each metric (finished folds are kept)."""
    from sepsiscope.classifier.crossval import CrossvalSettings, crossval

    def go() -> dict[str, Any]:
        base = CrossvalSettings.build(
            config, folds=folds, refit=refit or None, overwrite=overwrite or None
        )
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
