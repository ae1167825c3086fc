"""The public API: stage functions and settings importable from ``sepsiscope``, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sepsiscope


def test_importing_the_package_loads_neither_torch_nor_lightning():
    code = (
        "import sys, sepsiscope; sepsiscope.IngestSettings; sepsiscope.RunLayout; "
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", [n for n in sepsiscope.__all__ if n != "__version__"])
def test_every_public_name_resolves(name):
    value = getattr(sepsiscope, name)
    assert value is not None and value.__name__ == name
    assert name in dir(sepsiscope)


def test_stage_functions_stay_functions_once_their_rooms_are_imported():
    import sepsiscope.reporting.report  # noqa: F401  (a package attribute named like the verb?)

    assert callable(sepsiscope.report) and sepsiscope.report.__module__.endswith("report")
    assert sepsiscope.train.__module__ == "sepsiscope.classifier.train"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        sepsiscope.nonsense  # noqa: B018
