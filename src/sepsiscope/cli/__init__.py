"""The ``sepsiscope`` command: one verb per pipeline stage, each a thin call into the library.

Verbs live in modules by theme and register on one app when imported, here in pipeline order,
which is the order of ``sepsiscope --help``. Exit statuses and output conventions:
:mod:`sepsiscope.cli._common`.
"""

from __future__ import annotations

from sepsiscope.cli._common import app

# isort: off
from sepsiscope.cli import data  # noqa: F401, E402  simulate, ingest, store info
from sepsiscope.cli import classifier  # noqa: F401, E402  train, evaluate, crossval
from sepsiscope.cli import representations  # noqa: F401, E402  embed, autoencode, cluster
from sepsiscope.cli import measurement  # noqa: F401, E402  measure, interpret
from sepsiscope.cli import apply  # noqa: F401, E402  predict, explain, export, report, demo
from sepsiscope.cli import serve  # noqa: F401, E402  serve (the web app)
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    app()
