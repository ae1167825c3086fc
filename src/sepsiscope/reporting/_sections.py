"""The report's sections: each reads one stage's artifacts and returns (HTML body, present?).

A section never recomputes a result; it shows the tables and figures its stage wrote, and draws a
figure itself only from a stage's table (training curves, metric box plots, sample frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sepsiscope._io import read_json, read_table
from sepsiscope.classifier.scores import LEVELS, METRICS
from sepsiscope.layout import MeasurementLayout, RunLayout
from sepsiscope.reporting import _html as H

_NOT_SHOWN = ("files", "versions", "python", "platform", "created_utc", "settings", "run_dir")
CLASS_COLOURS = {"non-septic": "#4c72b0", "septic": "#c44e52"}


@dataclass
class Context:
    """What every section may read."""

    run: RunLayout
    store_dir: Path | None
    measurements_dir: Path | None
    max_images: int = 12
    _cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def store(self) -> Any:
        if self.store_dir is None:
            return None
        from sepsiscope.data.store import FrameStore

        return FrameStore(self.store_dir)

    @cached_property
    def threshold(self) -> float | None:
        path = self.run.threshold
        return float(read_json(path)["threshold"]) if path.exists() else None

    @cached_property
    def measurements(self) -> pd.DataFrame | None:
        """measure's per-video table with label and patient_id added from the store if missing."""
        if self.measurements_dir is None:
            return None
        videos = MeasurementLayout(self.measurements_dir).videos
        if videos.exists():
            table = read_table(videos)
        else:  # a folder laid out otherwise (copied by hand): its per-video table, wherever
            table = _find_table(self.measurements_dir, "tvd_mm_per_mm2", prefer="video")
        if table is None:
            return None
        return _with_labels(table, self.store)


# --- helpers -------------------------------------------------------------------------------------


def _pngs(folder: Path, max_images: int, *, recursive: bool = True) -> list[Path]:
    """PNGs under ``folder``, sorted, at most ``max_images`` spread evenly (first and last kept)."""
    found = folder.rglob("*.png") if recursive else folder.glob("*.png")
    files = sorted(p for p in found if "checkpoint" not in str(p))
    if len(files) <= max_images:
        return files
    keep = np.unique(np.linspace(0, len(files) - 1, max_images).round().astype(int))
    return [files[i] for i in keep]


def _png_gallery(folder: Path, files: list[Path], *, wide: bool = False) -> str:
    return H.gallery(
        H.image(H.png_file_bytes(p), str(p.relative_to(folder)), wide=wide) for p in files
    )


def _summaries(folder: Path, skip: tuple[str, ...] = ("settings.json", "features.json")) -> str:
    """Every JSON summary a stage wrote (other than its settings), as name/value tables."""
    parts = []
    for path in sorted(folder.glob("*.json")):
        if path.name in skip:
            continue
        try:
            data = read_json(path)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not data:
            continue
        # lists of records (a k sweep, a bottleneck sweep) read better as their own tables
        records = {
            k: v
            for k, v in data.items()
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
        }
        scalars = {k: v for k, v in data.items() if k not in records and k not in _NOT_SHOWN}
        parts.append(f"<h4>{H.esc(path.name)}</h4>{H.key_values(scalars)}")
        for name, rows in records.items():
            parts.append(f"<h4>{H.esc(path.name)}: {H.esc(name)}</h4>")
            parts.append(H.table(pd.DataFrame(rows)))
    return "".join(parts)


def _find_table(folder: Path, column: str, *, prefer: str = "") -> pd.DataFrame | None:
    """The first Parquet (else CSV) table under ``folder`` holding ``column``."""
    files = sorted(folder.rglob("*.parquet")) + sorted(folder.rglob("*.csv"))
    cache = MeasurementLayout(folder).per_video  # one video each: never the table wanted here
    files = [p for p in files if cache not in p.parents]
    files.sort(key=lambda p: (prefer not in p.name, p.suffix != ".parquet", str(p)))
    for path in files:
        try:
            table = read_table(path)
        except Exception:  # noqa: BLE001 - an unreadable side file is not this table
            continue
        if column in table.columns:
            return table
    return None


def _with_labels(table: pd.DataFrame, store: Any) -> pd.DataFrame:
    table = table.copy()
    if store is not None and not {"label", "patient_id"} <= set(table.columns):
        videos = store.videos
        key = next((k for k in ("video_id", "path") if k in table.columns), None)
        if key is None and "video" in table.columns:
            table["video_id"] = table["video"].map(lambda v: Path(str(v)).stem)
            key = "video_id"
        if key is not None:
            lookup = videos.set_index(key if key in videos.columns else "video_id")
            for column in ("label", "patient_id", "split"):
                if column not in table.columns and column in lookup.columns:
                    table[column] = table[key].map(lookup[column])
    if "patient_id" in table.columns:
        table["patient_id"] = table["patient_id"].astype(str)
    return table


def mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- sections ------------------------------------------------------------------------------------


def cohort(ctx: Context) -> tuple[str, bool]:
    store = ctx.store
    if store is None:
        return H.not_run("frame store", "sepsiscope ingest MANIFEST --store STORE"), False
    videos, frames = store.videos, store.frames
    rows = []
    for (split, label), group in videos.groupby(["split", "label"], sort=True):
        in_frames = frames[(frames["split"] == split) & (frames["label"] == label)]
        rows.append(
            {
                "split": split,
                "label": label,
                "patients": group["patient_id"].nunique(),
                "videos": len(group),
                "frames used": int(in_frames["usable"].sum()),
                "frames excluded (quality)": int((~in_frames["usable"]).sum()),
                "videos excluded (quality)": int((~group["usable"]).sum())
                if "usable" in group
                else 0,
            }
        )
    counts = pd.DataFrame(rows)
    if len(counts):
        total = counts.drop(columns=["split", "label"]).sum()
        total["patients"] = videos["patient_id"].nunique()
        counts.loc[len(counts)] = {"split": "all", "label": "all", **total.to_dict()}
    failures = store.failures
    body = [
        H.table(counts),
        _unknown_scale(videos),
        _quality(ctx),
        H.note(
            f"Store {store.root}: samples of {store.size}x{store.size} px. Frames excluded by the "
            "quality gate are kept in the store and left out of training and evaluation."
        ),
        "<h3>Videos that could not be ingested</h3>"
        + H.table(failures[["video", "patient_id", "reason"]])
        if len(failures)
        else H.note(
            f"Every video of the manifest could be read and ingested ({len(videos)} videos; "
            "none failed)."
        ),
        _sample_frames(store),
    ]
    return "".join(body), True


def _unknown_scale(videos: pd.DataFrame) -> str:
    """A note on videos of unknown µm/px: how they were sampled and what cannot be done."""
    from sepsiscope.data.ingest import unknown_scale

    unknown = unknown_scale(videos)["videos"]
    if not unknown:
        return ""
    return H.note(
        f"{unknown} of {len(videos)} videos have no µm/px (none in the manifest, no known "
        "camera). They were sampled by pixels, the frame's short side resized as the study did, "
        "so the field a sample shows depends on the camera; they cannot be measured (TVD, PVD) "
        "and cannot be cropped to a field in µm."
    )


def _quality(ctx: Context) -> str:
    """Which parts of the Massey score rejected frames and videos (``store_info``'s counts)."""
    from sepsiscope.data.ingest import store_info

    info = store_info(ctx.store_dir)
    quality = info.get("quality", {})
    settings = info.get("settings", {})
    # The duration part is always scored but excludes a video only with duration_gate: true
    # (ingest's default is false): a count beside the exclusions would read as videos lost.
    gated = bool(settings.get("duration_gate", False))
    short = quality.get("videos_rejected_duration", 0)
    rows = []
    for what in ("frames", "videos"):
        parts = {
            k.removeprefix(f"{what}_rejected_"): v
            for k, v in quality.items()
            if k.startswith(f"{what}_rejected_") and (gated or k != "videos_rejected_duration")
        }
        if parts:
            rows.append({"scored unacceptable (10) on": what, **parts})
    if not rows and not short:
        return ""
    parts = ["<h3>Quality exclusions by Massey score part</h3>"]
    if rows:
        parts.append(H.table(pd.DataFrame(rows)))
        parts.append(
            H.note(
                "A frame or video that scores 10 (unacceptable) on a part is excluded; the "
                "exclusions by split and label are in the table above."
            )
        )
    if short and not gated:
        minimum = settings.get("min_duration_s", 3.0)
        parts.append(
            H.note(
                f"{short} videos are shorter than {minimum:g} s and score 10 on Massey's duration "
                "part. That is recorded, not a reason to exclude them (ingest's duration_gate is "
                "off): their frames are used."
            )
        )
    elif short:
        parts.append(
            H.note(f"{short} videos under the minimum duration were excluded (duration_gate).")
        )
    return "".join(parts)


