"""One self-contained HTML report of a run: cohort, training, evaluation, cross-validation,
representations, metrics.

The report gathers what the stages wrote (names in :mod:`sepsiscope.layout`) and never recomputes
a result. Each section appears when its artifacts exist and otherwise says "not run" with the
command that makes them. Images are embedded as base64 PNG, styles are inline, and the page holds
no script and requests nothing from the network, so it can be mailed or archived as one file.
Every string that comes from data (patient ids, paths, labels) is HTML-escaped.

Example
-------
>>> from sepsiscope.reporting.report import ReportSettings, report
>>> result = report("run", ReportSettings(store="store"))      # doctest: +SKIP
>>> result["report"]                                           # doctest: +SKIP
'run/report.html'
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sepsiscope import __version__
from sepsiscope._io import read_json, write_text
from sepsiscope.errors import InputError
from sepsiscope.layout import CohortLayout, RunLayout, StoreLayout
from sepsiscope.reporting import _html as H
from sepsiscope.reporting import _results as R
from sepsiscope.reporting import _sections as S
from sepsiscope.settings import StageSettings

log = logging.getLogger(__name__)

RESEARCH_STATEMENT = (
    "sepsiscope is research software. It is not a medical device and must not be used for "
    "diagnosis or to guide the care of any patient."
)
SYNTHETIC_STATEMENT = (
    "The data in this report are synthetic: videos made by sepsiscope's simulator, not filmed in "
    "patients. No figure here is a clinical result."
)


# (anchor, title, section): the order of the page
SECTIONS = (
    ("cohort", "Cohort", S.cohort),
    ("training", "Training", S.training),
    ("evaluation", "Evaluation", S.evaluation),
    ("crossval", "Cross-validation", R.crossval),
    ("embedding", "t-SNE of the network's features", S.embedding),
    ("autoencoder", "Autoencoder reconstructions", S.autoencoder),
    ("clusters", "Clusters", S.clusters),
    ("microcirculation", "Microcirculation metrics by class", R.microcirculation),
    ("patients", "Patients", R.patients),
    ("provenance", "Provenance", R.provenance),
)


class ReportSettings(StageSettings):
    """What the report reads and where it writes.

    Attributes
    ----------
    store : the frame store of the run; None looks for it in the run's saved settings and beside
        the run folder.
    measurements : the folder ``sepsiscope measure`` wrote; None uses ``RUN/measurements``.
    out : the HTML file; None writes ``RUN/report.html``.
    synthetic : whether the cohort is synthetic; None detects it (a simulator's cohort folder,
        with ``truth.csv`` and ``vessels.json``, holds the store's videos).
    max_images : at most this many images per gallery (reconstructions per epoch are sampled
        evenly, first and last always kept).
    title : the page's title.
    """

    store: str | None = None
    measurements: str | None = None
    out: str | None = None
    synthetic: bool | None = None
    max_images: int = 12
    title: str = "sepsiscope report"


def report(
    run_dir: str | os.PathLike, settings: ReportSettings | None = None, *, quiet: bool = False
) -> dict[str, Any]:
    """Write the HTML report of ``run_dir``.

    Parameters
    ----------
    run_dir : a run folder (``sepsiscope train --out RUN`` and the stages after it).
    settings : see :class:`ReportSettings`.
    quiet : no log lines about skipped sections.

    Returns
    -------
    ``{"report": path, "size_bytes": int, "sections": {name: "ok" | "not run"}, "synthetic": bool,
    "store": path | None, "measurements": path | None}``
    """
    settings = settings or ReportSettings()
    run = RunLayout(run_dir)
    if not run.root.is_dir():
        raise InputError(f"no run folder at {run.root}: run `sepsiscope train --out RUN` first")
    store_dir = find_store(run, settings.store)
    measurements_dir = Path(settings.measurements) if settings.measurements else run.measurements
    if settings.measurements and not measurements_dir.is_dir():
        raise InputError(f"no measurements at {measurements_dir}: run `sepsiscope measure` first")
    synthetic = (
        settings.synthetic
        if settings.synthetic is not None
        else is_synthetic(store_dir, measurements_dir)
    )
    ctx = S.Context(
        run=run,
        store_dir=store_dir,
        measurements_dir=measurements_dir if measurements_dir.is_dir() else None,
        max_images=settings.max_images,
    )
    sections: list[tuple[str, str, str]] = []
    status: dict[str, str] = {}
    for anchor, title, build in SECTIONS:
        try:
            body, ok = build(ctx)
        except Exception as exc:  # a broken artifact costs its section, never the report
            log.warning("report section %s failed: %s", anchor, exc)
            body, ok = H.note(f"This section could not be drawn: {exc}"), False
        status[anchor] = "ok" if ok else "not run"
        sections.append((anchor, title, body))
        if not ok and not quiet:
            log.info("report: %s not run", anchor)

    statement = f"<strong>For research only.</strong> {H.esc(RESEARCH_STATEMENT)}"
    if synthetic:
        statement += f"<br><strong>Synthetic data.</strong> {H.esc(SYNTHETIC_STATEMENT)}"
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    document = H.page(
        title=settings.title,
        subtitle=f"run {run.root.resolve()} · made {created} · sepsiscope {__version__}",
        statement=statement,
        sections=sections,
        footer="Made by sepsiscope (research software, not for diagnosis). "
        "This file is self-contained: images are embedded and it loads nothing from the network.",
    )
    out = Path(settings.out) if settings.out else run.report
    write_text(out, document)
    _make_readable(out)
    return {
        "report": str(out),
        "size_bytes": out.stat().st_size,
        "sections": status,
        "synthetic": bool(synthetic),
        "store": str(store_dir) if store_dir else None,
        "measurements": str(ctx.measurements_dir) if ctx.measurements_dir else None,
    }


def _make_readable(path: Path) -> None:
    """A report is meant to be shared: readable as the umask allows (temporary files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def find_store(run: RunLayout, store: str | None) -> Path | None:
    """The run's frame store: the given one, else the one its training (or a cross-validation
    fold's) recorded, else a ``store`` folder beside or inside the run; None when none is
    found."""
    if store is not None:
        StoreLayout(store).require()
        return Path(store)
    candidates = [run.trained_store(), run.root.parent / "store", run.root / "store"]
    for path in candidates:
        if path is not None and StoreLayout(path).meta.exists():
            return path
    return None


def is_synthetic(store_dir: Path | None, measurements_dir: Path | None) -> bool:
    """Whether the cohort's videos come from the simulator (a cohort folder with its truth)."""
    manifests = []
    if store_dir is not None:
        manifests.append(StoreLayout(store_dir).manifest)
        meta = StoreLayout(store_dir).meta
        saved = read_json(meta) if meta.exists() else {}
        if _mentions_simulator(saved):
            return True
        if isinstance(saved.get("manifest"), str):  # ingest records the manifest it read
            manifests.append(Path(saved["manifest"]))
    if measurements_dir is not None:
        manifests += list(measurements_dir.glob("manifest*.csv"))
    for manifest in manifests:
        for folder in _video_folders(manifest):
            for candidate in (folder, *list(folder.parents)[:3]):
                cohort = CohortLayout(candidate)
                if cohort.truth.exists() and cohort.vessels.exists():
                    return True
    return False


def _mentions_simulator(meta: Any) -> bool:
    if isinstance(meta, dict):
        if meta.get("synthetic") is True:
            return True
        return any(_mentions_simulator(v) for v in meta.values())
    return False


def _video_folders(manifest: Path) -> list[Path]:
    if not manifest.exists():
        return []
    import pandas as pd

    try:
        table = pd.read_csv(manifest, nrows=50)
    except (OSError, ValueError):
        return []
    column = "path" if "path" in table.columns else "video" if "video" in table.columns else None
    if column is None:
        return [manifest.parent]
    folders = {(manifest.parent / str(p)).parent for p in table[column].dropna()}
    return sorted(folders)[:5] or [manifest.parent]
