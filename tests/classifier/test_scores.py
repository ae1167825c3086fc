"""Metrics, aggregation by video and patient, the patient bootstrap and the validation threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, roc_auc_score

from sepsiscope.classifier.scores import (
    LEVELS,
    METRICS,
    _weighted_metrics,
    binary_metrics,
    evaluate_levels,
    level_tables,
    paired_difference,
    patient_resamples,
    patient_scores,
    perfect_separation_auc_bound,
    summarise_folds,
    video_scores,
    youden_threshold,
)
from sepsiscope.errors import InputError


def _cohort(n_patients=10, *, separation=0.3, videos=2, frames=5, seed=0, split="test"):
    """A prediction table: septic patients (odd index) score ``separation`` higher on average."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        y = i % 2
        for v in range(videos):
            for f in range(frames):
                p = np.clip(0.35 + separation * y + rng.normal(0, 0.15), 0, 1)
                rows.append(
                    dict(patient_id=f"p{i:03d}", video_id=f"p{i:03d}-v{v}", frame_index=f, y=y,
                         probability=float(p), split=split)
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_perfect_separation_and_known_values():
    m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), threshold=0.5)
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0 and m["f1"] == 1.0
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    inverted = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]))
    assert inverted["auc"] == 0.0 and inverted["sensitivity"] == 0.0
    ties = binary_metrics(np.array([0, 1]), np.array([0.5, 0.5]))
    assert ties["auc"] == 0.5


def test_metrics_agree_with_scikit_learn_on_random_scores():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = rng.random(300).round(2)  # ties on purpose
    m = binary_metrics(y, p, threshold=0.4)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert abs(m["auc"] - 0.5) < 0.1  # random scores
    assert m["precision"] == pytest.approx(precision_score(y, p >= 0.4))
    assert m["f1"] == pytest.approx(f1_score(y, p >= 0.4))
    assert m["sensitivity"] == pytest.approx(np.mean(p[y == 1] >= 0.4))
    assert m["specificity"] == pytest.approx(np.mean(p[y == 0] < 0.4))


def test_one_class_gives_undefined_not_a_crash():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]), threshold=0.5)
    assert m["auc"] is None and m["specificity"] is None
    assert m["sensitivity"] == pytest.approx(2 / 3)
    result, _ = evaluate_levels(_cohort(6).assign(y=1), threshold=0.5, n_bootstrap=20)
    assert result["patient"]["auc"]["value"] is None
    assert "both" in result["patient"]["auc"]["reason"]
    assert result["patient"]["auc"]["interval"] == [None, None]
    assert result["patient"]["accuracy"]["value"] is not None


def test_aggregation_is_mean_of_frames_then_mean_of_videos():
    frames = pd.DataFrame(
        dict(patient_id=["a", "a", "a", "b"], video_id=["a1", "a1", "a2", "b1"],
             frame_index=[0, 1, 0, 0], y=[1, 1, 1, 0], probability=[0.2, 0.4, 0.9, 0.1])
    )  # fmt: skip
    videos = video_scores(frames)
    assert videos.set_index("video_id")["probability"].to_dict() == pytest.approx(
        {"a1": 0.3, "a2": 0.9, "b1": 0.1}
    )
    patients = patient_scores(videos).set_index("patient_id")
    assert patients.loc["a", "probability"] == pytest.approx(0.6)  # not the frame mean 0.5
    assert patients.loc["a", "label"] == "septic" and patients.loc["a", "n_videos"] == 2
    median = video_scores(frames, rule="median").set_index("video_id")["probability"]
    assert median["a1"] == pytest.approx(0.3)
    vote = video_scores(frames, rule="fraction_above", frame_threshold=0.3)
    assert vote.set_index("video_id")["probability"]["a1"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="video rule"):
        video_scores(frames, rule="max")


def test_bad_prediction_tables_are_clear_errors():
    with pytest.raises(InputError, match="empty"):
        level_tables(_cohort(2).iloc[:0])
    with pytest.raises(InputError, match="columns"):
        level_tables(_cohort(2).drop(columns="video_id"))
    with pytest.raises(InputError, match="different labels"):
        level_tables(_cohort(2).assign(y=[0, 1] * 10))


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_patients():
    widths = {}
    for n in (10, 80):
        cohort = _cohort(n, separation=0.08)
        result, tables = evaluate_levels(cohort, threshold=0.39, n_bootstrap=300, seed=3)
        assert set(result) == set(LEVELS)
        for level in LEVELS:
            for m in METRICS:
                entry = result[level][m]
                low, high = entry["interval"]
                assert low <= entry["value"] + 1e-12 and entry["value"] <= high + 1e-12, (n, m)
        assert result["patient"]["n"]["patients"] == n
        assert len(tables["video"]) == 2 * n
        low, high = result["patient"]["auc"]["interval"]
        widths[n] = high - low
    assert widths[80] < widths[10]


def test_bootstrap_is_seeded():
    a, _ = evaluate_levels(_cohort(12), threshold=0.5, n_bootstrap=50, seed=7)
    b, _ = evaluate_levels(_cohort(12), threshold=0.5, n_bootstrap=50, seed=7)
    assert a == b


@settings(max_examples=25, deadline=None)
@given(
    n_patients=st.integers(1, 15),
    n_bootstrap=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    stratified=st.booleans(),
)
def test_bootstrap_draws_whole_patients_only(n_patients, n_bootstrap, seed, stratified):
    patients = np.array([f"p{i}" for i in range(n_patients)])
    strata = np.arange(n_patients) % 2 if stratified else None
    counts = patient_resamples(patients, n_bootstrap=n_bootstrap, seed=seed, strata=strata)
    assert counts.shape == (n_bootstrap, n_patients) and counts.min() >= 0
    assert np.all(counts.sum(axis=1) == n_patients)  # a resample is as large as the cohort
    if stratified:
        for s in (0, 1):
            assert np.all(counts[:, strata == s].sum(axis=1) == np.sum(strata == s))


