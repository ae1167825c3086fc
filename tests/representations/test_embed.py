"""t-SNE maps of classifier features: separation scores on features of known structure, placing
new frames, the embed stage and CLI, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _repr_data import make_classifier_run, make_store, structured_features
from typer.testing import CliRunner

from sepsiscope.cli import app
from sepsiscope.data.store import FrameStore
from sepsiscope.errors import InputError
from sepsiscope.representations import _shared as R
from sepsiscope.representations.embed import EmbedSettings, embed
from sepsiscope.representations.features import frame_index, save_split_features

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _blobs(n_per=60, dim=16, gap=8.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0, 1, (n_per, dim)), rng.normal(gap, 1, (n_per, dim))]
    diagnosis = np.repeat(["non-septic", "septic"], n_per)
    patient = np.array([f"p{i // 10}" for i in range(2 * n_per)])  # 10 frames per patient
    return x.astype(np.float32), diagnosis, patient


def test_separated_diagnoses_score_high():
    x, diagnosis, patient = _blobs()
    s = R.separation_scores(x, diagnosis, patient, k=10)
    assert s["silhouette_diagnosis"] > 0.7
    assert s["knn_diagnosis"] == pytest.approx(1.0)
    assert s["knn_diagnosis_other_patients"] == pytest.approx(1.0)
    assert s["silhouette_patient"] < 0.2  # patients mix within a diagnosis
    assert s["chance_diagnosis"] == 0.5 and s["n_patients"] == 12


def test_features_grouped_by_patient_show_identity_not_diagnosis():
    rng = np.random.default_rng(1)
    patient = np.repeat([f"p{i}" for i in range(12)], 10)
    diagnosis = np.where(np.repeat(np.arange(12) % 2, 10) == 1, "septic", "non-septic")
    centres = rng.normal(0, 5, (12, 16))
    x = centres[np.repeat(np.arange(12), 10)] + rng.normal(0, 0.3, (120, 16))
    s = R.separation_scores(x, diagnosis, patient, k=5)
    assert s["silhouette_patient"] > 0.7 and s["knn_patient"] > 0.95
    assert s["silhouette_diagnosis"] < 0.2
    # Naive kNN "diagnosis" is earned by recognising the patient; across patients it is chance.
    assert s["knn_diagnosis"] > 0.95
    assert s["knn_diagnosis_other_patients"] < 0.75


def test_knn_majority_vote_and_one_group():
    x = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]], np.float32)
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    assert R.knn_accuracy(x, labels, k=2) == 1.0
    assert np.isnan(R.knn_accuracy(x, labels, k=2, groups=np.zeros(6)))  # no other group
    assert np.isnan(R.silhouette(x, np.zeros(6)))


def test_placed_points_land_near_their_class_and_map_survives_a_round_trip(tmp_path):
    x, diagnosis, _ = _blobs(n_per=40)
    tsne = R.tsne_map(x, perplexity=10, seed=0)
    assert tsne.coordinates.shape == (80, 2) and np.isfinite(tsne.coordinates).all()
    tsne.save(tmp_path / "map.npz")
    loaded = R.TSNEMap.load(tmp_path / "map.npz")  # plain arrays, no pickle
    np.testing.assert_array_equal(loaded.coordinates, tsne.coordinates)
    new, new_diagnosis, _ = _blobs(n_per=5, seed=3)
    placed = R.place_points(loaded, new)
    centres = {d: tsne.coordinates[diagnosis == d].mean(0) for d in ("non-septic", "septic")}
    for point, d in zip(placed, new_diagnosis, strict=True):
        other = "septic" if d == "non-septic" else "non-septic"
        assert np.linalg.norm(point - centres[d]) < np.linalg.norm(point - centres[other])
    with pytest.raises(InputError, match="expected 16"):
        R.place_points(loaded, new[:, :8])


def test_perplexity_is_clipped_and_too_few_frames_is_a_clear_error():
    assert R.usable_perplexity(40, 30) == pytest.approx(13.0)
    assert R.usable_perplexity(1000, 30) == 30
    with pytest.raises(InputError, match="10 frames are too few.*at least 16"):
        R.usable_perplexity(10, 30)
    with pytest.raises(InputError, match="2-D"):
        R.check_features(np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        R.check_features(np.full((3, 2), np.nan))


def test_embed_stage_and_cli_with_placed_test_frames(tmp_path):
    splits = {"train": ["p0", "p1"], "val": ["p2", "p3", "p4", "p5"], "test": ["p6", "p7"]}
    store_dir = make_store(tmp_path / "store", per_patient=6, splits=splits)
    run = make_classifier_run(tmp_path / "run", store_dir)
    store = FrameStore(store_dir)
    for split in ("val", "test"):
        index = frame_index(store, split)
        save_split_features(run, split, structured_features(index, by="label"), index)
    out = runner.invoke(app, ["embed", str(run.root), "--perplexity", "8", "--place", "test",
                              "--quiet", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    reply = json.loads(out.stdout)
    assert reply["feature_dim"] == 128 and reply["n_frames"] == 24
    assert reply["perplexity"] == pytest.approx(23 / 3)  # 8 clipped to (24 - 1) / 3
    assert reply["scores"]["silhouette_diagnosis"] > 0.7
    assert reply["scores"]["knn_diagnosis_other_patients"] == 1.0
    assert reply["placed"]["n_frames"] == 12 and reply["placed"]["map_knn_diagnosis"] >= 0.9
    layout = run.embedding_of("val")
    for by in ("diagnosis", "patient", "camera"):
        assert layout.png(by).read_bytes()[:8] == PNG_MAGIC
    coordinates = pd.read_csv(layout.coordinates)
    assert len(coordinates) == 24 and {"tsne_x", "tsne_y", "patient_id", "camera"} <= set(
        coordinates
    )
    assert len(pd.read_csv(layout.placed("test"))) == 12
    assert all(
        p in reply["files"] for p in (str(layout.coordinates), str(layout.placed_png("test")))
    )


def test_real_classifier_features_and_too_few_frames(tmp_path):
    store_dir = make_store(tmp_path / "store", size=32, per_patient=3)
    run = make_classifier_run(tmp_path / "run", store_dir)
    from sepsiscope.representations.features import split_features

    features, index = split_features(run, FrameStore(store_dir), "val", quiet=True)
    assert features.shape == (6, 128) and np.isfinite(features).all() and len(index) == 6
    assert (features >= 0).all()  # pooled after a ReLU
    with pytest.raises(InputError, match="6 frames are too few.*at least 16"):
        embed(run.root, EmbedSettings(split="val"), quiet=True)
    out = runner.invoke(app, ["embed", str(run.root), "--split", "val"])
    assert out.exit_code == 2 and "6 frames are too few" in out.output
