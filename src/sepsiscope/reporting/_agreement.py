"""The report's check of ``measure`` against the simulator's ground truth (synthetic cohorts only).

When the measured videos come from a cohort written by ``sepsiscope simulate`` (its
``truth.csv`` beside ``videos/``), the report shows, per metric, the Bland-Altman bias and 95 %
limits of agreement, ICC(2,1) and Lin's concordance against the truth, and one Bland-Altman plot
per metric (:mod:`sepsiscope.microcirculation.agreement`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sepsiscope.layout import CohortLayout
from sepsiscope.microcirculation.agreement import agreement
from sepsiscope.reporting import _html as H
from sepsiscope.reporting._sections import mpl

METRICS = ("tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "pvd_mm_per_mm2", "ppv_percent", "mfi")


def _truth_of(videos: pd.Series) -> pd.DataFrame | None:
    """The simulator's truth rows of these videos (``video_id`` added), or None when none of
    them comes from a simulated cohort."""
    parts = []
    for cohort in sorted({Path(str(v)).parent.parent for v in videos}):
        path = CohortLayout(cohort).truth
        if path.exists():
            truth = pd.read_csv(path)
            parts.append(truth.assign(video_id=[Path(v).stem for v in truth["video"]]))
    return pd.concat(parts, ignore_index=True) if parts else None


def truth_agreement(table: pd.DataFrame) -> str:
    """The agreement section's HTML, or "" when there is no truth to compare with."""
    if "video" not in table.columns or "status" not in table.columns:
        return ""
    ok = table[table["status"] == "ok"]
    truth = _truth_of(ok["video"]) if len(ok) else None
    if truth is None:
        return ""
    joined = ok.merge(truth.drop(columns="video"), on="video_id", suffixes=("", "_true"))
    metrics = [m for m in METRICS if m in joined and f"{m}_true" in joined]
    if len(joined) < 3 or not metrics:
        return ""
    rows = []
    for m in metrics:
        r = agreement(joined[m].to_numpy(), joined[f"{m}_true"].to_numpy())
        rows.append({
            "metric": m, "n": r["n"], "bias": r["bias"],
            "95 % limits": f"[{r['lower']:.3g}, {r['upper']:.3g}]",
            "bias %": r["bias_percent"],
            "limits %": f"[{r['lower_percent']:.1f}, {r['upper_percent']:.1f}]",
            "ICC(2,1)": f"{r['icc']:.2f} [{r['icc_lower']:.2f}, {r['icc_upper']:.2f}]",
            "Lin's CCC": f"{r['ccc']:.2f} [{r['ccc_lower']:.2f}, {r['ccc_upper']:.2f}]",
        })  # fmt: skip
    return (
        "<h3>Agreement with the simulator's truth (synthetic videos)</h3>"
        + H.note(
            "These videos come from sepsiscope's simulator, whose truth.csv gives each metric's "
            "true value. Bland-Altman bias (measured - true) with 95 % limits of agreement, "
            "absolute and in % of the pair's mean; ICC(2,1) and Lin's concordance with 95 % "
            "intervals. A check of the measurement software on synthetic data, not a clinical "
            "validation."
        )
        + H.table(pd.DataFrame(rows))
        + _bland_altman_figure(joined, metrics)
    )


def _bland_altman_figure(joined: pd.DataFrame, metrics: list[str]) -> str:
    plt = mpl()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.1), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        measured, true = joined[m], joined[f"{m}_true"]
        keep = measured.notna() & true.notna()
        mean, diff = ((measured + true) / 2)[keep], (measured - true)[keep]
        ax.scatter(mean, diff, s=12, color="#1f5f99")
        r = agreement(measured.to_numpy(), true.to_numpy())
        for y, style in ((r["bias"], "-"), (r["lower"], "--"), (r["upper"], "--")):
            ax.axhline(y, color="0.4", linestyle=style, linewidth=1)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("mean of measured and true", fontsize=8)
        ax.set_ylabel("measured - true", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    caption = "Bland-Altman plots: bias (solid) and 95 % limits of agreement (dashed)"
    return H.image(H.figure_png(fig), caption, wide=True)
