"""The manifest: which videos belong to which patient, and each patient's diagnosis.

A manifest is a CSV (comma, semicolon or tab separated, sniffed from the header line), an Excel
workbook (.xlsx, its first sheet) or a Parquet table, one row per video; headers are matched
case-insensitively with spaces and hyphens read as underscores (:func:`column_name`):

``patient_id`` (required)
    Any text; one patient may have several videos (sites, repeats).
``video`` (required)
    A video file (AVI, MP4, MOV, MKV, multi-page TIFF) or a folder of image frames, relative to
    the manifest's folder or absolute.
``label`` (required)
    ``septic`` or ``non-septic``; case-insensitive synonyms are accepted (:data:`LABEL_SYNONYMS`):
    septic = septic, sepsis, septic-shock, septic_shock, 1, yes, true, positive;
    non-septic = non-septic, nonseptic, non_septic, non septic, control, 0, no, false, negative.
``site``, ``um_per_px``, ``fps``, ``camera`` (optional)
    ``um_per_px`` (µm per pixel of the original frames) falls back on the camera's profile
    (:data:`CAMERA_UM_PER_PX`); ``fps`` falls back on the container's frame rate (image folders and
    TIFF stacks have none, so they need it here).

:func:`read_manifest` validates the whole table at once and raises one
:class:`~sepsiscope.errors.InputError` listing every problem (missing columns, an empty
manifest, unknown labels, duplicate videos, a patient with two labels, missing µm/px, files
missing on disk).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from sepsiscope.errors import InputError

REQUIRED_COLUMNS = ("patient_id", "video", "label")

LABEL_SYNONYMS: dict[str, str] = {
    **{s: "septic" for s in ("septic", "sepsis", "septic-shock", "septic_shock", "septic shock",
                              "1", "yes", "true", "positive")},
    **{s: "non-septic" for s in ("non-septic", "nonseptic", "non_septic", "non septic",
                                  "control", "0", "no", "false", "negative")},
}  # fmt: skip
"""Accepted label spellings (lower-cased, stripped) and the canonical label they mean."""

CAMERA_UM_PER_PX: dict[str, float] = {
    "microscan": 1.0,  # MicroScan SDF, 5x objective, ~720x576 or 640x480 px (1-1.5 µm/px)
    "cytocam": 0.7,  # CytoCam IDF at full resolution: 1.55 x 1.16 mm field
}
"""µm per pixel of the original frames for known cameras, used when the manifest gives none."""

_MAX_LISTED = 8
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", *EXCEL_SUFFIXES)
"""File endings read as a manifest (anything else given where a manifest or a video may stand is
taken for a video)."""


def camera_um_per_px(camera: str) -> float | None:
    """µm/px of a known real camera (case-insensitive name), or None.

    The names match the simulator's profiles (``sepsiscope.simulate.cameras``), but the values are
    the devices' own: the simulator renders at other resolutions and always writes um_per_px into
    its manifest, so its profiles are not consulted here.
    """
    return CAMERA_UM_PER_PX.get(str(camera).strip().lower())


def canonical_label(value: object) -> str | None:
    """The canonical label (``septic`` / ``non-septic``) of a spelling, or None when unknown."""
    text = str(value).strip().lower()
    if text in ("1.0", "0.0"):  # numeric columns read from Parquet or Excel exports
        text = text[0]
    return LABEL_SYNONYMS.get(text)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def column_name(header: object) -> str:
    """A manifest header as its column name: case-insensitive, spaces and hyphens as underscores
    (``Patient ID`` and ``patient-id`` are ``patient_id``; ``µm`` is ``um``)."""
    name = str(header).strip().lstrip("\ufeff").lower().replace("µ", "u").replace("μ", "u")
    return re.sub(r"[\s\-]+", "_", name)


def _separator(first_line: str) -> str:
    """The field separator of a CSV: comma, semicolon (European spreadsheet exports) or tab,
    whichever its header line holds most of (comma on a tie)."""
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: (counts[sep], sep == ","))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:  # spreadsheet exports in the Windows code page
        return path.read_text(encoding="cp1252")


def _load(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"manifest {path} not found")
    sep = ","
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        elif path.suffix.lower() in EXCEL_SUFFIXES:
            # the first sheet, all cells as text (empty cells as ""), as a CSV is read
            table = pd.read_excel(path, sheet_name=0, dtype=str, na_filter=False)
        else:
            text = _read_text(path)
            sep = _separator(text.split("\n", 1)[0])
            # All text: keeps patient ids such as "007" and lets labels 1/0 mix with words.
            table = pd.read_csv(
                io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
            )
    except Exception as exc:  # pandas and pyarrow raise many types for malformed files
        raise InputError(f"manifest {path} cannot be read as a table: {exc}") from exc
    table.columns = [column_name(c) for c in table.columns]
    # A semicolon CSV comes from a spreadsheet whose locale writes decimal commas (1,2 µm/px).
    table.attrs["decimal_comma"] = sep == ";"
    return table


def _number(table: pd.DataFrame, column: str, problems: list[str]) -> tuple[pd.Series, pd.Series]:
    """Positive floats of ``column`` (NaN where empty) and the mask of unparsable entries."""
    if column not in table:
        return pd.Series(np.nan, index=table.index, dtype=float), pd.Series(False, table.index)
    raw = table[column].astype(str).str.strip().replace({"": np.nan, "nan": np.nan, "None": np.nan})
    if table.attrs.get("decimal_comma"):
        raw = raw.str.replace(r"^(\d*),(\d+)$", r"\1.\2", regex=True)
    values = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & (values.isna() | (values <= 0))
    if bad.any():
        rows = [f"row {i + 2} ({raw[i]!r})" for i in table.index[bad]]
        problems.append(f"{column} must be a positive number: {_listing(rows)}")
    return values.where(~bad).astype(float), bad


def read_manifest(
    path: str | os.PathLike, *, require_files: bool = True, require_scale: bool = True
) -> pd.DataFrame:
    """Read and validate a manifest.

    Parameters
    ----------
    path : CSV or Parquet file.
    require_files : when True, a video missing on disk is a validation error; ingest passes False
        and records missing files as failures instead, so that the other videos still ingest.
    require_scale : when True, a row without um_per_px (given or from a known camera) is an error;
        measure and predict pass False and apply their own flags (or need no scale) instead.

    Returns
    -------
    DataFrame with columns patient_id (str), video (str, absolute path), label (``septic`` or
    ``non-septic``), y (1 septic, 0 non-septic), site (str), um_per_px (float, original frames),
    fps (float or NaN = from the container), camera (str), in the manifest's order.

    Example
    -------
    >>> table = read_manifest("cohort/manifest.csv")      # doctest: +SKIP
    """
    path = Path(path).expanduser().resolve()
    table = _load(path)
    _check_columns(path, table)
    table = table.reset_index(drop=True)
    problems: list[str] = []
    patient, video = _text(table, "patient_id"), _text(table, "video")
    _check_filled({"patient_id": patient, "video": video}, problems)
    labels = _labels(table, patient, problems)
    absolute = _video_paths(path.parent, video, problems)
    fps, _ = _number(table, "fps", problems)
    camera = _text(table, "camera")
    given, bad = _number(table, "um_per_px", problems)
    um_per_px, no_scale = _scales(given, bad, camera)
    if require_scale:
        _check_scales(no_scale, video, camera, problems)
    if require_files:
        _check_files(path.parent, video, absolute, problems)
    if problems:
        raise InputError(f"manifest {path}: " + "; ".join(problems))
    return pd.DataFrame(
        {
            "patient_id": patient,
            "video": absolute,
            "label": labels,
            "y": (labels == "septic").astype(np.int64),
            "site": _text(table, "site"),
            "um_per_px": um_per_px.astype(float),
            "fps": fps.astype(float),
            "camera": camera.str.lower(),
        }
    )


def _check_columns(path: Path, table: pd.DataFrame) -> None:
    """InputError when a required column is missing or the manifest has no rows."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table]
    if missing:
        raise InputError(
            f"manifest {path}: missing column(s) {', '.join(missing)} "
            f"(found {', '.join(table.columns) or 'none'}; needs {', '.join(REQUIRED_COLUMNS)})"
        )
    if table.empty:
        raise InputError(f"manifest {path} lists no videos")


