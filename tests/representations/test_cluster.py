"""K-means on learned features: agreement scores, the stage on autoencoder and classifier
features, figures and tables, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _repr_data import make_classifier_run, make_store, structured_features
from typer.testing import CliRunner

from sepsiscope._io import write_json, write_table
from sepsiscope.cli import app
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.representations import _shared as R
from sepsiscope.representations.cluster import (
    ClusterSettings,
    agreement,
    cluster,
    k_sweep,
    kmeans,
    standardise,
)
from sepsiscope.representations.features import frame_index, save_split_features

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_autoencoder_run(run_dir, index, features, bottleneck=1152):
    """A run whose autoencoder features are given (as `autoencode` writes them)."""
    run = RunLayout(run_dir)
    layout = run.autoencoder_model(bottleneck)
    layout.root.mkdir(parents=True)
    R.save_npy(layout.features, features)
    write_table(layout.features_index, index)
    write_json(run.autoencoder_sweep, {"recommended_bottleneck": bottleneck, "sizes": []})
    return run


def _index(n_patients=6, per=8):
    rows = [dict(video_id=f"v{p}", row=r, patient_id=f"p{p}", y=p % 2,
                 label=("non-septic", "septic")[p % 2], split="val", camera="microscan")
            for p in range(n_patients) for r in range(per)]  # fmt: skip
    return pd.DataFrame(rows)


def test_separable_blobs_are_found_exactly():
    index = _index()
    x = standardise(structured_features(index, by="label", dim=12))
    labels = kmeans(x, 2, seed=0)
    scores = agreement(labels, index["label"], index["patient_id"])
    assert scores["ari"] == pytest.approx(1.0) and scores["nmi"] == pytest.approx(1.0)
    assert scores["purity"] == 1.0
    assert 0 < scores["nmi_patient"] < 1  # two clusters cannot name six patients
    sweep = k_sweep(x, k_max=5)
    assert list(sweep["k"]) == [2, 3, 4, 5]
    assert sweep["inertia"].is_monotonic_decreasing
    assert sweep["silhouette"].iloc[0] == sweep["silhouette"].max()  # k=2 is the true k


def test_standardise_gives_unit_variance_and_keeps_constant_columns_finite():
    x = np.c_[np.arange(10.0), np.full(10, 3.0)]
    z = standardise(x)
    assert z[:, 0].std() == pytest.approx(1.0, rel=1e-5) and (z[:, 1] == 0).all()


def test_cluster_stage_on_autoencoder_features(tmp_path):
    index = _index()
    features = structured_features(index, by="label", dim=32)
    run = _fake_autoencoder_run(tmp_path / "run", index, features)
    out = runner.invoke(app, ["cluster", str(run.root), "--k", "2", "--json"])
    assert out.exit_code == 0, out.output
    reply = json.loads(out.stdout)
    assert reply["features"] == "autoencoder" and reply["feature_dim"] == 32
    assert reply["ari"] == pytest.approx(1.0) and reply["nmi"] == pytest.approx(1.0)
    assert {"purity", "ari_patient", "nmi_patient"} <= set(reply)
    layout = run.clusters_of("autoencoder", "val")
    assert layout.png.read_bytes()[:8] == PNG_MAGIC and layout.k_sweep_png.exists()
    per_patient = pd.read_csv(layout.patients)
    assert len(per_patient) == 6
    counts = per_patient.filter(like="cluster_").sum(axis=1)
    assert (counts == 8).all()  # every frame of a patient is counted once
    assert (per_patient.filter(like="cluster_").max(axis=1) == 8).all()  # one cluster each
    assert list(pd.read_csv(layout.k_sweep)["k"]) == list(range(2, 9))
    assignments = pd.read_parquet(layout.assignments)
    assert len(assignments) == 48 and {"cluster", "tsne_x", "tsne_y"} <= set(assignments)
    assert json.loads(layout.metrics.read_text())["map"] == "tsne"


def test_cluster_stage_on_classifier_features_grouped_by_patient(tmp_path):
    store_dir = make_store(tmp_path / "store", size=32, per_patient=4)
    run = make_classifier_run(tmp_path / "run", store_dir)
    index = frame_index(FrameStore(store_dir), "val")
    save_split_features(run, "val", structured_features(index, by="patient_id"), index)
    result = cluster(run.root, ClusterSettings(k=2, features="classifier"), quiet=True)
    # Two val patients of different diagnoses: patient and diagnosis coincide here.
    assert result["features"] == "classifier" and result["feature_dim"] == 128
    assert result["ari_patient"] == pytest.approx(1.0) and result["map"] == "pca"  # 8 frames


def test_bad_inputs_are_clear_errors(tmp_path):
    index = _index(n_patients=2, per=2)
    run = _fake_autoencoder_run(tmp_path / "run", index, np.zeros((4, 8), np.float32))
    with pytest.raises(InputError, match="k=5 clusters is more than the 4 frames"):
        cluster(run.root, ClusterSettings(k=5), quiet=True)
    R.save_npy(run.autoencoder_model(1152).features, np.zeros((3, 8), np.float32))
    out = runner.invoke(app, ["cluster", str(run.root)])
    assert out.exit_code == 2 and "have 3 rows but there are 4 frames" in out.output
    with pytest.raises(InputError, match="neither an autoencoder nor a classifier"):
        cluster(tmp_path / "empty", quiet=True)
