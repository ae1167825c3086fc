"""``sepsiscope serve``: the web app (FastAPI), its pages and the HTTP API beneath them.

The pages are Jinja templates (autoescaped) with a little vanilla JavaScript, all served from the
package; nothing is fetched from elsewhere. The API (OpenAPI schema at ``/docs``) is what the
pages use and what a script can use:

- ``POST /api/videos?filename=&patient_id=&site=&label=&camera=&um_per_px=&fps=`` with the
  file as the request body (``curl --data-binary @v.avi``): checked, stored, queued;
- ``GET /api/videos``, ``GET /api/videos/{id}``, ``GET /api/videos/{id}/vessels``,
  ``POST /api/videos/{id}/edits``, ``GET /api/videos/{id}/export.csv``;
- ``GET /api/patients/{id}``, ``.../export.csv``, ``.../report.html``;
- ``GET /api/events``: job progress as server-sent events.

Safety: the server binds to 127.0.0.1 unless told otherwise, and then a token is required on
every request (``?token=`` once, then a cookie; or ``Authorization: Bearer``). Ids from the
client are checked against a strict pattern before they name a folder
(:func:`~sepsiscope.app.project.check_id`), file names are looked up in what a stage wrote, never
joined, and every page is escaped and served with a Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from sepsiscope._io import to_json
from sepsiscope.app import jobs as job_runner
from sepsiscope.app import views
from sepsiscope.app.project import Project, check_id
from sepsiscope.app.uploads import (
    UploadTooLarge,
    accept,
    max_upload_bytes,
    receive,
    upload_suffix,
)
from sepsiscope.errors import InputError, SepsiscopeError
from sepsiscope.microcirculation.review import Edit, EditConflict

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
RESEARCH_ONLY = "Research use only. Not a medical device; not for diagnosis."
TOKEN_COOKIE = "sepsiscope_token"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; media-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
LABELS = ("", "septic", "non-septic")


class EditRequest(BaseModel):
    """Edits made on ``version`` of a video's review (409 if someone saved since)."""

    version: int = Field(ge=0)
    author: str = Field("", max_length=200)
    edits: list[Edit] = Field(min_length=1, max_length=500)


