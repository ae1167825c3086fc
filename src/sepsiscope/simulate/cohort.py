"""A synthetic cohort: patients, their videos (one per sublingual site), truth and manifest.

Randomness is drawn from ``numpy.random.SeedSequence([seed, stream, patient, site])`` streams,
so one seed reproduces every frame and table, and the truth tables do not depend on rendering.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import Field

from sepsiscope._io import atomic_path, to_json, write_text
from sepsiscope._progress import track
from sepsiscope.data.video import write_video
from sepsiscope.errors import InputError
from sepsiscope.layout import CohortLayout
from sepsiscope.settings import StageSettings
from sepsiscope.simulate.cameras import CameraProfile, camera_profile
from sepsiscope.simulate.flow import Physiology, assign_flow, draw_physiology
from sepsiscope.simulate.render import (
    MARGIN_PX,
    Optics,
    draw_optics,
    prepare,
    render_frames,
    vary_optics,
)
from sepsiscope.simulate.truth import vessel_records, video_truth
from sepsiscope.simulate.vessels import Vessel, generate_network

MANIFEST_COLUMNS = ["patient_id", "video", "label", "site", "um_per_px", "fps", "camera"]
TRUTH_COLUMNS = [
    "video", "patient_id", "label", "tvd_mm_per_mm2", "tvd_small_mm_per_mm2", "pvd_mm_per_mm2",
    "ppv_percent", "mfi", "n_segments", "total_length_mm", "mean_velocity_um_per_s",
]  # fmt: skip
_PATIENT, _GEOMETRY, _FLOW, _RENDER, _ASSIGN = range(5)  # random streams
logger = logging.getLogger(__name__)


class SimulateSettings(StageSettings):
    """Settings of ``sepsiscope simulate``.

    ``width``/``height`` override the camera's frame size (tiny test videos); µm/px stays the
    camera's, so a smaller frame is a smaller field of view. ``workers`` changes only the speed:
    every video has its own random streams, so the cohort is the same with any number.
    """

    patients: int = Field(24, ge=1, le=100_000)
    videos_per_patient: int = Field(3, ge=1, le=100)
    seconds: float = Field(3.0, gt=0, le=600)
    camera: Literal["microscan", "cytocam", "mixed"] = "microscan"
    seed: int = Field(0, ge=0)
    width: int | None = Field(None, ge=32, le=4096)
    height: int | None = Field(None, ge=32, le=4096)
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="processes rendering videos; None: CPU count (max 4), "
        "for cohorts over ~1000 frames",
    )


@dataclass
class VideoPlan:
    """One video to make: who, where, which camera, and its random streams."""

    video_id: str
    patient_id: str
    label: str
    site: int
    camera: CameraProfile
    physiology: Physiology
    optics: Optics
    site_severity: float
    seconds: float
    seeds: tuple[int, ...]  # (seed, patient index, site)

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seeds[0], stream, *self.seeds[1:]])
        )

    @property
    def relative_path(self) -> str:
        return f"videos/{self.video_id}{self.camera.suffix}"


def plan_cohort(settings: SimulateSettings) -> list[VideoPlan]:
    """Draw patients (half septic, in random order), their cameras, physiology and optics."""
    n = settings.patients
    assign = np.random.default_rng(np.random.SeedSequence([settings.seed, _ASSIGN]))
    septic = np.zeros(n, bool)
    septic[: n // 2] = True
    assign.shuffle(septic)
    if settings.camera == "mixed":  # balanced and drawn independently of the label
        names = np.array(["microscan", "cytocam"] * (n // 2 + 1))[:n]
        assign.shuffle(names)
    else:
        names = np.array([settings.camera] * n)
    digits = max(3, len(str(n)))
    plans = []
    for p in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([settings.seed, _PATIENT, p]))
        camera = camera_profile(str(names[p]), width=settings.width, height=settings.height)
        phys = draw_physiology(rng, septic=bool(septic[p]))
        optics = draw_optics(rng)
        patient_id = f"P{p + 1:0{digits}d}"
        for site in range(1, settings.videos_per_patient + 1):
            severity = float(np.clip(phys.severity + rng.normal(0.0, phys.site_sd), 0.0, 1.0))
            plans.append(
                VideoPlan(
                    video_id=f"{patient_id}_site{site}",
                    patient_id=patient_id,
                    label="septic" if septic[p] else "non-septic",
                    site=site,
                    camera=camera,
                    physiology=phys,
                    optics=vary_optics(rng, optics),
                    site_severity=severity,
                    seconds=settings.seconds,
                    seeds=(settings.seed, p, site),
                )
            )
    return plans


def _frame_box(camera: CameraProfile) -> tuple[float, float, float, float]:
    return (MARGIN_PX, MARGIN_PX, MARGIN_PX + camera.width, MARGIN_PX + camera.height)


def build_scene(plan: VideoPlan) -> list[Vessel]:
    """The vessels of one video with their flow assigned (no rendering)."""
    cam = plan.camera
    geometry = plan.rng(_GEOMETRY)
    vessels = generate_network(
        geometry,
        canvas_px=(cam.width + 2 * MARGIN_PX, cam.height + 2 * MARGIN_PX),
        frame_box=_frame_box(cam),
        um_per_px=cam.um_per_px,
        small_density_mm_per_mm2=plan.physiology.small_density_mm_per_mm2,
        n_venules=int(geometry.choice(4, p=[0.15, 0.4, 0.3, 0.15])),
    )
    assign_flow(
        plan.rng(_FLOW),
        vessels,
        plan.physiology,
        site_severity=plan.site_severity,
        frame_box=_frame_box(cam),
    )
    return vessels


def truth_row(plan: VideoPlan, vessels: list[Vessel]) -> dict[str, Any]:
    """One row of truth.csv."""
    metrics = video_truth(
        vessels, frame_box=_frame_box(plan.camera), um_per_px=plan.camera.um_per_px
    )
    return {
        "video": plan.relative_path,
        "patient_id": plan.patient_id,
        "label": plan.label,
        **metrics,
    }


def simulate_truth(settings: SimulateSettings) -> pd.DataFrame:
    """The truth table of a cohort without rendering its videos (fast; same rows as the files)."""
    rows = [truth_row(plan, build_scene(plan)) for plan in plan_cohort(settings)]
    return pd.DataFrame(rows, columns=TRUTH_COLUMNS)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / ".write-test") as tmp:
            tmp.write_bytes(b"")
        (out_dir / ".write-test").unlink()
    except OSError as exc:
        raise InputError(
            f"{out_dir}: cannot write the cohort here ({exc.strerror or exc})"
        ) from exc


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def render_video(plan: VideoPlan, out_dir: Path) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Render, encode and write one video and its mask; return truth row, vessel truth, frames."""
    layout = CohortLayout(out_dir)
    cam = plan.camera
    vessels = build_scene(plan)
    n_frames = max(1, round(plan.seconds * cam.fps))
    render = prepare(plan.rng(_RENDER), vessels, cam, plan.optics, n_frames=n_frames)
    path = out_dir / plan.relative_path
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write_video(tmp, render_frames(render), cam.fps, quality=cam.quality, preset="ultrafast")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_png(layout.mask(plan.video_id), render.mask)
    record = {
        "video": plan.relative_path,
        "patient_id": plan.patient_id,
        "label": plan.label,
        "camera": cam.name,
        "um_per_px": cam.um_per_px,
        "fps": cam.fps,
        "width": cam.width,
        "height": cam.height,
        "vessels": vessel_records(vessels, origin_px=(MARGIN_PX, MARGIN_PX)),
    }
    return truth_row(plan, vessels), record, n_frames


