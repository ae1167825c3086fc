"""The HTML report: sections present or marked "not run", images embedded, nothing external,
data escaped, the research statement shown."""

from __future__ import annotations

import json
import re
from html import unescape

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from sepsiscope._io import save_png, write_json, write_table  # noqa: E402
from sepsiscope.classifier.crossval import CrossvalSettings, crossval  # noqa: E402
from sepsiscope.classifier.evaluate import EvaluateSettings  # noqa: E402
from sepsiscope.classifier.scores import evaluate_levels  # noqa: E402
from sepsiscope.cli import app  # noqa: E402
from sepsiscope.data.store import write_sample_array  # noqa: E402
from sepsiscope.layout import STORE_FORMAT_VERSION, CohortLayout, RunLayout, StoreLayout  # noqa: E402
from sepsiscope.reporting.report import ReportSettings, report  # noqa: E402

HOSTILE = "<script>alert(1)</script>"
PATIENTS = [("p-a", "septic", "train"), (HOSTILE, "septic", "test"),
            ("p-c", "non-septic", "train"), ("p-d", "non-septic", "test")]  # fmt: skip
# two cross-validation folds, each one septic and one non-septic patient, and their out-of-fold
# probabilities: fold 0 ranks its pair right, fold 1 wrong (patient AUC 1 and 0, mean 0.5 ± 0.707;
# pooled AUC 3/4 pairs = 0.75; accuracy at 0.5: 1 and 0.5 over folds, 3 of 4 pooled)
FOLDS = (("p-a", "p-c"), (HOSTILE, "p-d"))
OOF_PROBABILITY = {"p-a": 0.8, "p-c": 0.3, HOSTILE: 0.35, "p-d": 0.45}
# the baseline ranks both folds right
BASELINE_PROBABILITY = {"p-a": 0.6, "p-c": 0.4, HOSTILE: 0.6, "p-d": 0.4}


def _png(path, title="figure"):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    save_png(path, fig, dpi=40)


