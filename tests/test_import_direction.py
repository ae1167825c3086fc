"""The package's rooms import only from rooms earlier in the pipeline, never from later ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "sepsiscope"

# Each room may import from itself and the rooms before it. `simulate` comes after `data`
# because it writes its videos with data's writer; no stage but the demo reads the simulator.
ORDER = [
    "base",  # errors, settings, layout, _io, _progress (+ _epoch_bar), _checkpoints
    "data",
    "simulate",
    "models",
    "classifier",
    "representations",
    "microcirculation",
    "apply",
    "reporting",
    "app",
    "demo",
    "cli",
]
BASE = {
    "errors",
    "settings",
    "layout",
    "_io",
    "_progress",
    "_epoch_bar",
    "_checkpoints",
    "_lock",
    "_parallel",
}


def room(module: str) -> str:
    """The room of a dotted module name inside sepsiscope ('sepsiscope.data.ingest' -> 'data')."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    if first in BASE:
        return "base"
    if first == "__main__":
        return "cli"
    assert first in ORDER, f"{module}: a module outside every room; add it to ORDER or BASE"
    return first


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every sepsiscope import in a file, at any depth (lazy ones included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sepsiscope":  # a module of the package, or a name of its __init__
                found += [
                    (node.lineno, f"sepsiscope.{a.name}" if _is_module(a.name) else "sepsiscope")
                    for a in node.names
                ]
            elif node.module.startswith("sepsiscope."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("sepsiscope.")]
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_is_in_a_room():
    rooms = {room(module_name(p)) for p in MODULES}
    assert rooms == set(ORDER)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_run_forward_only(path):
    mine = ORDER.index(room(module_name(path)))
    backward = [
        f"line {line}: {target}"
        for line, target in imported_modules(path)
        if target != "sepsiscope" and ORDER.index(room(target)) > mine
    ]
    assert not backward, f"{module_name(path)} imports from later rooms: {backward}"


def test_the_check_catches_a_backward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sepsiscope.apply.predict import predict\n")
    (line, target), *_ = imported_modules(bad)
    assert line == 2 and ORDER.index(room(target)) > ORDER.index("data")
