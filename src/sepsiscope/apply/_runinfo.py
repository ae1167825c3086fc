"""What prediction needs from a run: the model, its input mode, the sampling and the threshold.

Samples at prediction time must be made exactly as ingest made the training samples (size, crop,
field in µm, channel offset, rate), so these come from the run's saved settings or, failing that,
from the store the run was trained on. The threshold is the one fixed on validation by ``evaluate``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepsiscope._io import read_json
from sepsiscope.data.ingest import IngestSettings
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout, StoreLayout

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("size", "crop", "channel_offset_s", "rate_hz", "every", "field_um")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class RunInfo:
    """Input mode, sampling (as ingest did it) and decision threshold of a trained run."""

    root: Path
    input_mode: str
    size: int
    crop: str
    channel_offset_s: float
    rate_hz: float | None
    every: int | None
    threshold: float
    threshold_source: str
    threshold_level: str
    video_rule: str
    field_um: float | None = None  # side of every crop in µm (None: sized in pixels)
    n_members: int = 0  # an ensemble's members (crossval's RUN/ensemble); 0: one model


def _settings_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj) if isinstance(obj, dict) else {}


def _sampling(layout: RunLayout) -> dict[str, Any]:
    """Sampling settings: the run's own record first, then the store it was trained on."""
    sources: list[dict[str, Any]] = []
    saved = layout.saved_training()
    if isinstance(saved.get("sampling"), dict):
        sources.append(saved["sampling"])
    store = layout.trained_store()
    if store is not None and StoreLayout(store).meta.exists():
        sources.append(read_json(StoreLayout(store).meta).get("settings", {}))
    defaults = IngestSettings()
    out: dict[str, Any] = {}
    for name in SAMPLING_KEYS:
        default = getattr(defaults, name)
        found = [s[name] for s in sources if name in s]
        if found:
            out[name] = found[0]
        else:
            out[name] = default
            if name not in ("every", "field_um"):  # None is their usual value
                log.warning(
                    "%s: the run records no sampling setting %r (nor its store): using %r",
                    layout.root,
                    name,
                    default,
                )
    return out


def read_threshold(layout: RunLayout) -> tuple[float, str, str, str]:
    """(threshold, source, level, video_rule); 0.5 with a warning when none was fixed."""
    if not layout.threshold.exists():
        log.warning(
            "%s not found: using threshold %.1f (run `sepsiscope evaluate` to fix one on the "
            "validation split)",
            layout.threshold,
            DEFAULT_THRESHOLD,
        )
        return DEFAULT_THRESHOLD, "default (no threshold.json)", "video", "mean"
    record = read_json(layout.threshold)
    value = record.get("threshold") if isinstance(record, dict) else record
    if not isinstance(value, int | float) or not 0 <= float(value) <= 1:
        raise InputError(f"{layout.threshold}: no threshold in [0, 1] ({value!r})")
    level = str(record.get("level", "video")) if isinstance(record, dict) else "video"
    rule = str(record.get("video_rule", "mean")) if isinstance(record, dict) else "mean"
    return float(value), str(layout.threshold), level, rule


def _load_classifier(root: Path) -> tuple[Any, Any]:
    from sepsiscope.classifier.inference import load_classifier

    return load_classifier(root)


def load_run(run_dir: str | os.PathLike) -> tuple[Any, RunInfo]:
    """The trained model (eval mode, CPU, fp32) and its :class:`RunInfo`."""
    layout = RunLayout(run_dir).require_classifier()
    model, train_settings = _load_classifier(layout.root)
    train = _settings_dict(train_settings)
    sampling = _sampling(layout)
    threshold, source, level, rule = read_threshold(layout)
    info = RunInfo(
        root=layout.root,
        input_mode=str(train.get("input_mode", getattr(train_settings, "input_mode", "time"))),
        size=int(sampling["size"]),
        crop=str(sampling["crop"]),
        channel_offset_s=float(sampling["channel_offset_s"]),
        rate_hz=None if sampling["rate_hz"] is None else float(sampling["rate_hz"]),
        every=None if sampling["every"] is None else int(sampling["every"]),
        threshold=threshold,
        threshold_source=source,
        threshold_level=level,
        video_rule=rule if rule in ("mean", "median") else "mean",
        field_um=None if sampling["field_um"] is None else float(sampling["field_um"]),
        n_members=len(getattr(model, "members", [])),
    )
    return model.eval(), info