def _check_filled(columns: dict[str, pd.Series], problems: list[str]) -> None:
    """Rows with an empty value in any of ``columns`` (name: values) go into ``problems``."""
    for column, values in columns.items():
        if (values == "").any():
            rows = [f"row {i + 2}" for i in values.index[values == ""]]
            problems.append(f"empty {column}: {_listing(rows)}")


def _check_scales(
    no_scale: pd.Index, video: pd.Series, camera: pd.Series, problems: list[str]
) -> None:
    """Rows without µm/px (neither given nor from a known camera) go into ``problems``."""
    if len(no_scale):
        rows = [f"row {i + 2} ({video[i] or '?'}, camera {camera[i] or 'not given'})" for i in
                no_scale]  # fmt: skip
        problems.append(
            f"no um_per_px: {_listing(rows)}; give um_per_px or a known camera "
            f"({', '.join(CAMERA_UM_PER_PX)})"
        )


def _check_files(folder: Path, video: pd.Series, absolute: pd.Series, problems: list[str]) -> None:
    """Videos missing on disk go into ``problems`` (as written in the manifest)."""
    lost = [video[i] for i in video.index if absolute[i] and not Path(absolute[i]).exists()]
    if lost:
        problems.append(f"file not found (relative to {folder}): {_listing(lost)}")


