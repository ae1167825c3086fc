"""docs/api.md's notebook session runs as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[1] / "docs" / "api.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.slow
def test_the_notebook_session_runs(tmp_path, monkeypatch, capsys, one_torch_thread):
    (block,) = code_blocks(DOC.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(DOC), "exec"), {"__name__": "api_doc"})
    printed = capsys.readouterr().out
    assert "6 videos," in printed and "best epoch" in printed
    assert re.search(r"^(septic|non-septic) 0\.\d+", printed, flags=re.MULTILINE)
    assert (tmp_path / "api-demo" / "run" / "classifier" / "model.safetensors").exists()
    assert (tmp_path / "api-demo" / "run" / "measurements" / "videos.parquet").exists()
