"""Verbs of what the network learned: embed, autoencode, cluster."""

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
    run_stage,
    seed_option,
    store_option,
)


@app.command("embed")
def embed_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with a trained classifier.")],
    split: Annotated[
        str | None, typer.Option("--split", help="Split to map: val, test or train [default: val]")
    ] = None,
    perplexity: Annotated[
        float | None,
        typer.Option(
            "--perplexity", help="t-SNE perplexity, clipped to (frames-1)/3 [default: 30]"
        ),
    ] = None,
    place: Annotated[
        str | None, typer.Option("--place", help="Also place this split's frames into the map.")
    ] = None,
    seed: Annotated[int | None, seed_option("t-SNE seed [default: 0]")] = None,
    store: RunStoreOption = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """t-SNE map of the classifier's 128-d features by diagnosis, patient and camera, with
    silhouette and k-NN scores: does diagnosis or patient drive the grouping?"""
    from sepsiscope.representations.embed import EmbedSettings, embed

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


@app.command("autoencode")
def autoencode_cmd(
    store: Annotated[Path, store_option("Frame store to learn from.")],
    out: Annotated[Path, out_option("Run folder (writes RUN/autoencoder/).")],
    bottleneck: Annotated[
        str | None,
        typer.Option(
            "--bottleneck",
            help="Bottleneck size at 224 px, or a comma list to sweep, e.g. 288,576,1152,2304 "
            "[default: 1152]",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs [default: 20]")] = None,
    input_mode: Annotated[
        str | None,
        typer.Option("--input-mode", help="single (grey frame) or time [default: single]"),
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
    from sepsiscope.representations.autoencode import AutoencodeSettings, autoencode

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


@app.command("cluster")
def cluster_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder with an autoencoder or a classifier.")],
    k: Annotated[int | None, typer.Option("--k", help="Clusters [default: 2]")] = None,
    features: Annotated[
        str | None,
        typer.Option("--features", help="autoencoder, classifier or auto [default: auto]"),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="val, test, train or all [default: val]")
    ] = None,
    bottleneck: Annotated[
        int | None, typer.Option("--bottleneck", help="Autoencoder size [default: recommended]")
    ] = None,
    store: RunStoreOption = None,
    config: ConfigOption = None,
    quiet: QuietFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """K-means on standardised learned features, a k sweep, and agreement of the clusters
    with diagnosis (ARI, NMI, purity) and with patient (RUN/clusters/)."""
    from sepsiscope.representations.cluster import ClusterSettings, cluster

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