def create_app(
    data: str | Path,
    run: str | Path | None = None,
    *,
    token: str | None = None,
    workers: int = 1,
    live: str | None = None,
    live_max_seconds: float | None = None,
) -> FastAPI:
    """The app over the data folder ``data`` (created if missing) and an optional trained run.

    ``workers`` job processes start with the app (0: none, jobs wait; tests run them by hand).
    With ``token`` every request must carry it. ``live`` names a camera (index, device, stream
    URL, or a file replayed as a camera) for the live view, which needs the run.
    """
    project = Project(Path(data)).create()
    run_dir = Path(run).resolve() if run else None
    run_text = _run_description(run_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from sepsiscope._lock import writer_lock

        with writer_lock(project.root, "serve"):
            resumed = project.requeue_orphans()
            if resumed:
                log.warning("%d unfinished job(s) queued again", resumed)
            started = job_runner.start_workers(project, run_dir, workers) if workers else []
            try:
                yield
            finally:
                job_runner.stop_workers(started)

    # FastAPI's own /docs page loads Swagger UI from a CDN; ours lists the schema from the package
    app = FastAPI(
        title="sepsiscope", description=RESEARCH_ONLY, lifespan=lifespan,
        version=_version(), docs_url=None, redoc_url=None,
    )  # fmt: skip
    app.state.project, app.state.run_dir = project, run_dir
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(research_only=RESEARCH_ONLY, run_text=run_text)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):  # noqa: ANN001, ANN202
        if token is not None and not _has_token(request, token):
            return JSONResponse({"detail": "a token is required (start URL ?token=...)"}, 401)
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            # another web site in the user's browser must not add, edit or delete anything here
            return JSONResponse({"detail": "requests from other sites are refused"}, 403)
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.exception_handler(SepsiscopeError)
    async def sepsiscope_error(request: Request, exc: SepsiscopeError) -> JSONResponse:
        status = 409 if isinstance(exc, EditConflict) else 413 if isinstance(
            exc, UploadTooLarge
        ) else 400 if isinstance(exc, InputError) else 500  # fmt: skip
        return JSONResponse({"detail": str(exc)}, status)

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context)

    # pages ------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> HTMLResponse:
        return page(request, "index.html", patients=project.patients(), videos=project.videos(),
                    cameras=project.cameras(), has_run=run_dir is not None,
                    limit_gib=max_upload_bytes() / 1024**3)  # fmt: skip

    @app.get("/videos/{video_id}", response_class=HTMLResponse, include_in_schema=False)
    def video_page(request: Request, video_id: str) -> HTMLResponse:
        view = views.video_view(project, _video_id(video_id))
        return page(request, "video.html", v=view, video_id=video_id)

    @app.get("/patients/{patient_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def patient_page(request: Request, patient_id: str) -> HTMLResponse:
        return page(request, "patient.html", p=views.patient_view(project, patient_id))

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        """The API: every route of the OpenAPI schema (``/openapi.json``), with its parameters."""
        return page(request, "api.html", routes=_routes(app.openapi()))

    live_lock = threading.Lock()

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page(request: Request) -> HTMLResponse:
        return page(request, "live.html", live=live, has_run=run_dir is not None)

    @app.get("/api/live.mjpg")
    def live_stream() -> StreamingResponse:
        """The live camera's picture with the rolling probability drawn over it, as an MJPEG
        stream (one viewer at a time: a camera opens once)."""
        if live is None or run_dir is None:
            raise InputError("no live source: start the server with a run and --live SOURCE")
        if not live_lock.acquire(blocking=False):
            raise HTTPException(409, "the live view is open in another tab or window")
        from sepsiscope.apply.predict import PredictSettings, live_annotated

        try:
            frames = live_annotated(run_dir, live, PredictSettings(max_seconds=live_max_seconds))
            first = next(frames, None)  # errors (no camera, ...) become a message, not a stream
        except BaseException:
            live_lock.release()
            raise

        def parts() -> Iterator[bytes]:
            try:
                frame = first
                while frame is not None:
                    jpeg = _jpeg(frame[:, :, ::-1]).body  # RGB to OpenCV's BGR
                    yield (b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")
                    frame = next(frames, None)
            finally:
                frames.close()
                live_lock.release()

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    # API: videos ------------------------------------------------------------------------------

    @app.post("/api/videos", status_code=201)
    async def upload_video(
        request: Request,
        filename: Annotated[str, Query(max_length=255)],
        patient_id: Annotated[str, Query(min_length=1, max_length=100)],
        site: Annotated[str, Query(max_length=50)] = "",
        label: Annotated[str, Query()] = "",
        camera: Annotated[str, Query(max_length=100)] = "",
        um_per_px: Annotated[float | None, Query(gt=0, le=100)] = None,
        fps: Annotated[float | None, Query(gt=0, le=10000)] = None,
    ) -> dict[str, Any]:
        """Add a video: the request body is the file (AVI, MP4/MOV, multi-page TIFF, or a zip
        of frames); it is decoded before it is accepted, then queued for measure (and predict)."""
        if label not in LABELS:
            raise InputError(f"label must be septic, non-septic or empty, not {label!r}")
        if not patient_id.isprintable():
            raise InputError("a patient id cannot hold control characters")
        upload_suffix(filename)  # before a byte is received
        limit = max_upload_bytes()
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise UploadTooLarge(f"the file ({declared / 1024**3:.2f} GiB) is larger than this "
                                 f"server's limit of {limit / 1024**3:.2f} GiB")  # fmt: skip
        um_per_px = um_per_px or _camera_scale(project, camera)
        fps = fps or (project.cameras().get(camera) or {}).get("fps")
        site = site.strip()
        received = await receive(project, request.stream(), limit=limit)
        try:
            video_id = project.new_video_id(patient_id, site)
            info = await run_in_threadpool(accept, project, received, filename, video_id, fps)
        finally:
            received.unlink(missing_ok=True)  # moved into place when accepted
        row = {"video_id": video_id, "patient_id": patient_id, "site": site, "label": label,
               "camera": camera, "um_per_px": um_per_px, "filename": filename, **info}  # fmt: skip
        project.add_video(row)
        return {"video_id": video_id, "url": f"/videos/{video_id}", **info,
                "um_per_px": um_per_px}  # fmt: skip

    @app.post("/api/manifests", status_code=201)
    def post_manifest(path: Annotated[str, Body(embed=True, max_length=4096)]) -> dict[str, Any]:
        """Add the videos of a manifest on the server's disk where they lie (CSV, Parquet or
        XLSX; docs/manifest.md), each checked as an upload is."""
        from sepsiscope.app.uploads import add_manifest
        from sepsiscope.data.manifest import MANIFEST_SUFFIXES

        manifest = Path(path).expanduser()
        if not manifest.is_absolute() or manifest.suffix.lower() not in MANIFEST_SUFFIXES:
            raise InputError(
                f"give the absolute path of a manifest ({', '.join(MANIFEST_SUFFIXES)})"
            )
        if not manifest.is_file():
            raise InputError(f"{manifest}: no such manifest")
        return add_manifest(project, manifest)

    @app.get("/api/videos")
    def list_videos() -> list[dict[str, Any]]:
        """Every video with its job's state."""
        return project.videos()

    @app.get("/api/videos/{video_id}")
    def get_video(video_id: str) -> Response:
        """Everything the video's page shows (metrics after edits, prediction, quality)."""
        return _json(views.video_view(project, _video_id(video_id)))

    @app.delete("/api/videos/{video_id}")
    def delete_video(video_id: str) -> dict[str, Any]:
        """Take a video out of the project, with its results and edits (409 while it runs)."""
        if project.video(_video_id(video_id)) is None:
            raise HTTPException(404, f"no video {video_id!r}")
        if not project.remove_video(video_id):
            raise HTTPException(409, f"{video_id} is being processed: try again when it is done")
        return {"removed": video_id}

    @app.post("/api/videos/{video_id}/scale")
    def set_scale(
        video_id: str,
        um_per_px: Annotated[float, Body(gt=0, le=100)],
        fps: Annotated[float | None, Body(gt=0, le=10000)] = None,
    ) -> dict[str, Any]:
        """Give a video its scale (µm/px; and fps) after it was added, and measure it again."""
        if project.video(_video_id(video_id)) is None:
            raise HTTPException(404, f"no video {video_id!r}")
        project.set_scale(video_id, um_per_px, fps)
        return {"queued": video_id, "um_per_px": um_per_px}

    @app.post("/api/videos/{video_id}/requeue")
    def requeue(video_id: str) -> dict[str, Any]:
        """Run the video's work again (after a failure, or a new run)."""
        project.requeue(_video_id(video_id))
        return {"queued": video_id}

    @app.get("/api/videos/{video_id}/vessels")
    def get_vessels(video_id: str) -> Response:
        """The vessels to draw and edit (centrelines in analysed px)."""
        return _json(views.vessels_view(project, _video_id(video_id)))

    @app.post("/api/videos/{video_id}/edits")
    def post_edits(video_id: str, request: Annotated[EditRequest, Body()]) -> Response:
        """Save edits made on ``version``; 409 if the review changed since (reload, edit again).
        Returns the video's metrics after them."""
        edits = [e.model_copy(update={"author": request.author}) for e in request.edits]
        view = views.save_edits(project, _video_id(video_id), edits, version=request.version)
        return _json(view)

    @app.get("/api/videos/{video_id}/export.csv")
    def export_video(video_id: str) -> Response:
        """The video's metrics (reviewed and automatic, which were edited) as CSV."""
        view = views.video_view(project, _video_id(video_id))
        table = pd.DataFrame(view["metrics"])
        return _csv(table, f"{video_id}_metrics.csv")

    @app.get("/api/videos/{video_id}/vessels.csv")
    def export_vessels(video_id: str) -> Response:
        """The reviewed vessel table (edited, excluded and added vessels marked) as CSV."""
        table = views.require_reviewable(project, _video_id(video_id)).table()
        return _csv(table.drop(columns=["path_px"]), f"{video_id}_vessels.csv")

    @app.get("/api/videos/{video_id}/image.png")
    def mean_image(video_id: str) -> Response:
        """The registered mean image the vessels are drawn on (analysed pixel grid)."""
        geometry = _geometry(video_id)
        return _png(geometry.mean_image)

    @app.get("/api/videos/{video_id}/frames/{index}.jpg")
    def frame(video_id: str, index: int) -> Response:
        """Frame ``index`` of the original video (for scrubbing)."""
        from sepsiscope.data.video import iter_frames

        video = project.video(_video_id(video_id))
        if video is None:
            raise InputError(f"no video {video_id!r}")
        last = None
        for i, image in iter_frames(video["source"], stop=max(0, index) + 1):
            last = (i, image)
        if last is None:
            raise InputError(f"{video_id}: no frame {index}")
        return _jpeg(last[1])

    @app.get("/api/videos/{video_id}/kymograph/{segment}.png")
    def kymograph(video_id: str, segment: int) -> Response:
        """A vessel's space-time diagram (position along it across, time down)."""
        geometry = _geometry(video_id)
        if not geometry.kymographs or not 0 <= segment < len(geometry.kymographs):
            raise InputError(f"{video_id}: no space-time diagram of vessel {segment}")
        import cv2

        k = geometry.kymographs[segment]
        # drawn at least 3 px per µm-ish sample across and 2 px per frame down, to be readable
        rows = k.shape[0] * max(1, round(300 / max(k.shape[0], 1)))
        k = cv2.resize(k, (max(60, k.shape[1] * 3), rows), interpolation=cv2.INTER_NEAREST)
        return _png(k)

    @app.get("/api/videos/{video_id}/files/{kind}/{name}")
    def stage_file(video_id: str, kind: str, name: str) -> Response:
        """A PNG a stage wrote for the video: ``gradcam`` (explain), ``overlay`` or
        ``kymographs`` (measure). Looked up among the files written, never joined."""
        video_id = _video_id(video_id)
        if kind == "gradcam":
            folder = project.explanations(video_id)
            files = {p.name: p for p in folder.glob("*.png")} if folder.exists() else {}
        elif kind in ("overlay", "kymographs"):
            layout = project.measurements(video_id)
            folder = layout.overlays if kind == "overlay" else layout.kymographs
            files = {p.name: p for p in folder.glob("*.png")} if folder.exists() else {}
        else:
            files = {}
        if name not in files:
            raise HTTPException(404, "no such file")
        return Response(files[name].read_bytes(), media_type="image/png")

    # API: patients ----------------------------------------------------------------------------

    @app.get("/api/patients")
    def list_patients() -> list[dict[str, Any]]:
        """Patients with their numbers of videos, sites and finished videos."""
        return project.patients()

    @app.get("/api/patients/{patient_id:path}/export.csv")
    def export_patient(patient_id: str) -> Response:
        """The patient's videos and their figures as CSV (``edits``: how many were made)."""
        view = views.patient_view(project, patient_id)
        table = pd.DataFrame(view["videos"])
        table.insert(0, "patient_id", patient_id)
        table["hi_across_sites"] = view["hi"]
        table["patient_probability"] = view["probability"]
        table["patient_verdict"] = view["verdict"]
        return _csv(table, f"{_file_stem(patient_id)}.csv")

    @app.get("/api/patients/{patient_id:path}/report.html")
    def patient_report(patient_id: str) -> Response:
        """A self-contained HTML report of the patient (figures embedded)."""
        from sepsiscope.app.patient_report import patient_html

        html = patient_html(project, views.patient_view(project, patient_id), run_text)
        headers = {"Content-Disposition": f'attachment; filename="{_file_stem(patient_id)}.html"'}
        return HTMLResponse(html, headers=headers)

    @app.get("/api/patients/{patient_id:path}")
    def get_patient(patient_id: str) -> Response:
        """A patient's videos, HI across sites and patient-level probability."""
        return _json(views.patient_view(project, patient_id))

    @app.get("/api/cameras")
    def cameras() -> dict[str, Any]:
        """The cameras this project has seen, with their µm/px and fps."""
        return project.cameras()

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        """Job progress as server-sent events: a ``jobs`` event whenever a job changes."""

        async def stream() -> AsyncIterator[str]:
            last, beat = None, time.monotonic()
            while not await request.is_disconnected():
                state = await run_in_threadpool(_job_states, project, max(workers, 1))
                if state != last:
                    yield f"event: jobs\ndata: {json.dumps(state)}\n\n"
                    last, beat = state, time.monotonic()
                elif time.monotonic() - beat > 15:
                    yield ": still here\n\n"
                    beat = time.monotonic()
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})  # fmt: skip

    def _geometry(video_id: str) -> Any:
        return views.require_reviewable(project, _video_id(video_id)).geometry

    return app


