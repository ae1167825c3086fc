"""Manifest reading and validation: synonyms, paths, fallbacks and every documented error."""

from __future__ import annotations

import pandas as pd
import pytest
from _ingest_media import write_manifest

from sepsiscope.data.manifest import LABEL_SYNONYMS, canonical_label, read_manifest
from sepsiscope.errors import InputError


@pytest.fixture
def files(tmp_path):
    (tmp_path / "videos").mkdir()
    for name in ("a.avi", "b.avi", "c.avi"):
        (tmp_path / "videos" / name).write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("spelling", sorted(LABEL_SYNONYMS))
def test_every_documented_synonym_maps_case_insensitively(spelling):
    assert canonical_label(f"  {spelling.upper()} ") == LABEL_SYNONYMS[spelling]


def test_reads_relative_and_absolute_paths_and_camera_fallback(files):
    absolute = files / "videos" / "c.avi"
    path = write_manifest(
        files / "m.csv",
        [
            {"patient_id": "007", "video": "videos/a.avi", "label": "Sepsis", "camera": "CytoCam",
             "um_per_px": "", "fps": ""},
            {"patient_id": "007", "video": "videos/b.avi", "label": "1", "camera": "",
             "um_per_px": "1.3", "fps": "30"},
            {"patient_id": "8", "video": str(absolute), "label": "control", "camera": "microscan",
             "um_per_px": "", "fps": ""},
        ],
    )  # fmt: skip
    table = read_manifest(path)
    assert list(table.patient_id) == ["007", "007", "8"]  # leading zeros kept
    assert list(table.label) == ["septic", "septic", "non-septic"]
    assert list(table.y) == [1, 1, 0]
    assert table.video[0] == str(files / "videos" / "a.avi") and table.video[2] == str(absolute)
    assert list(table.um_per_px) == [0.7, 1.3, 1.0]
    assert table.fps.isna().tolist() == [True, False, True] and table.fps[1] == 30


def test_parquet_manifest_with_numeric_labels(files):
    path = files / "m.parquet"
    pd.DataFrame(
        {"patient_id": [1, 2], "video": ["videos/a.avi", "videos/b.avi"], "label": [1, 0],
         "um_per_px": [1.0, 1.0]}
    ).to_parquet(path)  # fmt: skip
    table = read_manifest(path)
    assert list(table.label) == ["septic", "non-septic"] and list(table.patient_id) == ["1", "2"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"patient_id": "p", "video": "videos/a.avi", "label": "maybe", "um_per_px": 1}],
         r"unknown label: row 2 \('maybe'\)"),
        ([{"patient_id": "p", "video": "videos/a.avi", "label": "septic", "um_per_px": 1},
          {"patient_id": "q", "video": "videos/../videos/a.avi", "label": "septic",
           "um_per_px": 1}], "video listed more than once"),
        ([{"patient_id": "p", "video": "videos/a.avi", "label": "septic", "um_per_px": 1},
          {"patient_id": "p", "video": "videos/b.avi", "label": "no", "um_per_px": 1}],
         "patient with two labels: p"),
        ([{"patient_id": "p", "video": "videos/zz.avi", "label": "septic", "um_per_px": 1}],
         r"file not found .*videos/zz.avi"),
        ([{"patient_id": "p", "video": "videos/a.avi", "label": "septic", "camera": "acme"}],
         r"no um_per_px: row 2 \(videos/a.avi, camera acme\)"),
        ([{"patient_id": "p", "video": "videos/a.avi", "label": "septic", "um_per_px": "-1"}],
         "um_per_px must be a positive number"),
        ([{"patient_id": "", "video": "videos/a.avi", "label": "septic", "um_per_px": 1}],
         "empty patient_id: row 2"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_problem(files, rows, message):
    with pytest.raises(InputError, match=message):
        read_manifest(write_manifest(files / "m.csv", rows))


def test_missing_columns_empty_and_missing_manifest(files):
    (files / "cols.csv").write_text("patient,video\np,videos/a.avi\n")
    with pytest.raises(InputError, match="missing column.*patient_id, label"):
        read_manifest(files / "cols.csv")
    (files / "empty.csv").write_text("patient_id,video,label\n")
    with pytest.raises(InputError, match="lists no videos"):
        read_manifest(files / "empty.csv")
    with pytest.raises(InputError, match="not found"):
        read_manifest(files / "nothing.csv")


def test_missing_file_tolerated_when_ingest_records_it(files):
    rows = [{"patient_id": "p", "video": "videos/gone.avi", "label": "septic", "um_per_px": 1}]
    table = read_manifest(write_manifest(files / "m.csv", rows), require_files=False)
    assert table.video[0].endswith("gone.avi")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Patient ID,Video,LABEL,um-per-px\np1,videos/a.avi,Septic,1.5\n", "utf-8"),
        ("\ufeffpatient id;video;label;µm per px\np1;videos/a.avi;septic;1,5\n", "utf-8"),
        ("Patient-ID\tVideo\tLabel\tUM_PER_PX\np1\tvideos/a.avi\tsepsis\t1.5\n", "utf-8"),
        ("Patient ID;Video;Label;µm per px\np1;videos/a.avi;septic;1,5\n", "cp1252"),
    ],
    ids=["spaces-and-case", "semicolon-bom-decimal-comma", "tab-hyphen", "windows-code-page"],
)
def test_headers_normalised_and_separator_sniffed(files, text, encoding):
    (files / "m.csv").write_bytes(text.encode(encoding))
    table = read_manifest(files / "m.csv")
    assert table.patient_id.tolist() == ["p1"] and table.label.tolist() == ["septic"]
    assert table.video[0] == str(files / "videos" / "a.avi")
    assert table.um_per_px.tolist() == [1.5]


def test_a_comma_csv_keeps_semicolons_inside_its_fields(files):
    (files / "m.csv").write_text("patient_id,video,label,site\np;1,videos/a.avi,septic,a;b\n")
    table = read_manifest(files / "m.csv", require_scale=False)
    assert table.patient_id.tolist() == ["p;1"] and table.site.tolist() == ["a;b"]
