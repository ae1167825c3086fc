"""The report's sections on results per patient: cross-validation, microcirculation metrics, the
patient table and provenance. Each returns (HTML body, present?)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sepsiscope._io import read_json, read_table
from sepsiscope.classifier.scores import LEVELS, METRICS
from sepsiscope.layout import MeasurementLayout, RunLayout
from sepsiscope.reporting import _html as H
from sepsiscope.reporting import _sections as S
from sepsiscope.reporting._agreement import truth_agreement
from sepsiscope.reporting._sections import CLASS_COLOURS, Context, _interval, mpl

# consensus metrics shown by class, in this order, when the measurement table has them
MICRO_METRICS = (
    "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "pvd_mm_per_mm2", "ppv_percent", "mfi",
    "de_backer_per_mm", "n_vessels", "n_segments", "total_length_mm", "mean_velocity_um_per_s",
)  # fmt: skip
PATIENT_METRICS = ("tvd_mm_per_mm2", "ppv_percent", "pvd_mm_per_mm2", "mfi")
STAGES_WITH_SETTINGS = (
    "classifier", "evaluation", "crossval", "embedding", "autoencoder", "clusters",
)  # fmt: skip


def crossval(ctx: Context) -> tuple[str, bool]:
    """``sepsiscope crossval``'s metrics.json: per level, the pooled out-of-fold value with its
    interval, mean ± SD over folds and the baseline's mean ± SD; then one row per fold."""
    from sepsiscope.classifier.ensemble import crossval_model

    kind = crossval_model(ctx.run.root)
    # an ensemble's or a refit's honest figures are its cross-validation's (the folder above it)
    layout = RunLayout(ctx.run.root.parent) if kind else ctx.run
    path = layout.crossval_metrics
    if not path.exists():
        return H.not_run("cross-validation", "sepsiscope crossval --store STORE --out RUN"), False
    document = read_json(path)
    pooled, folds = document["pooled"], document["folds"]
    baseline = document.get("baseline_folds") or {}
    n_folds = document.get("n_folds", len(document.get("per_fold", [])))
    n = pooled.get("patient", {}).get("n", {})
    parts = [
        H.note(
            (
                f"This run is the ensemble of these {n_folds} fold models (their logits averaged), "
                "its threshold fixed on the pooled out-of-fold predictions; the figures below are "
                "its honest ones: no patient of the cohort is new to the ensemble itself. "
                if kind == "ensemble"
                else "This run is one network refit on every patient of this cross-validation "
                "for the epoch count its folds kept, its threshold fixed on the pooled "
                "out-of-fold predictions; nothing judged it, so the figures below, of its "
                "folds, are its honest ones. "
                if kind == "refit"
                else ""
            )
            + f"{n_folds} folds, {n.get('patients', '?')} patients ({n.get('septic', '?')} septic, "
            f"{n.get('non_septic', '?')} non-septic). The folds are grouped by patient and "
            "stratified by label: each patient is held out by exactly one fold, whose model never "
            "saw it and whose threshold was fixed on that model's own validation patients. "
            "Pooled: the out-of-fold predictions of all patients together, each called at "
            "its fold's threshold, with 95 % bootstrap intervals resampling patients. "
            "Over folds: mean ± SD of the per-fold values (min to max below them)."
        )
    ]
    missing = document.get("patients_without_usable_frames") or []
    if missing:
        parts.append(
            H.warning(f"{len(missing)} patients had no usable frames and no out-of-fold score.")
        )
    for level in reversed(LEVELS):  # patient level first: the one that counts
        if level not in pooled:
            continue
        parts.append(f"<h3>{H.esc(level.capitalize())} level</h3>")
        table = _crossval_table(pooled[level], folds.get(level, {}), baseline.get(level))
        parts.append(H.table(table))
    if baseline:
        parts.append(
            H.note(
                "baseline: logistic regression on simple frame statistics, fitted on each fold's "
                "training patients; mean ± SD over folds."
            )
        )
    if isinstance(document.get("calibration"), dict):
        parts.append(S.calibration_table(
            document["calibration"],
            "each patient by its fold's own temperature, fitted on that fold's validation "
            "patients, never on the patients it is judged on",
        ))  # fmt: skip
    if layout.study.exists():
        parts.append(_study(layout.study))
    per_fold = document.get("per_fold") or []
    if per_fold:
        rows = [
            {
                "fold": i,
                "patients": f.get("patient", {}).get("n", {}).get("patients"),
                **{f"patient {m}": f.get("patient", {}).get(m, {}).get("value")
                   for m in ("auc", "accuracy", "sensitivity", "specificity")},
            }
            for i, f in enumerate(per_fold)
        ]  # fmt: skip
        parts.append("<h3>Per fold (patient level, held-out patients)</h3>")
        parts.append(H.table(pd.DataFrame(rows)))
    return "".join(parts), True


