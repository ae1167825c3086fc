"""The web app's data folder: its videos, their jobs and the cameras it remembers.

Layout of ``DATA/`` (``sepsiscope serve --data``)::

    project.sqlite            videos, jobs (the persistent queue) and cameras
    videos/VIDEO_ID/          one folder per video
        original.EXT          the uploaded file (a zip of frames: its frames in frames/)
        measure/              what ``sepsiscope measure`` writes for it (edits in measure/edits/)
        prediction.json       what ``sepsiscope predict`` returns for it (with RUN)
        predict/              predict's per-frame table
        explain/              Grad-CAM overlays of its frames (with RUN)
    uploads/                  files being received (removed once checked)

SQLite in WAL mode lets the server's request threads and the worker processes read and write at
once; every change is one short transaction. A job is claimed with ``BEGIN IMMEDIATE`` so two
workers never take the same one.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sepsiscope.errors import InputError
from sepsiscope.layout import MeasurementLayout

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    video_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    site TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL DEFAULT '',
    camera TEXT NOT NULL DEFAULT '',
    um_per_px REAL,
    fps REAL,
    filename TEXT NOT NULL,
    source TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    n_frames INTEGER,
    duration_s REAL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id TEXT NOT NULL REFERENCES videos(video_id),
    state TEXT NOT NULL DEFAULT 'queued',
    step TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    worker_pid INTEGER,
    queued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS cameras (
    name TEXT PRIMARY KEY,
    um_per_px REAL,
    fps REAL
);
"""
JOB_STATES = ("queued", "running", "done", "failed")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_id(value: str, what: str = "id") -> str:
    """``value`` if it is a safe file-name-like id (letters, digits, ``. _ -``), else InputError.

    Every id that names a folder goes through here, so no client value reaches a path unchecked.
    """
    if not _SAFE_ID.match(value or "") or ".." in value:
        raise InputError(f"not a valid {what}: {value!r}")
    return value


