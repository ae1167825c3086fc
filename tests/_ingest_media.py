"""Small real videos and manifests for the ingest tests (written with sepsiscope.data.video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepsiscope.data.video import write_video


def vessel_frames(
    n: int, height: int = 240, width: int = 320, *, seed: int = 0, drift_px: int = 0,
    level: int = 150, noise: float = 6.0,
) -> list[np.ndarray]:  # fmt: skip
    """``n`` grey uint8 frames: a few dark lines (vessels) on grey with noise, drifting sideways."""
    rng = np.random.default_rng(seed)
    base = np.full((height, width), level, np.int16)
    for row in rng.integers(10, height - 10, 4):
        base[row : row + 4, :] -= 70
    for col in rng.integers(10, width - 10, 4):
        base[:, col : col + 3] -= 60
    out = []
    for i in range(n):
        frame = np.roll(base, i * drift_px, axis=1) + rng.normal(0, noise, (height, width))
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def write_manifest(path: Path, rows: list[dict]) -> Path:
    """A CSV manifest from dicts (columns from the first row)."""
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cohort(
    root: Path, n_patients: int = 6, *, n_frames: int = 30, suffix: str = ".avi"
) -> tuple[Path, list[dict]]:
    """``n_patients`` patients (alternating labels), one 320x240 25 fps video each."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(n_patients):
        name = f"videos/p{p:02d}{suffix}"
        write_video(root / name, vessel_frames(n_frames, seed=p), 25)
        label = "septic" if p % 2 else "non-septic"
        rows.append({"patient_id": f"p{p:02d}", "video": name, "label": label,
                     "camera": "microscan"})  # fmt: skip
    return write_manifest(root / "manifest.csv", rows), rows


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` grey pixels (a decompression bomb's
    header; its pixel data is a few bytes, never enough to decode)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path