class _InProcess:
    """The executor interface, run in this process (no start-up cost for small cohorts)."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, *iterables):
        return map(fn, *iterables)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's threads would only compete


def _executor(settings: SimulateSettings, plans: list[VideoPlan]):
    """Worker processes when asked for, or by default for a cohort worth their start-up
    (> ~1000 MicroScan frames); else this process."""
    pixels = sum(round(p.seconds * p.camera.fps) * p.camera.width * p.camera.height for p in plans)
    workers = settings.workers or min(os.cpu_count() or 1, 4)
    small = settings.workers is None and pixels < 1000 * 640 * 480
    if workers <= 1 or len(plans) < 2 or small:
        return _InProcess()
    context = multiprocessing.get_context("spawn")  # safe beside torch and OpenCV threads
    return ProcessPoolExecutor(
        max_workers=min(workers, len(plans)), mp_context=context, initializer=_worker_init
    )


def _render_all(executor, plans: list[VideoPlan], out: Path, quiet: bool):
    truths, records, n_frames = [], {}, 0
    with executor as pool:
        done = pool.map(render_video, plans, [out] * len(plans))
        for plan, (truth, record, frames) in zip(
            plans,
            track(done, description="simulating videos", total=len(plans), quiet=quiet),
            strict=True,
        ):
            truths.append(truth)
            records[plan.video_id] = record
            n_frames += frames
    return truths, records, n_frames


def simulate_cohort(
    out_dir: str | os.PathLike, settings: SimulateSettings, *, quiet: bool = False
) -> dict[str, Any]:
    """Simulate a cohort of dark-field videos with ground truth into ``out_dir``.

    Writes (see :class:`sepsiscope.layout.CohortLayout`) ``manifest.csv``, ``truth.csv``,
    ``vessels.json``, ``videos/<video_id>.avi|.mp4``, ``masks/<video_id>.png`` and
    ``settings.json``. Synthetic data for testing the pipeline, not clinical data.

    Returns
    -------
    dict with ``out_dir``, ``manifest``, ``truth``, ``vessels``, ``n_patients``, ``n_videos``,
    ``n_septic``, ``n_frames`` and ``seconds_taken``.

    Examples
    --------
    >>> settings = SimulateSettings(patients=2, seconds=0.2, width=96, height=64)
    >>> simulate_cohort(tmp_dir, settings, quiet=True)["n_videos"]  # doctest: +SKIP
    6
    """
    started = time.perf_counter()
    out = Path(out_dir)
    _check_writable(out)
    layout = CohortLayout(out)
    layout.videos.mkdir(exist_ok=True)
    layout.masks.mkdir(exist_ok=True)
    plans = plan_cohort(settings)
    try:
        truths, records, n_frames = _render_all(_executor(settings, plans), plans, out, quiet)
    except BrokenProcessPool as exc:  # e.g. a script without a __main__ guard, or no /dev/shm
        logger.warning("worker processes failed (%s); rendering in this process", exc)
        truths, records, n_frames = _render_all(_InProcess(), plans, out, quiet)
    manifest = pd.DataFrame(
        [
            {
                "patient_id": p.patient_id,
                "video": p.relative_path,
                "label": p.label,
                "site": p.site,
                "um_per_px": p.camera.um_per_px,
                "fps": p.camera.fps,
                "camera": p.camera.name,
            }
            for p in plans
        ],
        columns=MANIFEST_COLUMNS,
    )
    _write_csv(layout.truth, pd.DataFrame(truths, columns=TRUTH_COLUMNS))
    write_text(layout.vessels, to_json({"videos": records}, indent=None) + "\n")
    settings.save(layout.settings)
    _write_csv(layout.manifest, manifest)  # last: a manifest means a complete cohort
    return {
        "out_dir": str(out),
        "manifest": str(layout.manifest),
        "truth": str(layout.truth),
        "vessels": str(layout.vessels),
        "n_patients": settings.patients,
        "n_videos": len(plans),
        "n_septic": int((manifest.drop_duplicates("patient_id").label == "septic").sum()),
        "n_frames": n_frames,
        "seconds_taken": round(time.perf_counter() - started, 2),
    }
