"""The web app's HTTP API, in process (FastAPI's test client) over tiny videos."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sepsiscope.app import jobs
from sepsiscope.app.project import Project
from sepsiscope.app.server import create_app
from sepsiscope.data.video import write_video
from tests._ingest_media import vessel_frames
from tests._predict_fixtures import make_run

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("v") / "v.avi"
    write_video(path, vessel_frames(30, seed=1), 25)
    return path.read_bytes()


@pytest.fixture(scope="module")
def served(tmp_path_factory, video_bytes):
    """An app with a tiny run, one video uploaded and its job run (measure, predict, explain)."""
    root = tmp_path_factory.mktemp("app")
    run = make_run(root / "run")
    app = create_app(root / "data", run, workers=0)
    with TestClient(app) as client:
        r = client.post("/api/videos", params={"filename": "first.avi", "patient_id": "P1",
                        "site": "1", "label": "septic", "camera": "microscan"},
                        content=video_bytes)  # fmt: skip
        assert r.status_code == 201, r.text
        jobs.work(str(root / "data"), str(run), 0, once=True)
        yield client, r.json()["video_id"], root


def test_an_upload_is_measured_and_predicted(served) -> None:
    client, video_id, _ = served
    listed = client.get("/api/videos").json()
    assert [(v["video_id"], v["state"]) for v in listed] == [(video_id, "done")]
    view = client.get(f"/api/videos/{video_id}").json()
    assert view["measured"]["status"] == "ok"
    metrics = {m["metric"]: m for m in view["metrics"]}
    assert metrics["mfi"]["healthy"] == "2.97 ± 0.03"
    assert metrics["tvd_small_mm_per_mm2"]["value"] > 0
    assert 0 <= view["prediction"]["probability"] <= 1
    assert view["prediction"]["verdict"] in ("septic", "non-septic", "inconclusive")
    assert len(view["prediction"]["rolling"]["time_s"]) >= 2
    assert view["gradcam"], "explain wrote Grad-CAM frames"
    # the camera's scale was remembered for the next upload
    assert client.get("/api/cameras").json()["microscan"]["um_per_px"] > 0
    # the pages render, naming the run's data and the research-only status
    for url in ("/", f"/videos/{video_id}", "/patients/P1"):
        page = client.get(url)
        assert page.status_code == 200 and "Research use only" in page.text, url
        assert "Network: the run " in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_flow_edit_changes_ppv_and_is_exported_as_edited(served) -> None:
    client, video_id, root = served
    before = {
        m["metric"]: m["value"] for m in client.get(f"/api/videos/{video_id}").json()["metrics"]
    }
    vessels = client.get(f"/api/videos/{video_id}/vessels").json()["vessels"]
    target = next(v for v in vessels if v["small"] and v["flow"] in ("continuous", "sluggish"))
    r = client.post(f"/api/videos/{video_id}/edits", json={
        "version": 0, "author": "nurse A",
        "edits": [{"action": "flow", "segment": target["segment"], "flow": "none"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    after = {m["metric"]: m for m in r.json()["metrics"]}
    assert after["ppv_percent"]["value"] < before["ppv_percent"]
    assert after["ppv_percent"]["edited"] and not after["tvd_mm_per_mm2"]["edited"]
    # a second tab still on version 0 is refused, and nothing is lost
    stale = client.post(f"/api/videos/{video_id}/edits", json={
        "version": 0, "edits": [{"action": "exclude", "segment": 0}]})  # fmt: skip
    assert stale.status_code == 409 and "changed since you loaded it" in stale.json()["detail"]
    exported = pd.read_csv(io.StringIO(client.get(f"/api/videos/{video_id}/export.csv").text))
    row = exported.set_index("metric").loc["ppv_percent"]
    assert bool(row["edited"]) and row["value"] < row["automatic"]
    vessels_csv = pd.read_csv(io.StringIO(client.get(f"/api/videos/{video_id}/vessels.csv").text))
    assert vessels_csv.loc[vessels_csv["segment"] == target["segment"], "edited"].item()
    # the automatic result is untouched; the edits are in their sidecar, with who and when
    project = Project(root / "data")
    measure_id = client.get(f"/api/videos/{video_id}").json()["measured"]["measure_id"]
    sidecar = project.measurements(video_id).edits_of(measure_id)
    assert '"author": "nurse A"' in sidecar.read_text()
    patient = pd.read_csv(io.StringIO(client.get("/api/patients/P1/export.csv").text))
    assert patient["edits"].item() == 1


def test_patient_report_is_self_contained(served) -> None:
    client, _, _ = served
    r = client.get("/api/patients/P1/report.html")
    assert r.status_code == 200
    assert "Research use only" in r.text and "data:image/png;base64" in r.text
    assert 'src="http' not in r.text


def test_a_file_that_is_not_a_video_is_refused_and_leaves_nothing(served) -> None:
    client, _, root = served
    before = sorted((root / "data" / "videos").iterdir())
    r = client.post("/api/videos", params={"filename": "notes.avi", "patient_id": "P2"},
                    content=b"this is not a video" * 100)  # fmt: skip
    assert r.status_code == 400 and "not a readable video" in r.json()["detail"]
    r = client.post("/api/videos", params={"filename": "notes.txt", "patient_id": "P2"},
                    content=b"x")  # fmt: skip
    assert r.status_code == 400 and ".avi" in r.json()["detail"]
    assert sorted((root / "data" / "videos").iterdir()) == before
    assert not list((root / "data" / "uploads").iterdir())


def test_uploads_over_the_limit_are_refused(served, monkeypatch, video_bytes) -> None:
    client, _, root = served
    monkeypatch.setenv("SEPSISCOPE_MAX_UPLOAD_BYTES", "1000")
    r = client.post("/api/videos", params={"filename": "big.avi", "patient_id": "P2"},
                    content=video_bytes)  # fmt: skip
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert not list((root / "data" / "uploads").iterdir())


def test_a_zip_of_frames_is_one_video_and_cannot_escape(served, tmp_path: Path) -> None:
    client, _, root = served
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i, frame in enumerate(vessel_frames(30, seed=2)):
            zf.writestr(f"../../evil/frame_{i:03d}.png", cv2.imencode(".png", frame)[1].tobytes())
    r = client.post("/api/videos", params={"filename": "frames.zip", "patient_id": "P3",
                    "fps": 25, "um_per_px": 1.0}, content=buffer.getvalue())  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["n_frames"] == 30
    assert not (root / "evil").exists() and not (root / "data" / "evil").exists()


def test_script_in_a_patient_id_is_escaped(served, video_bytes) -> None:
    client, _, _ = served
    r = client.post("/api/videos", params={"filename": "x.avi", "patient_id": XSS},
                    content=video_bytes)  # fmt: skip
    assert r.status_code == 201, r.text
    video_id = r.json()["video_id"]
    assert "<" not in video_id
    for url in ("/", f"/videos/{video_id}"):
        text = client.get(url).text
        assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.parametrize("url", [
    "/api/videos/..%2F..%2Fetc/export.csv", "/api/videos/%2E%2E/image.png",
    "/videos/%2E%2E", "/api/videos/x/files/gradcam/..%2F..%2Fproject.sqlite",
    "/api/videos/x/files/overlay/%2Fetc%2Fpasswd", "/static/..%2F..%2Fserver.py",
    "/api/videos/x/frames/0.jpg",
])  # fmt: skip
def test_paths_from_the_client_never_reach_outside(served, url: str) -> None:
    client, _, _ = served
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert "root:" not in r.text and "SQLite" not in r.text and "import" not in r.text


def test_with_a_token_every_request_needs_it(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", token="s3cret", workers=0)
    with TestClient(app) as client:
        for url in ("/", "/api/videos", "/docs", "/static/app.js", "/api/events"):
            assert client.get(url).status_code == 401, url
        assert (
            client.get("/api/videos", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        assert (
            client.get("/api/videos", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )
        first = client.get("/?token=s3cret")
        assert first.status_code == 200 and "sepsiscope_token" in first.headers["set-cookie"]
        assert client.get("/api/videos").status_code == 200  # the cookie carries it now


def test_a_restart_resumes_a_job_its_worker_left(tmp_path: Path, video_bytes) -> None:
    app = create_app(tmp_path / "data", workers=0)
    with TestClient(app) as client:
        r = client.post("/api/videos", params={"filename": "a.avi", "patient_id": "P",
                        "um_per_px": 1.0}, content=video_bytes)  # fmt: skip
        video_id = r.json()["video_id"]
    project = Project(tmp_path / "data")
    job = project.claim_job(worker_pid=2**22 + 12345)  # a worker that no longer exists
    assert job is not None and project.video(video_id)["state"] == "running"
    with TestClient(create_app(tmp_path / "data", workers=0)):
        assert project.video(video_id)["state"] == "queued"
    jobs.work(str(tmp_path / "data"), None, 0, once=True)
    assert project.video(video_id)["state"] == "done", project.video(video_id)["message"]
    assert project.measurements(video_id).videos.exists()


def test_a_manifest_on_disk_adds_its_videos_where_they_lie(served, tmp_path: Path) -> None:
    client, _, _ = served
    from tests._ingest_media import cohort

    manifest, rows = cohort(tmp_path / "cohort", 2, n_frames=30)
    text = manifest.read_text() + "p09,videos/missing.avi,septic,microscan\n"
    manifest.write_text(text)
    r = client.post("/api/manifests", json={"path": str(manifest)})
    assert r.status_code == 201, r.text
    result = r.json()
    assert len(result["added"]) == 2 and len(result["failed"]) == 1
    assert "missing.avi" in result["failed"][0]["video"]
    video = client.get(f"/api/videos/{result['added'][0]}").json()["video"]
    assert video["source"].startswith(str(tmp_path / "cohort"))  # not copied
    assert video["um_per_px"] > 0  # from the camera named in the manifest
    again = client.post("/api/manifests", json={"path": str(manifest)}).json()
    assert again["added"] == [] and all("already in the project" in f["reason"]
                                        for f in again["failed"][:2])  # fmt: skip
    for bad in ("relative/manifest.csv", str(tmp_path / "nothing.csv"), "/etc/passwd"):
        assert client.post("/api/manifests", json={"path": bad}).status_code == 400


def test_the_api_is_described_without_anything_from_elsewhere(served) -> None:
    client, _, _ = served
    schema = client.get("/openapi.json").json()
    assert {"/api/videos", "/api/videos/{video_id}/edits", "/api/events"} <= set(schema["paths"])
    page = client.get("/docs")
    assert page.status_code == 200 and "/api/videos/{video_id}/edits" in page.text
    assert "cdn" not in page.text.lower() and 'src="http' not in page.text


def test_an_edit_of_a_vessel_that_is_not_there_is_refused_and_not_kept(served) -> None:
    client, video_id, _ = served
    version = client.get(f"/api/videos/{video_id}").json()["review_version"]
    edit = {"action": "flow", "segment": 99999, "flow": "none"}
    r = client.post(f"/api/videos/{video_id}/edits", json={"version": version, "edits": [edit]})
    assert r.status_code == 400 and "99999" in r.json()["detail"]
    assert client.get(f"/api/videos/{video_id}").json()["review_version"] == version


def test_live_view_streams_the_annotated_camera(tmp_path: Path, video_bytes) -> None:
    recording = tmp_path / "camera.avi"
    recording.write_bytes(video_bytes)  # a file replayed at its frame rate, as a camera sends
    run = make_run(tmp_path / "run")
    app = create_app(tmp_path / "data", run, workers=0, live=str(recording), live_max_seconds=1.0)
    with TestClient(app) as client:
        assert "/api/live.mjpg" in client.get("/live").text
        with client.stream("GET", "/api/live.mjpg") as r:
            assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
            body = b"".join(r.iter_bytes())
        parts = [p for p in body.split(b"--frame") if b"image/jpeg" in p]
        assert len(parts) >= 2
        jpeg = parts[0].split(b"\r\n\r\n", 1)[1]
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[0] > 300 and image.shape[1] >= 600  # picture, Grad-CAM, trace below
    no_live = create_app(tmp_path / "data2", run, workers=0)
    with TestClient(no_live) as client:
        assert client.get("/api/live.mjpg").status_code == 400
        assert "No camera attached" in client.get("/live").text


def test_a_video_of_unknown_scale_can_be_given_one_and_removed(tmp_path: Path, video_bytes) -> None:
    app = create_app(tmp_path / "data", workers=0)
    with TestClient(app) as client:
        r = client.post("/api/videos", params={"filename": "a.avi", "patient_id": "P9",
                        "site": " "}, content=video_bytes)  # fmt: skip
        video_id = r.json()["video_id"]
        assert video_id == "P9_s0_1" and client.get("/api/videos").json()[0]["site"] == ""
        jobs.work(str(tmp_path / "data"), None, 0, once=True)
        view = client.get(f"/api/videos/{video_id}").json()
        assert view["measured"] is None and "scale" in view["video"]["message"]
        # the patient page shows the unmeasured video (no figures) rather than failing
        assert client.get("/patients/P9").status_code == 200
        assert "Measure with this scale" in client.get(f"/videos/{video_id}").text
        r = client.post(f"/api/videos/{video_id}/scale", json={"um_per_px": 1.0})
        assert r.status_code == 200
        jobs.work(str(tmp_path / "data"), None, 0, once=True)
        view = client.get(f"/api/videos/{video_id}").json()
        assert view["measured"]["status"] == "ok"
        vessels = pd.read_csv(io.StringIO(client.get(f"/api/videos/{video_id}/vessels.csv").text))
        assert set(vessels["video_id"]) == {video_id}  # the app's id names its vessels
        assert client.delete(f"/api/videos/{video_id}").status_code == 200
        assert client.get("/api/videos").json() == []
        assert not (tmp_path / "data" / "videos" / video_id).exists()


def test_a_refused_upload_leaves_no_temporary_file(tmp_path: Path, video_bytes) -> None:
    app = create_app(tmp_path / "data", workers=0)
    with TestClient(app) as client:
        r = client.post("/api/videos", params={"filename": "a.avi", "patient_id": "P/../x"},
                        content=video_bytes)  # fmt: skip
        assert r.status_code == 201 and ".." not in r.json()["video_id"]
        r = client.post("/api/videos", params={"filename": "b.avi", "patient_id": "Q"},
                        content=b"garbage" * 1000)  # fmt: skip
        assert r.status_code == 400 and str(tmp_path) not in r.json()["detail"]
        assert "b.avi" in r.json()["detail"]
        assert not list((tmp_path / "data" / "uploads").iterdir())


def test_time_left_counts_the_queue_ahead(tmp_path: Path) -> None:
    from sepsiscope.app.server import DEFAULT_SECONDS_PER_VIDEO_SECOND, _job_states

    project = Project(tmp_path / "data").create()
    for i in range(3):
        project.add_video({"video_id": f"v{i}", "patient_id": "P", "filename": "x.avi",
                           "source": "x.avi", "duration_s": 4.0})  # fmt: skip
    project.claim_job(worker_pid=os.getpid())  # v0 runs
    left = {s["video_id"]: s["left_s"] for s in _job_states(project, workers=1)}
    one = 4.0 * DEFAULT_SECONDS_PER_VIDEO_SECOND
    assert left["v0"] == pytest.approx(one, abs=1.5)
    assert left["v1"] == pytest.approx(2 * one, abs=1.5)
    assert left["v2"] == pytest.approx(3 * one, abs=1.5)
    shared = {s["video_id"]: s["left_s"] for s in _job_states(project, workers=2)}
    assert shared["v2"] == pytest.approx(1.5 * one, abs=1.5)


def test_changes_from_another_site_are_refused(tmp_path: Path, video_bytes) -> None:
    with TestClient(create_app(tmp_path / "data", workers=0)) as client:
        params = {"filename": "a.avi", "patient_id": "P"}
        evil = client.post("/api/videos", params=params, content=video_bytes,
                           headers={"Origin": "https://evil.example"})  # fmt: skip
        assert evil.status_code == 403 and client.get("/api/videos").json() == []
        same = client.post("/api/videos", params=params, content=video_bytes,
                           headers={"Origin": "http://testserver"})  # fmt: skip
        assert same.status_code == 201