def _text(table: pd.DataFrame, column: str) -> pd.Series:
    """A column as stripped text, "" where missing (or the column absent)."""
    if column not in table:
        return pd.Series("", index=table.index, dtype=object)
    values = table[column].astype(str).str.strip()
    return values.where(~values.isin(("nan", "None", "<NA>")), "")


def _labels(table: pd.DataFrame, patient: pd.Series, problems: list[str]) -> pd.Series:
    """Canonical labels; unknown labels and patients with two labels go into ``problems``."""
    labels = table["label"].map(canonical_label)
    if labels.isna().any():
        rows = [f"row {i + 2} ({table['label'][i]!r})" for i in table.index[labels.isna()]]
        problems.append(
            f"unknown label: {_listing(rows)}; use septic or non-septic "
            f"(accepted: {', '.join(LABEL_SYNONYMS)})"
        )
    per_patient = pd.DataFrame({"p": patient, "l": labels}).dropna().groupby("p")["l"].nunique()
    mixed = sorted(per_patient.index[per_patient > 1])
    if mixed:
        problems.append(f"patient with two labels: {_listing(mixed)}")
    return labels


def _video_paths(folder: Path, video: pd.Series, problems: list[str]) -> pd.Series:
    """Absolute video paths (relative ones resolved against ``folder``); duplicates go into
    ``problems``."""
    bad = [i for i in video.index if "\x00" in video[i]]
    if bad:  # no file system takes a NUL in a name
        rows = [f"row {i + 2}" for i in bad]
        problems.append(f"video path with a NUL character: {_listing(rows)}")
    absolute = [
        str((folder / Path(v).expanduser()).resolve()) if v and "\x00" not in v else ""
        for v in video.tolist()
    ]
    absolute = pd.Series(absolute, index=video.index)
    duplicated = absolute[(absolute != "") & absolute.duplicated(keep=False)]
    if len(duplicated):
        names = sorted({video[i] for i in duplicated.index})
        problems.append(f"video listed more than once: {_listing(names)}")
    return absolute


def _scales(given: pd.Series, bad: pd.Series, camera: pd.Series) -> tuple[pd.Series, pd.Index]:
    """µm/px of every row, given or from a known camera, and the rows that have neither (a
    malformed given value is reported by :func:`_number`, not here)."""
    from_camera = pd.Series([camera_um_per_px(c) if c else None for c in camera], dtype=float)
    um_per_px = given.fillna(from_camera)
    return um_per_px, given.index[um_per_px.isna() & ~bad]