def _routes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAPI schema's operations, one row each: method, path, summary, parameters."""
    rows = []
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            params = [
                p["name"] + ("" if p.get("required") else "?") for p in op.get("parameters", [])
            ]
            body = op.get("requestBody", {}).get("content", {})
            rows.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": (op.get("description") or "").strip(), "parameters": params,
                "body": ", ".join(body) if body else "",
            })  # fmt: skip
    return rows


# Before any job has finished: seconds of work per second of video (measure, predict and
# Grad-CAM of a 640x480 video on 2 cores, docs/benchmarks.md "Web app"), refined from then on.
DEFAULT_SECONDS_PER_VIDEO_SECOND = 2.0
ANALYSED_S = 10.0  # measure analyses at most the first 10 s of a video


def _job_states(project: Project, workers: int = 1) -> list[dict[str, Any]]:
    """Each video's job state with the time left (s): its own work, and for a queued one the
    work queued before it, shared by the workers."""
    per_second = project.seconds_per_video_second() or DEFAULT_SECONDS_PER_VIDEO_SECOND
    now = time.time()
    videos = project.videos()
    work: dict[str, float] = {}
    for v in videos:
        if v["state"] in ("queued", "running"):
            own = per_second * min(v["duration_s"] or ANALYSED_S, ANALYSED_S)
            if v["state"] == "running" and v["started_at"]:
                own -= now - pd.Timestamp(v["started_at"]).timestamp()
            work[v["video_id"]] = max(1.0, own)
    ahead = 0.0
    left: dict[str, float] = {}
    for v in sorted((v for v in videos if v["video_id"] in work), key=lambda v: v["job_id"]):
        if v["state"] == "running":
            left[v["video_id"]] = work[v["video_id"]]
            ahead += work[v["video_id"]]  # a queued video waits for it too
        else:
            ahead += work[v["video_id"]]
            left[v["video_id"]] = ahead / max(1, workers)
    return [{"video_id": v["video_id"], "state": v["state"], "step": v["step"],
             "progress": round(v["progress"] or 0, 3), "message": v["message"],
             "left_s": round(left[v["video_id"]]) if v["video_id"] in left else None}
            for v in videos]  # fmt: skip


