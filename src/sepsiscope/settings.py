"""The base of every stage's settings object, and the provenance saved beside each artifact.

Each stage defines one frozen settings model in its own module (``IngestSettings`` in
``ingest.py``, ...): defaults live in one place, CLI flags or a YAML file fill it, and the final
settings are written next to the outputs with the package versions, so a result can be reproduced.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sepsiscope._io import read_json, write_json
from sepsiscope.errors import InputError

S = TypeVar("S", bound="StageSettings")

_PACKAGES = (
    "sepsiscope", "torch", "lightning", "numpy", "scipy", "scikit-image", "scikit-learn",
    "opencv-python-headless", "av", "zarr", "pandas", "openTSNE",
)  # fmt: skip


class StageSettings(BaseModel):
    """Frozen, validated settings; unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def build(cls: type[S], yaml_path: str | os.PathLike | None = None, **overrides: Any) -> S:
        """Settings from defaults, then a YAML file, then explicit ``overrides`` (None = unset)."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            try:
                loaded = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise InputError(f"{yaml_path}: cannot read settings: {exc}") from exc
            if not isinstance(loaded, dict):
                raise InputError(f"{yaml_path}: settings must be a mapping of names to values")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InputError(f"invalid {cls.__name__}: {problems}") from exc

    def save(self, path: str | os.PathLike) -> Path:
        """Write these settings and the provenance (versions, time, machine) as JSON."""
        return write_json(path, {"settings": self.model_dump(mode="json"), **provenance()})

    @classmethod
    def load(cls: type[S], path: str | os.PathLike) -> S:
        """Read settings written by :meth:`save`."""
        return cls(**read_json(path)["settings"])


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a result."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance() -> dict[str, Any]:
    """What made an artifact: versions, Python, platform and UTC time."""
    return {
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