def _study(path: Path) -> str:
    """benchmarks/ablation.py's table: every model and every choice left out, on these folds."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return (
        "<h3>The study: each model and each choice, on these patients</h3>"
        + H.table(table)
        + H.note(
            "Written by benchmarks/ablation.py: one full cross-validation per choice left out, on "
            "the same store and folds, pooled out of fold; the difference to the product is "
            "paired (the same patients resampled together). The ensemble's gain cannot be "
            "measured out of fold (its members together saw every patient), so its row is on "
            "new patients. docs/evaluation.md reads the table."
        )
    )


def _spread(entry: Any) -> H.Raw | None:
    """``mean ± SD`` over folds, the range below it; a dash when no fold had a value."""
    if not isinstance(entry, dict) or entry.get("mean") is None:
        return H.Raw("&ndash;")
    text = f"{entry['mean']:.3f}"
    if entry.get("std") is not None:
        text += f" ± {entry['std']:.3f}"
    if entry.get("min") is not None and entry.get("max") is not None:
        text += f"<br><small>{entry['min']:.3f} to {entry['max']:.3f}"
        text += f" ({entry.get('n_folds', '?')} folds)</small>"
    return H.Raw(text)


def _crossval_table(
    pooled: dict[str, Any], folds: dict[str, Any], baseline: dict[str, Any] | None
) -> pd.DataFrame:
    rows = []
    for m in METRICS:
        row = {
            "metric": m,
            "pooled out-of-fold [95 % interval]": H.Raw(_interval(pooled.get(m))),
            "network over folds (mean ± SD)": _spread(folds.get(m)),
        }
        if baseline:
            row["baseline over folds (mean ± SD)"] = _spread(baseline.get(m))
        rows.append(row)
    n = pooled.get("n", {})
    cases = f"{n.get('cases')} / {n.get('patients')}"
    rows.append({"metric": "n (cases / patients)", "pooled out-of-fold [95 % interval]": cases})
    return pd.DataFrame(rows)


def microcirculation(ctx: Context) -> tuple[str, bool]:
    table = ctx.measurements
    if table is None:
        command = "sepsiscope measure MANIFEST --out RUN/measurements"
        elsewhere = H.note(
            "Measured into another folder? `sepsiscope report RUN --measurements FOLDER`."
        )
        return H.not_run("microcirculation measurements", command) + elsewhere, False
    folder = ctx.measurements_dir
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    present = [m for m in MICRO_METRICS if m in ok.columns and ok[m].notna().any()]
    failed = folder / "failures.csv"
    failures = pd.read_csv(failed) if failed.exists() else pd.DataFrame()
    total = len(table) + len(failures)
    parts = [
        H.note(
            f"{len(ok)} of {total} videos measured by `sepsiscope measure` (automatic "
            f"segmentation and flow analysis); {len(table) - len(ok)} failed a quality check "
            f"and {len(failures)} could not be analysed (listed below); neither has numbers."
        )
    ]
    if "label" in ok.columns and present:
        parts.append("<h3>By class: median [interquartile range] of the per-video values</h3>")
        parts.append(H.table(_class_summary(ok, present)))
        parts.append(_metric_boxplots(ok, present))
    else:
        parts.append(H.note("The measurements carry no labels, so no comparison by class."))
    parts.append(truth_agreement(table))
    parts.append(_interpretable(folder))
    hi = folder / "patients.parquet"
    if hi.exists():
        parts.append("<h3>Heterogeneity across sites, per patient</h3>")
        parts.append(H.table(read_table(hi)))
    parts.append(_measure_figures(folder, table, ctx.max_images))
    if len(failures):
        parts.append("<h3>Videos that could not be measured</h3>" + H.table(failures))
    keep = [c for c in ("video_id", "patient_id", "label", "site", "camera", "status",
                        "quality_flags", "warnings", "message", "blurred_length_percent",
                        "velocity_unfollowed_length_percent")
            if c in table.columns]  # fmt: skip
    parts.append("<h3>Per video</h3>" + H.table(table[keep + present]))
    return "".join(parts), True


def _class_summary(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    rows = []
    for m in metrics:
        row: dict[str, Any] = {"metric": m}
        for label, group in table.groupby("label", sort=True):
            values = group[m].dropna()
            if len(values):
                q1, q2, q3 = np.percentile(values, [25, 50, 75])
                row[label] = H.Raw(f"{q2:.3g}<br><small>[{q1:.3g}, {q3:.3g}]</small>")
            row[f"n {label}"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def _interpretable(folder: Path) -> str:
    """``sepsiscope interpret``'s AUC table (metrics, network, both) and coefficients."""
    out = MeasurementLayout(folder).interpret
    if not out.auc.exists():
        return "<h3>Interpretable classifier</h3>" + H.not_run(
            "interpretable classifier", "sepsiscope interpret RUN/measurements --run RUN"
        )
    parts = [
        "<h3>Interpretable classifier: the metrics, the network and both</h3>",
        H.note(
            "Patient-level logistic regression on the consensus metrics, cross-validated over "
            "patients; the combined model adds the network's patient probability (out of fold "
            "or held out, never in-sample). n_patients: the patients behind each AUC; "
            "auc_low and auc_high: its 95 % interval from 1000 patient resamples. Rows on the "
            "same patients compare like for like."
        ),
        H.table(pd.read_csv(out.auc)),
    ]
    if out.result.exists():  # e.g. why the combined model was not fitted
        parts += [H.note(f"Note: {note}") for note in read_json(out.result).get("notes", [])]
    if out.coefficients.exists():
        parts.append(H.note("Standardised coefficients (log-odds of sepsis per SD of a metric):"))
        parts.append(H.table(pd.read_csv(out.coefficients)))
    return "".join(parts)