def _video_id(value: str) -> str:
    return check_id(value, "video id")


def _file_stem(value: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", value)[:100] or "patient"


def _camera_scale(project: Project, camera: str) -> float | None:
    from sepsiscope.data.manifest import camera_um_per_px

    if not camera:
        return None
    return (project.cameras().get(camera) or {}).get("um_per_px") or camera_um_per_px(camera)


def _same_origin(request: Request) -> bool:
    """No Origin header (a script, curl), or one naming this server."""
    from urllib.parse import urlsplit

    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _has_token(request: Request, token: str) -> bool:
    given = (
        request.query_params.get("token")
        or request.cookies.get(TOKEN_COOKIE)
        or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    )
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _json(obj: Any) -> Response:
    return Response(to_json(obj, indent=None), media_type="application/json")


def _csv(table: pd.DataFrame, name: str) -> Response:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(buffer.getvalue(), media_type="text/csv", headers=headers)


def _png(image: Any) -> Response:
    import cv2

    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise SepsiscopeError("could not encode the image")
    return Response(data.tobytes(), media_type="image/png")


def _jpeg(image: Any) -> Response:
    import cv2
    import numpy as np

    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise SepsiscopeError("could not encode the frame")
    return Response(data.tobytes(), media_type="image/jpeg")


def _run_description(run_dir: Path | None) -> str:
    """One line naming the run and what it was trained on, for every page."""
    if run_dir is None:
        return "No trained run: metrics only (start with `sepsiscope serve RUN` for the network)."
    from sepsiscope.classifier.ensemble import crossval_model
    from sepsiscope.layout import RunLayout
    from sepsiscope.reporting.report import is_synthetic

    store = RunLayout(run_dir).trained_store()
    kind = crossval_model(run_dir)
    what = {"ensemble": "the cross-validation ensemble", "refit": "the cross-validation refit"}.get(
        kind or "", "the run"
    )
    if store is None:
        return f"Network: {what} {run_dir} (its training data are not recorded)."
    synthetic = store.exists() and is_synthetic(store, None)
    kind = " (synthetic videos from sepsiscope's simulator, not patients)" if synthetic else ""
    return f"Network: {what} {run_dir}, trained on the frame store {store}{kind}."


def _version() -> str:
    from sepsiscope.settings import provenance

    return str(provenance().get("versions", {}).get("sepsiscope", ""))
