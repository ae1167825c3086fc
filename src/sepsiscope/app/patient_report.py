"""A patient's self-contained HTML report, built from the report's parts (reporting._html)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sepsiscope.app.project import Project
from sepsiscope.reporting._html import gallery, image, key_values, note, page, png_file_bytes, table
from sepsiscope.settings import provenance

STATEMENT = (
    "<strong>Research use only.</strong> Not a medical device and not for diagnosis. Figures "
    "edited by a reviewer are marked; the network's probability is only as good as the data it "
    "was trained on, named below."
)
COLUMNS = {
    "video_id": "video", "site": "site", "status": "status", "tvd_small_mm_per_mm2": "TVD small",
    "pvd_mm_per_mm2": "PVD", "ppv_percent": "PPV %", "mfi": "MFI", "de_backer_per_mm": "De Backer",
    "mean_velocity_um_per_s": "velocity µm/s", "edits": "edits", "probability": "p(septic)",
    "verdict": "verdict",
}  # fmt: skip


def patient_html(project: Project, view: dict[str, Any], run_text: str) -> str:
    """The report of one patient (:func:`sepsiscope.app.views.patient_view`) as one HTML page."""
    summary = {
        "patient": view["patient_id"],
        "label given": view["label"] or "unknown",
        "sites measured": view["n_sites"],
        "HI across sites": view["hi"],
        "p(septic), " + view["probability_rule"]: view["probability"],
        "threshold": view["threshold"],
        "verdict": view["verdict"] or "no network result",
    }
    videos = pd.DataFrame(view["videos"])
    shown = videos[[c for c in COLUMNS if c in videos]].rename(columns=COLUMNS)
    edited = int(videos.get("edits", pd.Series(dtype=int)).fillna(0).sum())
    figures = []
    for video_id in videos["video_id"]:
        layout = project.measurements(video_id)
        for path in sorted(layout.overlays.glob("*.png")) if layout.overlays.exists() else []:
            figures.append(image(png_file_bytes(path), f"{video_id}: vessels by flow category"))
        folder = project.explanations(video_id)
        for path in sorted(folder.glob("*.png"))[:2] if folder.exists() else []:
            figures.append(image(png_file_bytes(path), f"{video_id}: Grad-CAM"))
    sections = [
        ("summary", "Patient", key_values(summary)),
        (
            "videos",
            "Videos",
            table(shown, digits=2)
            + note(
                f"{edited} reviewer edit(s) in all; the automatic overlays are shown below, "
                "the edited figures in the table."
            ),
        ),  # fmt: skip
        ("figures", "Figures", gallery(figures) if figures else note("No figures yet.")),
    ]
    return page(
        title=f"sepsiscope: patient {view['patient_id']}",
        subtitle=run_text,
        statement=STATEMENT,
        sections=sections,
        footer=f"sepsiscope {provenance()['versions'].get('sepsiscope', '')}, "
        f"{provenance()['created_utc']}",
    )