def _sample_frames(store: Any, per_class: int = 3) -> str:
    usable = store.samples(None)
    if not len(usable):
        return ""
    picks = []
    for _, group in usable.groupby("label", sort=True):
        first = group.drop_duplicates("patient_id").head(per_class)
        picks.append(first)
    picks = pd.concat(picks)
    samples = store.read_table(picks)
    plt = mpl()
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.5), squeeze=False)
    for ax, sample, (_, row) in zip(axes[0], samples, picks.iterrows(), strict=True):
        ax.imshow(sample[0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(
            f"{row['label']}\n{str(row['patient_id'])[:18]}",
            fontsize=8,
            color=CLASS_COLOURS.get(row["label"], "k"),
        )
        ax.axis("off")
    return "<h3>Stored samples</h3>" + H.image(
        H.figure_png(fig),
        f"Channel 0 (the frame at t) of one stored sample of each of the first {per_class} "
        "patients of each class",
        wide=True,
    )


def training(ctx: Context) -> tuple[str, bool]:
    log = ctx.run.train_log
    if not ctx.run.model.exists() and not log.exists():
        return H.not_run("trained classifier", "sepsiscope train --store STORE --out RUN"), False
    parts = []
    if log.exists():
        parts.append(_training_curves(pd.read_csv(log)))
    if ctx.threshold is not None:
        parts.append(
            H.note(f"Decision threshold fixed on the validation patients: {ctx.threshold:.3f}.")
        )
    if ctx.run.model_settings.exists():
        saved = read_json(ctx.run.model_settings)
        parts.append("<h3>Training settings</h3>" + H.key_values(saved.get("settings", saved)))
    return "".join(parts), True


def _training_curves(log: pd.DataFrame) -> str:
    if "epoch" not in log.columns:
        return H.note("metrics.csv has no epoch column.")
    by_epoch = log.drop(columns=[c for c in ("step",) if c in log]).groupby("epoch").last()
    by_epoch = by_epoch.select_dtypes("number").dropna(axis=1, how="all")
    losses = [c for c in by_epoch.columns if "loss" in c]
    others = [c for c in by_epoch.columns if c not in losses and "lr" not in c.lower()]
    panels = [(cols, name) for cols, name in ((losses, "loss"), (others, "metric")) if cols]
    if not panels:
        return H.note("metrics.csv holds no numeric columns to draw.")
    plt = mpl()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), squeeze=False)
    for ax, (cols, name) in zip(axes[0], panels, strict=True):
        for c in cols:
            series = by_epoch[c].dropna()
            ax.plot(series.index, series.to_numpy(), marker="o", markersize=3, label=c)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return H.image(H.figure_png(fig), "Training curves (RUN/classifier/metrics.csv)", wide=True)


def _interval(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        reason = entry.get("reason", "") if isinstance(entry, dict) else ""
        return f"&ndash; {H.esc(reason)}" if reason else "&ndash;"
    text = f"{entry['value']:.3f}"
    low, high = (entry.get("interval") or [None, None])[:2]
    if low is not None and high is not None:
        text += f"<br><small>[{low:.3f}, {high:.3f}]</small>"
    return text


def metrics_table(metrics: dict[str, Any], extra: dict[str, dict[str, Any]] | None = None) -> str:
    """Metric rows by level columns, value and 95 % interval; ``extra`` adds models' columns."""
    columns = {level: metrics[level] for level in LEVELS if level in metrics}
    for name, other in (extra or {}).items():
        for level in LEVELS:
            if level in other:
                columns[f"{name} ({level})"] = other[level]
    rows = []
    for m in METRICS:
        rows.append({"metric": m, **{c: H.Raw(_interval(v.get(m))) for c, v in columns.items()}})
    rows.append(
        {
            "metric": "n (cases / patients)",
            **{
                c: H.Raw(f"{v['n']['cases']} / {v['n']['patients']}") if "n" in v else None
                for c, v in columns.items()
            },
        }
    )
    return H.table(pd.DataFrame(rows))


def evaluation(ctx: Context) -> tuple[str, bool]:
    folder = ctx.run.evaluation
    path = folder / "metrics.json"
    if not path.exists():
        return H.not_run("evaluation", "sepsiscope evaluate RUN"), False
    metrics = read_json(path)
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), dict) else None
    extra = {"baseline": baseline} if baseline and any(k in baseline for k in LEVELS) else {}
    split = metrics.get("split", "evaluated")
    parts = [H.warning(str(text)) for text in metrics.get("notes") or []]
    parts += [
        H.note(
            f"Split: {split}. Values with 95 % bootstrap intervals resampling patients; the "
            "threshold was fixed on the validation patients, never on the evaluated ones."
        ),
        metrics_table(metrics, extra),
    ]
    if extra:
        parts.append(
            H.note(
                "baseline: logistic regression on simple frame statistics (mean intensity, "
                "contrast, sharpness), fitted on the same training patients."
            )
        )
    if isinstance(metrics.get("calibration"), dict):
        temperature = metrics["calibration"].get("temperature")
        parts.append(calibration_table(
            metrics["calibration"],
            f"temperature T = {temperature:.2f}, fitted on the validation frames"
            if isinstance(temperature, int | float) else "",
        ))  # fmt: skip
    details = {k: metrics[k] for k in ("split", "split_by", "threshold", "n") if k in metrics}
    if details:
        parts.append("<h3>Details</h3>" + H.key_values(details))
    order = {
        "roc.png": 0,
        "reliability.png": 1,
        "reliability_calibrated.png": 2,
        "confusion.png": 3,
    }
    files = sorted(_pngs(folder, ctx.max_images), key=lambda p: (order.get(p.name, 9), p.name))
    parts.append(_png_gallery(folder, files))
    return "".join(parts), True


