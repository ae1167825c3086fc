"""The web app's workers: processes that take jobs from the project's queue and run the stages.

A job is one video's work, in steps: ``measure`` (quality and the consensus metrics, with the
geometry a review needs), then, when the server has a run, ``predict`` (the network's
probability and its rolling plot) and ``explain`` (Grad-CAM frames). Each step calls the library
function the CLI calls and writes the same files. Progress goes to the job's row, which the pages
read; a worker that dies leaves its job ``running``, and the next server start queues it again
(:meth:`Project.requeue_orphans`). A worker exits when the server that started it is gone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
import traceback
from pathlib import Path
from typing import Any

from sepsiscope._io import write_json
from sepsiscope.app.project import Project, utc_now
from sepsiscope.errors import SepsiscopeError

log = logging.getLogger(__name__)

POLL_S = 0.5
GRADCAM_FRAMES = 4
# Space-time diagrams in measure's figure of a video (the page shows any vessel's on a click).
KYMOGRAPHS = 4


def start_workers(project: Project, run_dir: Path | None, n: int) -> list[Any]:
    """Start ``n`` worker processes (spawned: no state shared with the server's threads)."""
    context = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(n):
        process = context.Process(
            target=work, args=(str(project.root), str(run_dir) if run_dir else None, os.getpid()),
            daemon=True, name="sepsiscope-worker",
        )  # fmt: skip
        process.start()
        workers.append(process)
    return workers


def stop_workers(workers: list[Any], *, timeout_s: float = 5.0) -> None:
    """Stop the workers; a job they were running is queued again at the next start."""
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout_s)
        if process.is_alive():
            process.kill()


def work(root: str, run_dir: str | None, parent_pid: int, *, once: bool = False) -> None:
    """A worker's loop: claim the oldest queued job, run it, repeat (``once``: until none)."""
    logging.basicConfig(level=logging.WARNING)
    project = Project(Path(root))
    while os.getppid() == parent_pid or once:
        job = project.claim_job(os.getpid())
        if job is None:
            if once:
                return
            time.sleep(POLL_S)
            continue
        run_job(project, job, Path(run_dir) if run_dir else None)


def run_job(project: Project, job: dict[str, Any], run_dir: Path | None) -> None:
    """Run one job's steps, recording progress, and the job's end (done or failed)."""
    video = project.video(job["video_id"])
    started = time.perf_counter()
    steps = ["measure"] + (["predict", "explain"] if run_dir else [])
    notes: list[str] = []
    try:
        if video is None:
            raise SepsiscopeError(f"video {job['video_id']} is no longer in the project")
        for i, step in enumerate(steps):
            project.update_job(job["job_id"], step=step, progress=i / len(steps))
            note = STEPS[step](project, video, run_dir)
            if note:
                notes.append(note)
        project.update_job(
            job["job_id"], state="done", step="", progress=1.0, message="; ".join(notes),
            finished_at=utc_now(), seconds=time.perf_counter() - started,
        )  # fmt: skip
    except (SepsiscopeError, OSError, ValueError, RuntimeError, MemoryError) as exc:
        log.warning("%s: %s", job["video_id"], exc)
        if not isinstance(exc, SepsiscopeError):
            log.debug("%s", traceback.format_exc())
        project.update_job(
            job["job_id"], state="failed", message=str(exc)[:2000], finished_at=utc_now(),
            seconds=time.perf_counter() - started,
        )  # fmt: skip


def _measure(project: Project, video: dict[str, Any], run_dir: Path | None) -> str | None:
    from sepsiscope.errors import PartialFailure
    from sepsiscope.microcirculation.measure import MeasureSettings, measure

    if not video["um_per_px"]:
        return "not measured: the scale (µm/px) is unknown; give it or a known camera"
    settings = MeasureSettings(um_per_px=video["um_per_px"], fps=video["fps"],
                               kymographs=KYMOGRAPHS)  # fmt: skip
    try:
        measure(video["source"], project.measurements(video["video_id"]).root, settings, quiet=True)
    except PartialFailure as exc:
        raise SepsiscopeError(str(exc).split(": ", 1)[-1]) from None
    return None


def _predict(project: Project, video: dict[str, Any], run_dir: Path | None) -> str | None:
    from sepsiscope.apply.predict import PredictSettings, predict

    settings = PredictSettings(
        fps=video["fps"], um_per_px=video["um_per_px"], threads=1,
        out=project.video_dir(video["video_id"]) / "predict",
    )  # fmt: skip
    result = predict(run_dir, video["source"], settings, quiet=True)
    write_json(project.prediction(video["video_id"]), result)  # its per-frame table beside it
    return None


def _explain(project: Project, video: dict[str, Any], run_dir: Path | None) -> str | None:
    from sepsiscope.apply.explain import ExplainSettings, explain

    settings = ExplainSettings(
        n=GRADCAM_FRAMES, out=project.explanations(video["video_id"]), fps=video["fps"],
        um_per_px=video["um_per_px"],
    )  # fmt: skip
    with contextlib.suppress(SepsiscopeError):  # a video too short to explain still has a result
        explain(run_dir, settings, video=video["source"], quiet=True)
    return None


STEPS = {"measure": _measure, "predict": _predict, "explain": _explain}
