"""Receiving a video: streamed to disk under a size limit, then decoded before it is accepted.

An upload is written chunk by chunk to ``DATA/uploads/`` (never held in memory), moved into the
video's folder only once its first frames decode, and removed on any failure, so a file that is
not a video leaves nothing behind and affects nothing else. A zip of frames is unpacked by
member *name* only (no folders, no links, image files only, a cap on the unpacked size), so no
name inside it can reach outside the video's folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

from sepsiscope.app.project import Project
from sepsiscope.data.video import (
    CONTAINER_SUFFIXES,
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    natural_key,
    probe_video,
    read_frames,
    resolve_fps,
)
from sepsiscope.errors import InputError

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
ACCEPTED_SUFFIXES = (*CONTAINER_SUFFIXES, *TIFF_SUFFIXES, ".zip")
MAX_ZIP_MEMBERS = 100_000


class UploadTooLarge(InputError):
    """The upload is larger than the server's limit."""


def max_upload_bytes() -> int:
    """The upload limit, bytes: ``SEPSISCOPE_MAX_UPLOAD_BYTES`` or 2 GiB."""
    return int(os.environ.get("SEPSISCOPE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


def upload_suffix(filename: str) -> str:
    """The lower-case suffix of an accepted file name, else InputError saying what is accepted."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise InputError(
            f"{filename!r} is not a video this app reads: give one of "
            f"{', '.join(ACCEPTED_SUFFIXES)} (a .zip holds the frames of one video)"
        )
    return suffix


async def receive(project: Project, chunks: AsyncIterator[bytes], *, limit: int) -> Path:
    """Write the request body to a new file under ``DATA/uploads/``; its path.

    Stops and removes the file as soon as it passes ``limit`` bytes (UploadTooLarge).
    """
    project.uploads.mkdir(parents=True, exist_ok=True)
    path = project.uploads / f"{uuid.uuid4().hex}.part"
    size = 0
    try:
        with open(path, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"the file is larger than this server's limit of {limit / 1024**3:.2f} GiB "
                        "(SEPSISCOPE_MAX_UPLOAD_BYTES)"
                    )
                handle.write(chunk)
        if size == 0:
            raise InputError("the upload is empty")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def accept(
    project: Project, received: Path, filename: str, video_id: str, fps: float | None
) -> dict[str, Any]:
    """Move a received file into the video's folder once it decodes; what it holds.

    Returns ``{source, width, height, n_frames, fps, duration_s}``. On failure (InputError naming
    the problem) the file and the video's folder are removed.
    """
    folder = project.video_dir(video_id)
    try:
        suffix = upload_suffix(filename)
        folder.mkdir(parents=True)
        # named by the video's id, so measure's and predict's names for it are the same
        if suffix == ".zip":
            source = folder / video_id
            _unzip_frames(received, source)
            received.unlink()
        else:
            source = folder / f"{video_id}{suffix}"
            shutil.move(received, source)
        try:
            return check_video(source, fps, name=filename)
        except InputError as exc:  # name the user's file, not the server's path
            raise type(exc)(str(exc).replace(str(source), filename)) from None
    except BaseException:
        received.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        raise


def check_video(source: Path, fps: float | None, *, name: str) -> dict[str, Any]:
    """Probe and decode the first frames of ``source``; ``{source, width, height, n_frames, fps,
    duration_s}``, or InputError naming ``name`` and the problem."""
    info = probe_video(source)
    read_frames(source, stop=2)  # decoded before being accepted, not only probed
    rate = resolve_fps(fps, info.fps, source=name, hint="give the frame rate (fps)")
    return {
        "source": str(source), "width": info.width, "height": info.height,
        "n_frames": info.n_frames, "fps": rate,
        "duration_s": info.n_frames / rate if info.n_frames else None,
    }  # fmt: skip


def add_manifest(project: Project, manifest: Path) -> dict[str, Any]:
    """Add a manifest's videos where they lie (nothing copied): each one checked as an upload
    is; ``{"added": [video ids], "failed": [{video, reason}]}``."""
    import math

    from sepsiscope.data.manifest import read_manifest

    table = read_manifest(manifest, require_files=False, require_scale=False)
    added, failed = [], []
    for row in table.to_dict("records"):
        fps = row.get("fps")
        fps = None if fps is None or (isinstance(fps, float) and math.isnan(fps)) else float(fps)
        scale = row.get("um_per_px")
        scale = None if scale is None or (isinstance(scale, float) and math.isnan(scale)) else scale
        already = project.has_source(str(row["video"]))
        if already:
            failed.append(
                {"video": str(row["video"]), "reason": f"already in the project as {already}"}
            )
            continue
        try:
            info = check_video(Path(row["video"]), fps, name=str(row["video"]))
        except InputError as exc:
            failed.append({"video": str(row["video"]), "reason": str(exc)})
            continue
        site = str(row.get("site") or "").strip()
        video_id = project.new_video_id(str(row["patient_id"]), site)
        project.add_video({
            "video_id": video_id, "patient_id": str(row["patient_id"]), "site": site,
            "label": str(row.get("label") or ""), "camera": str(row.get("camera") or ""),
            "um_per_px": scale, "filename": Path(row["video"]).name, **info,
        })  # fmt: skip
        added.append(video_id)
    return {"added": added, "failed": failed}


def _unzip_frames(archive: Path, folder: Path) -> None:
    """The image members of a zip, by base name only, into ``folder``."""
    limit = max_upload_bytes() * 4
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                raise InputError(f"the zip holds {len(members)} files; at most {MAX_ZIP_MEMBERS}")
            images = [m for m in members
                      if PurePosixPath(m.filename).suffix.lower() in IMAGE_SUFFIXES
                      and not PurePosixPath(m.filename).name.startswith(".")]  # fmt: skip
            if not images:
                raise InputError("the zip holds no image frames (.png, .tif, .jpg, .bmp)")
            if sum(m.file_size for m in images) > limit:
                raise InputError("the zip unpacks to more than this server accepts")
            names = [PurePosixPath(m.filename.replace("\\", "/")).name for m in images]
            if len(set(names)) != len(names):
                raise InputError("the zip holds two frames of the same name in different folders")
            folder.mkdir(parents=True)
            for member, name in sorted(zip(images, names, strict=True),
                                       key=lambda pair: natural_key(pair[1])):  # fmt: skip
                with zf.open(member) as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a readable zip file ({exc})") from None
