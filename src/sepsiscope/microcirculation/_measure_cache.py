"""``measure``'s finished videos, kept one by one so that a rerun measures only what is missing.

Each measured (or rejected) video leaves ``OUT/per_video/<video_id>.json`` (its key and figure
paths) beside ``<video_id>.video.parquet`` (its row) and ``<video_id>.vessels.parquet`` (its
segments), all written atomically, the JSON last. The key is the video file (path, size,
modification time) with its µm/px, fps and the analysis settings: a rerun reuses a video only
when none of them changed. The output tables are always rebuilt from these files, for exactly the
videos of the current input, so a rerun with another manifest into the same folder leaves no old
rows, and :func:`prune` removes the figures and files of videos no longer in it. The package
version is part of the key, so a new release measures every video again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sepsiscope import __version__
from sepsiscope._io import read_json, write_json, write_table
from sepsiscope.layout import MeasurementLayout

# settings that do not change a video's figures
_NOT_IN_KEY = {"workers", "scheduler"}


def video_key(row: dict[str, Any], settings: Any) -> str:
    """What a video's result depends on: the file, its scale and rate, the analysis settings."""
    path = Path(row["video"])
    try:
        stat = path.stat()
        # a folder of frames: the newest of its files stands for its content
        mtimes = [stat.st_mtime_ns] + (
            [p.stat().st_mtime_ns for p in path.iterdir()] if path.is_dir() else []
        )
        identity = [stat.st_size, max(mtimes)]
    except OSError:
        identity = None
    record = {
        "sepsiscope": __version__, "video": str(path), "identity": identity,
        "um_per_px": row.get("um_per_px"), "fps": row.get("fps"), "video_id": row["video_id"],
        "settings": {k: v for k, v in settings.model_dump(mode="json").items()
                     if k not in _NOT_IN_KEY},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def load_done(layout: MeasurementLayout, row: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The stored result of this video when its key still matches, else None."""
    meta_path = layout.per_video_meta(row["video_id"])
    try:
        meta = read_json(meta_path)
        if meta.get("key") != key:
            return None
        video = pd.read_parquet(layout.per_video_row(row["video_id"])).to_dict("records")[0]
        vessels = pd.read_parquet(layout.per_video_vessels(row["video_id"]))
    except (OSError, ValueError, IndexError, KeyError):
        return None  # absent, or left half-written by a kill: measured again
    return {"video": video, "vessels": vessels.to_dict("records"), "files": meta.get("files", {})}


def save_done(layout: MeasurementLayout, result: dict[str, Any], key: str) -> None:
    """Keep one video's result (its JSON last: a kill before it leaves the video to redo)."""
    video_id = result["video"]["video_id"]
    write_table(layout.per_video_row(video_id), pd.DataFrame([result["video"]]))
    write_table(layout.per_video_vessels(video_id), pd.DataFrame(result["vessels"]))
    write_json(layout.per_video_meta(video_id), {"key": key, "files": result["files"]})


def prune(layout: MeasurementLayout, keep: set[str]) -> list[str]:
    """Remove the kept results, overlays and space-time diagrams of videos not in ``keep``;
    return their ids."""
    gone: set[str] = set()
    kept_files = (".json", ".video.parquet", ".vessels.parquet")
    for folder, suffixes in ((layout.per_video, kept_files), (layout.overlays, (".png",)),
                             (layout.kymographs, (".png",))):  # fmt: skip
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            suffix = next((s for s in suffixes if path.name.endswith(s)), None)
            if suffix and path.name[: -len(suffix)] not in keep:
                os.unlink(path)
                gone.add(path.name[: -len(suffix)])
    return sorted(gone)