def calibration_table(calibration: dict[str, Any], how: str) -> str:
    """Brier score and expected calibration error before and after temperature scaling."""
    rows = [
        {"level": level, "n": entry.get("n"),
         "Brier before": entry.get("brier_before"), "Brier after": entry.get("brier_after"),
         "ECE before": entry.get("ece_before"), "ECE after": entry.get("ece_after")}
        for level in reversed(LEVELS)
        if isinstance(entry := calibration.get(level), dict)
    ]  # fmt: skip
    if not rows:
        return ""
    return (
        "<h3>Calibration</h3>"
        + H.table(pd.DataFrame(rows))
        + H.note(
            "How far the probabilities can be read as risks: Brier score (mean squared error, "
            "0 best) and expected calibration error (ECE, 10 bins) of the network's "
            f"probabilities, and after temperature scaling ({how}). Scaling keeps every ranking "
            "(AUC) and decision; only the probabilities' scale changes."
        )
    )


def _stage_folders(folder: Path) -> list[Path]:
    """The folder and its result sub-folders (one per split, bottleneck or feature set)."""
    skip = {"checkpoints", "reconstructions"}
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in skip)
    return [folder, *subs]


def _figures_and_numbers(folder: Path, what: str, command: str, ctx: Context):
    """Every summary JSON, table of patients and PNG a stage wrote, one block per sub-folder."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return H.not_run(what, command), False
    parts = []
    for sub in _stage_folders(folder):
        block = [_summaries(sub)]
        history = sub / "history.csv"
        if history.exists():
            block.append(_history_figure(pd.read_csv(history), sub.name))
        block.append(_png_gallery(folder, _pngs(sub, ctx.max_images, recursive=False)))
        recon = sub / "reconstructions"
        if recon.is_dir():
            block.append("<h4>Validation frames (top) and their reconstructions, per epoch</h4>")
            block.append(_png_gallery(folder, _pngs(recon, ctx.max_images), wide=True))
        patients_png = sub / "patients_by_cluster.csv"
        if patients_png.exists():
            block.append("<h4>Frames per cluster and patient</h4>")
            block.append(H.table(pd.read_csv(patients_png, dtype={"patient_id": str})))
        body = "".join(block)
        if body:
            title = "" if sub == folder else f"<h3>{H.esc(sub.name)}</h3>"
            parts.append(title + body)
    return "".join(parts) or H.note(f"{folder} holds no figures or summaries."), True


def _history_figure(history: pd.DataFrame, name: str) -> str:
    if "epoch" not in history.columns:
        return H.table(history)
    numeric = history.set_index("epoch").select_dtypes("number").dropna(axis=1, how="all")
    if numeric.empty:
        return ""
    plt = mpl()
    cols = list(numeric.columns)[:4]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.3 * len(cols), 2.8), squeeze=False)
    for ax, c in zip(axes[0], cols, strict=True):
        ax.plot(numeric.index, numeric[c].to_numpy(), marker="o", markersize=3)
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return H.image(H.figure_png(fig), f"{name}: history.csv", wide=True)


def embedding(ctx: Context) -> tuple[str, bool]:
    return _figures_and_numbers(ctx.run.embedding, "embedding", "sepsiscope embed RUN", ctx)


def autoencoder(ctx: Context) -> tuple[str, bool]:
    command = "sepsiscope autoencode --store STORE --out RUN"
    return _figures_and_numbers(ctx.run.autoencoder, "autoencoder", command, ctx)


def clusters(ctx: Context) -> tuple[str, bool]:
    return _figures_and_numbers(ctx.run.clusters, "cluster analysis", "sepsiscope cluster RUN", ctx)
