"""Automatic consensus microcirculation metrics: pure functions on arrays.

Stages, each a module: ``stabilise`` (register frames), ``segment`` (vessel mask on a temporal
image), ``skeleton`` (segments with length and diameter), ``flow`` (space-time diagrams, velocity
and flow category), ``metrics`` (TVD, PPV, PVD, MFI, De Backer score, HI), ``quality`` (flags);
``analyse_video`` chains them. File I/O lives in :mod:`sepsiscope.microcirculation.measure`.
"""

from __future__ import annotations

from sepsiscope.microcirculation.analyse import Analysis, analyse_video
from sepsiscope.microcirculation.consensus import (
    de_backer_score,
    heterogeneity_index,
    patient_heterogeneity,
    quadrant_mfi,
    video_metrics,
)
from sepsiscope.microcirculation.flow import (
    CATEGORIES,
    MFI_SCORE,
    FlowCriteria,
    SegmentFlow,
    kymographs,
    segment_flow,
)
from sepsiscope.microcirculation.quality import QualityCriteria, check_quality
from sepsiscope.microcirculation.segment import segment_vessels, temporal_image, vesselness
from sepsiscope.microcirculation.skeleton import (
    SMALL_VESSEL_UM,
    Segment,
    resample_path,
    vessel_segments,
)
from sepsiscope.microcirculation.stabilise import Motion, apply_motion, estimate_motion

__all__ = [
    "CATEGORIES", "MFI_SCORE", "SMALL_VESSEL_UM", "Analysis", "FlowCriteria", "Motion",
    "QualityCriteria", "Segment", "SegmentFlow", "analyse_video", "apply_motion",
    "check_quality", "de_backer_score", "estimate_motion", "heterogeneity_index", "kymographs",
    "patient_heterogeneity", "quadrant_mfi", "resample_path", "segment_flow", "segment_vessels",
    "temporal_image", "vessel_segments", "vesselness", "video_metrics",
]  # fmt: skip