def _measure_figures(folder: Path, table: pd.DataFrame, max_images: int) -> str:
    """A few vessel overlays and space-time diagrams, alternating classes."""
    if "video_id" not in table.columns:
        return ""
    order = table.sort_values([c for c in ("label", "video_id") if c in table.columns])
    if "label" in order.columns:  # interleave the classes so both are shown
        order = order.assign(_rank=order.groupby("label").cumcount()).sort_values("_rank")
    items = []
    for sub, caption in (("overlays", "segments coloured by flow"), ("kymographs", "space-time")):
        shown = 0
        for row in order.itertuples(index=False):
            path = folder / sub / f"{row.video_id}.png"
            if path.exists() and shown < min(2, max_images):
                text = f"{row.video_id} ({getattr(row, 'label', '')}): {caption}"
                # an overlay at the video's own resolution: a reader must see each capillary
                data = path.read_bytes() if sub == "overlays" else H.png_file_bytes(path)
                items.append(H.image(data, text, wide=sub == "overlays"))
                shown += 1
    return ("<h3>Vessels and flow of a few videos</h3>" + H.gallery(items)) if items else ""


def _metric_boxplots(table: pd.DataFrame, metrics: list[str]) -> str:
    plt = mpl()
    labels = sorted(table["label"].dropna().unique())
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.0 * nrows), squeeze=False)
    for ax, m in zip(axes.ravel(), metrics, strict=False):
        data = [table.loc[table["label"] == lab, m].dropna().to_numpy() for lab in labels]
        box = ax.boxplot(data, patch_artist=True, widths=0.6)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
        for patch, lab in zip(box["boxes"], labels, strict=True):
            patch.set_facecolor(CLASS_COLOURS.get(lab, "0.7"))
            patch.set_alpha(0.55)
        for i, values in enumerate(data, start=1):
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(values))
            ax.plot(i + jitter, values, "k.", markersize=3, alpha=0.6)
        ax.set_title(m, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    return H.image(H.figure_png(fig), "Consensus metrics per video, by class", wide=True)


def patients(ctx: Context) -> tuple[str, bool]:
    table = _patient_table(ctx)
    if table is None:
        return H.not_run("patients", "sepsiscope ingest MANIFEST --store STORE"), False
    return H.table(table), True


def _patient_table(ctx: Context) -> pd.DataFrame | None:
    parts: list[pd.DataFrame] = []
    if ctx.store is not None:
        videos, frames = ctx.store.videos, ctx.store.frames
        base = videos.groupby("patient_id").agg(
            label=("label", "first"), split=("split", "first"), videos=("video_id", "size")
        )
        base["frames used"] = frames[frames["usable"]].groupby("patient_id").size()
        base["frames used"] = base["frames used"].fillna(0).astype(int)
        parts.append(base)
    scored = ctx.run.evaluation / "patients.parquet"
    if scored.exists():
        probs = pd.read_parquet(scored)
        probs["patient_id"] = probs["patient_id"].astype(str)
        probs = probs.set_index("patient_id")
        keep = probs[["probability"]].copy()
        if not parts:
            keep = probs[[c for c in ("label", "split", "probability") if c in probs]].copy()
        if ctx.threshold is not None:
            verdict = np.where(keep["probability"] >= ctx.threshold, "septic", "non-septic")
            keep["verdict"] = verdict
        parts.append(keep)
    if ctx.run.oof_patients.exists():
        oof = read_table(ctx.run.oof_patients)
        oof["patient_id"] = oof["patient_id"].astype(str)
        oof = oof.set_index("patient_id")
        keep = oof[["probability", "fold"]].rename(
            columns={"probability": "out-of-fold probability", "fold": "held out by fold"}
        )
        if not parts:
            keep.insert(0, "label", oof["label"])
        parts.append(keep)
    measured = ctx.measurements
    if measured is not None and "patient_id" in measured.columns:
        present = [m for m in PATIENT_METRICS if m in measured.columns]
        if present:
            parts.append(measured.groupby("patient_id")[present].mean())
    if not parts:
        return None
    table = pd.concat(parts, axis=1, join="outer").reset_index(names="patient_id")
    if "verdict" in table and "label" in table:
        table["verdict"] = [
            H.Raw(f"<span class='{H.esc(v)}'>{H.esc(v)}</span>" + (" ✓" if v == lab else " ✗"))
            if isinstance(v, str)
            else None
            for v, lab in zip(table["verdict"], table["label"], strict=True)
        ]
    return table.sort_values([c for c in ("split", "patient_id") if c in table.columns])


def provenance(ctx: Context) -> tuple[str, bool]:
    folders = [
        ("store", ctx.store_dir / "store.json" if ctx.store_dir else None),
        *[(name, getattr(ctx.run, name) / "settings.json") for name in STAGES_WITH_SETTINGS],
        ("measurements", ctx.measurements_dir / "settings.json" if ctx.measurements_dir else None),
    ]
    parts = []
    versions: dict[str, Any] = {}
    for name, path in folders:
        if path is None or not path.exists():
            continue
        saved = read_json(path)
        versions = saved.get("versions", versions)
        when = saved.get("created_utc", "")
        parts.append(f"<h3>{H.esc(name)} <span class='note'>{H.esc(when)}</span></h3>")
        parts.append(H.key_values(saved.get("settings", {})))
    if not parts:
        return H.note("No stage saved its settings in this run."), False
    head = f"<h3>Package versions</h3>{H.key_values(versions)}" if versions else ""
    return head + "".join(parts), True