@dataclass(frozen=True)
class Project:
    """A data folder (see the module docstring)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    database = property(lambda self: self.root / "project.sqlite")
    uploads = property(lambda self: self.root / "uploads")

    def video_dir(self, video_id: str) -> Path:
        return self.root / "videos" / check_id(video_id, "video id")

    def measurements(self, video_id: str) -> MeasurementLayout:
        return MeasurementLayout(self.video_dir(video_id) / "measure")

    def prediction(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "prediction.json"

    def explanations(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "explain"

    def create(self) -> Project:
        """Make the folder and its database (idempotent)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.executescript(SCHEMA)
        return self

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (each statement its own transaction)."""
        db = sqlite3.connect(self.database, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    # videos ---------------------------------------------------------------------------------

    def add_video(self, row: dict[str, Any]) -> None:
        """Record a checked video and queue its job."""
        columns = ("video_id", "patient_id", "site", "label", "camera", "um_per_px", "fps",
                   "filename", "source", "width", "height", "n_frames", "duration_s")  # fmt: skip
        text = {"site", "label", "camera"}  # empty rather than missing
        values = [row.get(c) if row.get(c) is not None else ("" if c in text else None)
                  for c in columns]  # fmt: skip
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                f"INSERT INTO videos ({', '.join(columns)}, added_at) "
                f"VALUES ({', '.join('?' * len(columns))}, ?)",
                [*values, utc_now()],
            )
            db.execute(
                "INSERT INTO jobs (video_id, queued_at) VALUES (?, ?)", (row["video_id"], utc_now())
            )
            db.execute("COMMIT")
        if row.get("camera") and row.get("um_per_px"):
            self.remember_camera(row["camera"], row["um_per_px"], row.get("fps"))

    def videos(
        self, patient_id: str | None = None, *, video_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every video (or a patient's, or one) with its latest job's state, newest first."""
        query = (
            "SELECT v.*, j.job_id, j.state, j.step, j.progress, j.message, j.started_at, "
            "j.finished_at, j.seconds FROM videos v LEFT JOIN jobs j ON j.job_id = "
            "(SELECT MAX(job_id) FROM jobs WHERE video_id = v.video_id)"
        )
        where = {"v.patient_id": patient_id, "v.video_id": video_id}
        given = {k: v for k, v in where.items() if v is not None}
        if given:
            query += " WHERE " + " AND ".join(f"{k} = ?" for k in given)
        with self.connect() as db:
            rows = db.execute(
                query + " ORDER BY v.added_at DESC, v.video_id", tuple(given.values())
            ).fetchall()
        return [dict(r) for r in rows]

    def video(self, video_id: str) -> dict[str, Any] | None:
        rows = self.videos(video_id=video_id)
        return rows[0] if rows else None

    def patients(self) -> list[dict[str, Any]]:
        """One row per patient: number of videos, sites, label, and how many are done."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT v.patient_id, COUNT(*) AS n_videos, "
                "COUNT(DISTINCT NULLIF(v.site, '')) AS n_sites, MAX(v.label) AS label, "
                "SUM(j.state = 'done') AS n_done FROM videos v LEFT JOIN jobs j ON j.job_id = "
                "(SELECT MAX(job_id) FROM jobs WHERE video_id = v.video_id) "
                "GROUP BY v.patient_id ORDER BY v.patient_id"
            ).fetchall()
        return [dict(r) for r in rows]

    def new_video_id(self, patient_id: str, site: str) -> str:
        """``PATIENT_sSITE_N``: the next free id (file-name safe)."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{patient_id}_s{site or 0}")
        stem = re.sub(r"\.{2,}", ".", stem).strip("-.")[:100].strip("-.") or "v"
        with self.connect() as db:
            taken = {r[0] for r in db.execute("SELECT video_id FROM videos")}
        n = 1
        while f"{stem}_{n}" in taken or self.video_dir(f"{stem}_{n}").exists():
            n += 1
        return f"{stem}_{n}"

    # cameras --------------------------------------------------------------------------------

    def remember_camera(self, name: str, um_per_px: float, fps: float | None) -> None:
        with self.connect() as db:
            db.execute(
                "INSERT INTO cameras (name, um_per_px, fps) VALUES (?, ?, ?) ON CONFLICT(name) "
                "DO UPDATE SET um_per_px = excluded.um_per_px, fps = excluded.fps",
                (name, um_per_px, fps),
            )

    def cameras(self) -> dict[str, dict[str, Any]]:
        """The cameras used before, with the µm/px and fps last given for each."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM cameras ORDER BY name").fetchall()
        return {r["name"]: {"um_per_px": r["um_per_px"], "fps": r["fps"]} for r in rows}

    # jobs -----------------------------------------------------------------------------------

    def claim_job(self, worker_pid: int) -> dict[str, Any] | None:
        """Take the oldest queued job (None when there is none)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT * FROM jobs WHERE state = 'queued' ORDER BY job_id LIMIT 1"
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', worker_pid = ?, started_at = ?, "
                "progress = 0, message = '' WHERE job_id = ?",
                (worker_pid, utc_now(), row["job_id"]),
            )
            db.execute("COMMIT")
        return dict(row)

    def update_job(self, job_id: int, **fields: Any) -> None:
        allowed = {"state", "step", "progress", "message", "finished_at", "seconds"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot set {sorted(set(fields) - allowed)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as db:
            db.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ?", [*fields.values(), job_id]
            )

    def requeue_orphans(self) -> int:
        """Queue again the jobs left ``running`` by workers that are gone (a killed or restarted
        server); returns how many."""
        with self.connect() as db:
            rows = db.execute("SELECT job_id, worker_pid FROM jobs WHERE state = 'running'")
            orphans = [r["job_id"] for r in rows if not _alive(r["worker_pid"])]
            for job_id in orphans:
                db.execute(
                    "UPDATE jobs SET state = 'queued', step = '', progress = 0, "
                    "message = 'resumed after a restart' WHERE job_id = ?",
                    (job_id,),
                )
        return len(orphans)

    def has_source(self, source: str) -> str | None:
        """The id of the video already added from ``source`` (a path), or None."""
        with self.connect() as db:
            row = db.execute("SELECT video_id FROM videos WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def set_scale(self, video_id: str, um_per_px: float, fps: float | None) -> None:
        """Give a video its scale (µm/px) and frame rate afterwards, and queue its work again."""
        with self.connect() as db:
            db.execute(
                "UPDATE videos SET um_per_px = ?, fps = COALESCE(?, fps) WHERE video_id = ?",
                (um_per_px, fps, video_id),
            )
        self.requeue(video_id)

    def remove_video(self, video_id: str) -> bool:
        """Take a video out of the project: its row, its jobs and its folder (a video added
        from a manifest stays where it lies). False when it is being processed."""
        import shutil

        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            busy = db.execute(
                "SELECT 1 FROM jobs WHERE video_id = ? AND state = 'running'", (video_id,)
            ).fetchone()
            if busy:
                db.execute("ROLLBACK")
                return False
            db.execute("DELETE FROM jobs WHERE video_id = ?", (video_id,))
            db.execute("DELETE FROM videos WHERE video_id = ?", (video_id,))
            db.execute("COMMIT")
        shutil.rmtree(self.video_dir(video_id), ignore_errors=True)
        return True

    def requeue(self, video_id: str) -> None:
        """Queue a video's work again (after a failure, or to redo it)."""
        with self.connect() as db:
            db.execute(
                "INSERT INTO jobs (video_id, queued_at) VALUES (?, ?)", (video_id, utc_now())
            )

    def seconds_per_video_second(self) -> float | None:
        """Median job time per second of video over the finished jobs (for the time left)."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT j.seconds / v.duration_s FROM jobs j JOIN videos v USING (video_id) "
                "WHERE j.state = 'done' AND v.duration_s > 0 ORDER BY j.job_id DESC LIMIT 20"
            ).fetchall()
        values = sorted(r[0] for r in rows if r[0] is not None)
        return values[len(values) // 2] if values else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
