"""Synthetic sublingual dark-field (SDF/IDF) videos with known ground truth.

``simulate_cohort`` writes a cohort of septic and non-septic patients: videos, a manifest, the
consensus metrics of every video, per-vessel truth and vessel masks. The model and its literature
sources are described in docs/simulator.md. Synthetic data: never a clinical figure.
"""

from __future__ import annotations

from sepsiscope.simulate.cameras import CAMERAS, CameraProfile, camera_profile
from sepsiscope.simulate.cohort import SimulateSettings, simulate_cohort, simulate_truth

__all__ = [
    "CAMERAS",
    "CameraProfile",
    "SimulateSettings",
    "camera_profile",
    "simulate_cohort",
    "simulate_truth",
]