def _store(root, cohort_dir):
    """A two-split store of 4 patients (one video each, 3 samples of 16 px) as ingest writes it."""
    layout = StoreLayout(root)
    rng = np.random.default_rng(0)
    videos, frames = [], []
    for i, (patient, label, _split) in enumerate(PATIENTS):
        video_id = f"v{i}"
        write_sample_array(layout, video_id, rng.integers(0, 255, (3, 3, 16, 16), dtype=np.uint8))
        y = int(label == "septic")
        videos.append(
            dict(video_id=video_id, patient_id=patient, label=label, y=y, site="sublingual",
                 camera="microscan", path=str(cohort_dir / "videos" / f"{video_id}.avi"),
                 um_per_px=1.2, fps=25.0, n_frames=25, n_samples=3, usable=True)
        )  # fmt: skip
        for row in range(3):
            frames.append(
                dict(video_id=video_id, row=row, patient_id=patient, label=label, y=y,
                     frame_index=row * 8, time_s=row * 0.32, tile=0, um_per_px=4.0,
                     usable=row < 2)
            )  # fmt: skip
    write_table(layout.videos, pd.DataFrame(videos))
    write_table(layout.frames, pd.DataFrame(frames))
    write_table(layout.failures, pd.DataFrame([{"video": "bad.avi", "patient_id": "p-x",
                                                 "reason": "zero-byte file"}]))  # fmt: skip
    splits = {s: [p for p, _, sp in PATIENTS if sp == s] for s in ("train", "val", "test")}
    splits["folds"] = [list(fold) for fold in FOLDS]
    write_json(layout.splits, splits)
    manifest = pd.DataFrame({"patient_id": [p for p, _, _ in PATIENTS],
                             "video": [v["path"] for v in videos]})  # fmt: skip
    manifest.to_csv(layout.manifest, index=False)
    write_json(layout.meta, {"format_version": STORE_FORMAT_VERSION, "settings": {"size": 16}})
    return frames


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with the artifacts of train, evaluate, crossval, embed, autoencode, measure."""
    base = tmp_path_factory.mktemp("report")
    cohort = CohortLayout(base / "cohort")
    cohort.videos.mkdir(parents=True)
    cohort.truth.write_text("video\n")
    cohort.vessels.write_text("{}")
    frames = pd.DataFrame(_store(base / "store", cohort.root))
    run = RunLayout(base / "run")
    run.classifier.mkdir(parents=True)
    run.model.write_bytes(b"")
    pd.DataFrame(
        {"epoch": [0, 0, 1, 1], "step": [1, 1, 3, 3], "train_loss": [0.7, None, 0.5, None],
         "val_loss": [None, 0.69, None, 0.6], "val_auc": [None, 0.6, None, 0.8]}
    ).to_csv(run.train_log, index=False)  # fmt: skip
    write_json(run.model_settings, {"settings": {"epochs": 2, "store": str(base / "store")}})
    write_json(run.threshold, {"threshold": 0.5})
    test = frames[frames["patient_id"].isin([HOSTILE, "p-d"])].copy()
    test["probability"] = np.where(test["y"] == 1, 0.8, 0.3)
    metrics, tables = evaluate_levels(test, threshold=0.5, n_bootstrap=50)
    write_json(run.evaluation / "metrics.json", {**metrics, "split": "test"})
    write_table(run.evaluation / "patients.parquet", tables["patient"])
    _png(run.evaluation / "roc.png", "ROC")
    write_json(run.embedding / "val" / "scores.json", {"silhouette": {"label": 0.31}})
    _png(run.embedding / "val" / "tsne_by_label.png", "t-SNE")
    ae = run.autoencoder / "b1152"
    ae.mkdir(parents=True)
    pd.DataFrame({"epoch": [1, 2], "val_mse": [0.02, 0.01]}).to_csv(ae / "history.csv", index=False)
    for epoch in (1, 2):
        _png(ae / "reconstructions" / f"epoch_{epoch:03d}.png", f"epoch {epoch}")
    measured = pd.DataFrame({"video_id": ["v0", "v1", "v2", "v3"],
                             "tvd_mm_per_mm2": [15.0, 14.0, 16.0, 17.0],
                             "ppv_percent": [70.0, 75.0, 98.0, 97.0],
                             "mfi": [2.1, 2.3, 3.0, 2.9]})  # fmt: skip
    write_table(run.measurements / "videos.parquet", measured)
    _crossval(run, frames, base / "store")
    return run.root


def _crossval(run: RunLayout, frames: pd.DataFrame, store) -> None:
    """The real ``crossval`` into the same run, on folds whose training and evaluation are done
    (crossval keeps finished folds), so its metrics.json and tables are exactly what it writes."""
    for i, fold_patients in enumerate(FOLDS):
        fold = run.fold(i)
        fold.classifier.mkdir(parents=True)
        fold.model.write_bytes(b"")
        saved = {"store": str(store), "settings": {"fold": i, "input_mode": "time"}}
        write_json(fold.model_settings, saved)
        held = frames[frames["patient_id"].isin(fold_patients) & frames["usable"]].copy()
        held["split"] = "test"
        baseline = held.assign(probability=held["patient_id"].map(BASELINE_PROBABILITY))
        held["probability"] = held["patient_id"].map(OOF_PROBABILITY)
        metrics, _ = evaluate_levels(held, threshold=0.5, n_bootstrap=20)
        base_metrics, _ = evaluate_levels(baseline, threshold=0.5, n_bootstrap=20)
        document = {**metrics, "threshold": {"threshold": 0.5}, "baseline": base_metrics}
        write_json(fold.evaluation_metrics, document)
        write_table(fold.evaluation_frames, held)
    settings = CrossvalSettings(evaluate=EvaluateSettings(n_bootstrap=50))
    crossval(store, run.root, settings, quiet=True)


@pytest.fixture(scope="module")
def built(run_dir):
    result = report(run_dir, ReportSettings(), quiet=True)
    return result, (run_dir / "report.html").read_text(encoding="utf-8")


def test_sections_present_or_marked_not_run(built):
    result, html = built
    assert result["report"].endswith("report.html")
    for anchor in ("cohort", "training", "evaluation", "crossval", "embedding", "autoencoder",
                   "microcirculation", "patients", "provenance"):  # fmt: skip
        assert result["sections"][anchor] == "ok", anchor
        assert f'<section id="{anchor}">' in html
    assert result["sections"]["clusters"] == "not run"
    assert "Not run." in html and "sepsiscope cluster RUN" in html


def test_images_embedded_and_nothing_external(built):
    _, html = built
    # stored samples, training curves, ROC, t-SNE, 2 reconstructions, box plots, history
    assert html.count('src="data:image/png;base64,') >= 8
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html, re.I)
    assert "<script" not in html.lower().replace("&lt;script", "")
    assert "<link" not in html.lower()


def test_hostile_patient_id_is_escaped(built):
    _, html = built
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_research_statement_and_synthetic_detected(built):
    result, html = built
    assert result["synthetic"] is True
    assert "not a medical device" in html and "diagnosis" in html
    assert "synthetic" in html.lower()


def test_numbers_come_from_the_artifacts(built):
    _, html = built
    # patient-level AUC of the test split is 1.0 (septic 0.8 vs non-septic 0.3)
    assert "1.000" in html
    # cohort table: 2 usable frames per patient, one exclusion each; the failure's reason
    assert "zero-byte file" in html
    # class medians of PPV: septic 72.5, non-septic 97.5
    assert "72.5" in html and "97.5" in html


def test_cli_json_and_missing_run(run_dir, tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["report"] == str(out) and out.exists()
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2
    assert "sepsiscope train" in res.output


def test_empty_run_says_not_run_everywhere(tmp_path):
    (tmp_path / "run").mkdir()
    result = report(tmp_path / "run", ReportSettings(synthetic=False), quiet=True)
    assert set(result["sections"].values()) == {"not run"}
    html = (tmp_path / "run" / "report.html").read_text()
    assert "not a medical device" in html and "Synthetic data." not in html


def test_a_broken_artifact_costs_only_its_section(tmp_path):
    run = RunLayout(tmp_path / "run")
    run.evaluation.mkdir(parents=True)
    (run.evaluation / "metrics.json").write_text("{ not json")
    result = report(run.root, ReportSettings(), quiet=True)
    html = run.report.read_text()
    assert result["sections"]["evaluation"] == "not run"
    assert "could not be drawn" in html and "sepsiscope train" in html


def _section(html: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">.*?</section>', html, re.S).group(0)


def test_crossval_section_shows_pooled_folds_and_baseline(built):
    _, html = built
    body = _section(html, "crossval")
    assert "2 folds, 4 patients (2 septic, 2 non-septic)" in body
    # patient level first, then video and frame
    assert body.index("Patient level") < body.index("Video level") < body.index("Frame level")
    patient = body[body.index("Patient level") : body.index("Video level")]
    rows = {r.split("</td>")[0].split(">")[-1]: r for r in patient.split("<tr>")[2:]}
    auc, accuracy = rows["auc"], rows["accuracy"]
    assert auc.count("0.750") == 1 and "[" in auc  # pooled, with its interval
    assert "0.500 ± 0.707" in auc and "0.000 to 1.000 (2 folds)" in auc  # over folds
    assert "1.000 ± 0.000" in auc  # the baseline ranks both folds right
    assert accuracy.startswith("<td>accuracy</td><td>0.750") and "0.750 ± 0.354" in accuracy
    assert "4 / 4" in rows["n (cases / patients)"]
    assert "Per fold" in body and HOSTILE not in body


def test_crossval_beside_train_keeps_the_classifier_and_patients_gain_oof(built, run_dir):
    _, html = built
    # the run's own classifier and evaluation are untouched by crossval into the same folder
    assert (run_dir / "classifier" / "model.safetensors").read_bytes() == b""
    assert json.loads((run_dir / "evaluation" / "metrics.json").read_text())["split"] == "test"
    patients = _section(html, "patients")
    assert "out-of-fold probability" in patients and "0.450" in patients
    assert "<h3>crossval" in _section(html, "provenance")


def test_crossval_only_run(run_dir, tmp_path):
    import shutil

    run = RunLayout(tmp_path / "cv")
    for name in ("folds", "crossval"):
        shutil.copytree(run_dir / name, run.root / name)
    result = report(run.root, ReportSettings(), quiet=True)
    # the store is found through the folds' training settings
    assert result["store"] == str(run_dir.parent / "store")
    assert result["sections"]["crossval"] == "ok"
    assert result["sections"]["training"] == result["sections"]["evaluation"] == "not run"
    html = run.report.read_text()
    assert "0.500 ± 0.707" in _section(html, "crossval")
    assert "out-of-fold probability" in _section(html, "patients")


def test_missing_crossval_names_its_command(tmp_path):
    (tmp_path / "run").mkdir()
    report(tmp_path / "run", ReportSettings(synthetic=False), quiet=True)
    body = _section((tmp_path / "run" / "report.html").read_text(), "crossval")
    assert "Not run." in body and "sepsiscope crossval --store STORE --out RUN" in body


@pytest.mark.parametrize("gated", [False, True])
def test_cohort_says_short_videos_are_recorded_not_excluded_and_when_none_failed(tmp_path, gated):
    from sepsiscope.reporting._sections import Context, cohort

    store = StoreLayout(tmp_path / "store")
    cohort_dir = CohortLayout(tmp_path / "cohort").root
    _store(store.root, cohort_dir)
    videos = pd.read_parquet(store.videos)
    videos["duration_score"] = [10, 0, 10, 0]  # two videos shorter than min_duration_s
    videos["usable"] = [not gated, True, not gated, True]
    write_table(store.videos, videos)
    write_table(store.failures, pd.DataFrame(columns=["video", "patient_id", "reason"]))
    settings = {"size": 16, "min_duration_s": 3.0, "duration_gate": gated}
    write_json(store.meta, {"format_version": STORE_FORMAT_VERSION, "settings": settings})
    html, ran = cohort(Context(run=RunLayout(tmp_path / "run"), store_dir=store.root,
                               measurements_dir=None))  # fmt: skip
    html = unescape(html)
    assert ran and "None." not in html and "could not be ingested" not in html
    assert "Every video of the manifest could be read and ingested (4 videos; none failed)" in html
    if gated:
        assert "2 videos under the minimum duration were excluded (duration_gate)" in html
        assert "<th>duration</th>" in html
    else:
        assert "2 videos are shorter than 3 s and score 10 on Massey's duration part" in html
        assert "not a reason to exclude them" in html and "<th>duration</th>" not in html


def test_the_cohort_section_notes_videos_of_unknown_scale():
    from sepsiscope.reporting._sections import _unknown_scale

    videos = pd.DataFrame({"video_id": ["a", "b", "c"], "um_per_px": [1.0, float("nan"), None]})
    note = _unknown_scale(videos)
    assert "2 of 3 videos have no µm/px" in note and "cannot be measured" in note
    assert _unknown_scale(videos.assign(um_per_px=1.0)) == ""


def test_the_report_reads_measures_table_not_its_per_video_files(tmp_path):
    from sepsiscope.layout import MeasurementLayout
    from sepsiscope.reporting._sections import Context

    layout = MeasurementLayout(tmp_path / "m")
    layout.per_video.mkdir(parents=True)
    rows = pd.DataFrame({"video_id": ["a", "b", "c"], "tvd_mm_per_mm2": [10.0, 11.0, 12.0],
                         "status": "ok"})  # fmt: skip
    rows.iloc[:1].to_parquet(layout.per_video_row("a"))  # resume files sort first by name
    rows.to_parquet(layout.videos)
    ctx = Context(run=RunLayout(tmp_path / "run"), store_dir=None, measurements_dir=layout.root)
    assert list(ctx.measurements["video_id"]) == ["a", "b", "c"]


def test_simulated_measurements_are_compared_with_the_truth(tmp_path):
    from sepsiscope.reporting._agreement import truth_agreement

    cohort = tmp_path / "cohort"
    (cohort / "videos").mkdir(parents=True)
    truth = pd.DataFrame({
        "video": [f"videos/v{i}.avi" for i in range(5)],
        "tvd_mm_per_mm2": [10.0, 12, 14, 16, 18], "mfi": [3, 3, 2, 2, 1],
    })  # fmt: skip
    truth.to_csv(cohort / "truth.csv", index=False)
    measured = pd.DataFrame({
        "video_id": [f"v{i}" for i in range(5)], "status": "ok",
        "video": [str(cohort / "videos" / f"v{i}.avi") for i in range(5)],
        "tvd_mm_per_mm2": [9.0, 11.5, 14.5, 15.0, 17.0], "mfi": [3, 2.75, 2, 2, 1.25],
    })  # fmt: skip
    html = truth_agreement(measured)
    assert "Agreement with the simulator" in html and "ICC(2,1)" in html and "<img" in html
    assert "-0.6" in html  # TVD bias: mean of (-1, -0.5, 0.5, -1, -1) = -0.6
    assert truth_agreement(measured.assign(video=["/elsewhere/v.avi"] * 5)) == ""


def test_the_study_table_of_benchmarks_ablation_is_shown_in_the_crossval_section(run_dir, tmp_path):
    import shutil

    from _benchmarks import load_benchmark

    ablation = load_benchmark("ablation")
    product = RunLayout(tmp_path / "cv")
    for name in ("folds", "crossval"):
        shutil.copytree(run_dir / name, product.root / name)
    # a "variant" that is the product itself: its paired difference must be exactly zero
    shutil.copytree(run_dir / "crossval", tmp_path / "abl" / "no_augmentation" / "crossval")
    table = ablation.study_table(product, tmp_path / "abl", plain=None, interpretation=None)
    table.to_csv(product.study, index=False)
    rows = table.set_index("model")
    pooled = json.loads(product.crossval_metrics.read_text())["pooled"]["patient"]["auc"]
    product_row = rows.iloc[0]
    assert product_row.name.startswith("the network") and "time channels" in product_row.name
    assert product_row["patient AUC [95 % CI]"].startswith(f"{pooled['value']:.2f}")
    assert rows.loc[ablation.LABELS["no augmentation"], "Δ patient AUC vs product [95 % CI]"] == (
        "+0.00 [+0.00, +0.00]"
    )
    # crossval's baseline ranks both folds right: patient AUC 1 in each
    baseline = [m for m in rows.index if m.startswith("logistic baseline")]
    assert rows.loc[baseline[0], "patient AUC [95 % CI]"] == "1.00 ± 0.00"
    assert not any(label.endswith("instead") for label in rows.index)  # other input: never run
    report(product.root, ReportSettings(), quiet=True)
    body = _section(product.report.read_text(), "crossval")
    assert "The study: each model and each choice" in body
    assert "no augmentation (no flips" in body and "+0.00 [+0.00, +0.00]" in body


def test_interprets_notes_are_shown_beside_its_table(tmp_path):
    from sepsiscope.layout import MeasurementLayout
    from sepsiscope.reporting._results import _interpretable

    out = MeasurementLayout(tmp_path).interpret
    out.auc.parent.mkdir(parents=True)
    pd.DataFrame([{"model": "metrics (logistic regression)", "n_patients": 16, "auc": 0.9}]).to_csv(
        out.auc, index=False
    )
    write_json(out.result, {"notes": ["network and combined models not fitted: only 2 patients"]})
    html = unescape(_interpretable(tmp_path))
    assert "Note: network and combined models not fitted: only 2 patients" in html