def test_resample_weights_equal_duplicating_patients():
    frames = _cohort(6, videos=1, frames=4)
    counts = np.array([2, 1, 0, 0, 3, 2])
    patients = sorted(frames["patient_id"].unique())
    pairs = zip(patients, counts, strict=True)
    duplicated = pd.concat([frames[frames.patient_id == p] for p, c in pairs for _ in range(c)])

    member = pd.Index(patients).get_indexer(frames["patient_id"])
    weights = counts[member][None, :].astype(float)  # a frame weighs what its patient does
    y, p = frames["y"].to_numpy(), frames["probability"].to_numpy()
    weighted = _weighted_metrics(y, p, weights, 0.5)
    plain = binary_metrics(duplicated["y"].to_numpy(), duplicated["probability"].to_numpy())
    for m in METRICS:
        assert weighted[m][0] == pytest.approx(plain[m])


def test_youden_threshold_separates_and_prefers_the_middle():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    chosen = youden_threshold(y, p)
    assert chosen["threshold"] == pytest.approx(0.45) and chosen["youden_j"] == 1.0
    assert youden_threshold(np.array([1, 1]), np.array([0.3, 0.9]))["method"] == "default"


def test_threshold_chosen_on_validation_is_used_unchanged_on_test():
    val = _cohort(10, split="val", seed=1)
    test = _cohort(10, split="test", seed=2)
    val_patients = level_tables(val)["patient"]
    chosen = youden_threshold(val_patients["y"], val_patients["probability"])["threshold"]
    result, tables = evaluate_levels(test, threshold=chosen, n_bootstrap=10)
    for level in LEVELS:
        called = tables[level]["probability"] >= chosen
        expected = np.mean(called == (tables[level]["y"] == 1))
        assert result[level]["accuracy"]["value"] == pytest.approx(expected)
    # A threshold fitted on the test patients themselves differs: the split matters.
    test_patients = tables["patient"]
    assert youden_threshold(test_patients["y"], test_patients["probability"])["threshold"] != (
        pytest.approx(chosen)
    )


def test_summarise_folds_mean_and_spread():
    folds = [evaluate_levels(_cohort(8, seed=s), threshold=0.5, n_bootstrap=5)[0] for s in range(3)]
    summary = summarise_folds(folds)
    values = [f["patient"]["accuracy"]["value"] for f in folds]
    assert summary["patient"]["accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert summary["patient"]["accuracy"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert summary["frame"]["auc"]["n_folds"] == 3


def test_per_patient_thresholds_for_pooled_out_of_fold_predictions():
    frames = _cohort(8)
    patients = sorted(frames["patient_id"].unique())
    one, _ = evaluate_levels(frames, threshold=0.4, n_bootstrap=20)
    same, _ = evaluate_levels(frames, threshold=dict.fromkeys(patients, 0.4), n_bootstrap=20)
    assert one == same
    # Everyone called septic except the patient whose fold's threshold is above every score.
    cuts = dict.fromkeys(patients, 0.0) | {patients[1]: 1.01}
    mixed, _ = evaluate_levels(frames, threshold=cuts, n_bootstrap=5)
    assert mixed["patient"]["confusion"] == {"tp": 3, "fn": 1, "fp": 4, "tn": 0}


def test_paired_difference_of_a_model_with_itself_is_zero_and_detects_a_better_one():
    good = _cohort(20, separation=0.3, seed=4)
    same = paired_difference(good, good, threshold_a=0.5, threshold_b=0.5, n_bootstrap=50)
    assert same["patient"]["auc"] == {"value": 0.0, "interval": [0.0, 0.0], "n_resamples": 50}
    noise = good.assign(probability=np.random.default_rng(5).random(len(good)))
    better = paired_difference(good, noise, threshold_a=0.5, threshold_b=0.5, n_bootstrap=200)
    low, high = better["patient"]["auc"]["interval"]
    assert better["patient"]["auc"]["value"] > 0.3 and low > 0
    with pytest.raises(InputError, match="same patients"):
        paired_difference(good, _cohort(4), threshold_a=0.5, threshold_b=0.5, n_bootstrap=5)


def test_a_perfect_auc_gets_the_binormal_bound_not_a_zero_width_interval():
    # at no separation, perfect order happens once in C(n, n_pos): the bound is 0.5 when that is
    # more likely than alpha (3 + 3 patients: 1/20), and grows with the patients
    assert perfect_separation_auc_bound(3, 3) == 0.5
    bounds = [perfect_separation_auc_bound(n, n) for n in (4, 5, 10, 20)]
    assert bounds == sorted(bounds) and bounds[0] > 0.5
    assert bounds[1] == pytest.approx(0.656, abs=0.005)  # 5 + 5
    assert bounds[2] == pytest.approx(0.866, abs=0.005)  # 10 + 10
    frames = _cohort(10, separation=0.6, videos=1, frames=1)
    frames["probability"] = np.where(frames["y"] == 1, 0.9, 0.1) + 0.001 * np.arange(len(frames))
    metrics, _ = evaluate_levels(frames, threshold=0.5, n_bootstrap=200)
    auc = metrics["patient"]["auc"]
    assert auc["value"] == 1.0 and auc["interval"] == [pytest.approx(0.656, abs=0.005), 1.0]
    assert "perfect separation" in auc["interval_method"]
    unseparated = evaluate_levels(_cohort(10, separation=0.1), threshold=0.5, n_bootstrap=200)[0]
    assert "interval_method" not in unseparated["patient"]["auc"]
