"""sepsiscope: sepsis detection research on sublingual dark-field microcirculation videos.

For research only; not a medical device and not for diagnosis.

The stage functions and their settings, importable from here without the CLI::

    >>> import sepsiscope as ss                                              # doctest: +SKIP
    >>> ss.ingest("manifest.csv", "store", ss.IngestSettings(size=224))     # doctest: +SKIP
    >>> ss.train("store", "run", ss.TrainSettings(epochs=10))               # doctest: +SKIP

Names are imported on first use, so ``import sepsiscope`` stays light (no torch, no Lightning).
docs/api.md walks through a notebook session.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it, in pipeline order
_EXPORTS = {
    "SimulateSettings": "sepsiscope.simulate.cohort",
    "simulate_cohort": "sepsiscope.simulate.cohort",
    "IngestSettings": "sepsiscope.data.ingest",
    "ingest": "sepsiscope.data.ingest",
    "store_info": "sepsiscope.data.ingest",
    "FrameStore": "sepsiscope.data.store",
    "read_manifest": "sepsiscope.data.manifest",
    "TrainSettings": "sepsiscope.classifier.train",
    "train": "sepsiscope.classifier.train",
    "EvaluateSettings": "sepsiscope.classifier.evaluate",
    "evaluate": "sepsiscope.classifier.evaluate",
    "CrossvalSettings": "sepsiscope.classifier.crossval",
    "crossval": "sepsiscope.classifier.crossval",
    "EmbedSettings": "sepsiscope.representations.embed",
    "embed": "sepsiscope.representations.embed",
    "AutoencodeSettings": "sepsiscope.representations.autoencode",
    "autoencode": "sepsiscope.representations.autoencode",
    "ClusterSettings": "sepsiscope.representations.cluster",
    "cluster": "sepsiscope.representations.cluster",
    "MeasureSettings": "sepsiscope.microcirculation.measure",
    "measure": "sepsiscope.microcirculation.measure",
    "InterpretSettings": "sepsiscope.microcirculation.interpret",
    "interpret": "sepsiscope.microcirculation.interpret",
    "PredictSettings": "sepsiscope.apply.predict",
    "predict": "sepsiscope.apply.predict",
    "ExplainSettings": "sepsiscope.apply.explain",
    "explain": "sepsiscope.apply.explain",
    "export": "sepsiscope.apply.export",
    "ReportSettings": "sepsiscope.reporting.report",
    "report": "sepsiscope.reporting.report",
    "DemoSettings": "sepsiscope.demo",
    "run_demo": "sepsiscope.demo",
    "RunLayout": "sepsiscope.layout",
    "StoreLayout": "sepsiscope.layout",
    "MeasurementLayout": "sepsiscope.layout",
    "InputError": "sepsiscope.errors",
    "PartialFailure": "sepsiscope.errors",
    "SepsiscopeError": "sepsiscope.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sepsiscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
