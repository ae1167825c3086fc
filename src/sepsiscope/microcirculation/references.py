"""Published reference values of the consensus metrics, for putting a figure in context.

Edul et al. 2012 (Crit Care Med 40:1443-8; SDF, 25 healthy volunteers vs 25 patients in septic
shock, mean ± SD) and the second consensus (Ince et al. 2018, Intensive Care Med 44:281-99: MFI
< 2.6 abnormal). They are context for a research reader, not a diagnostic threshold: cameras,
software and populations differ, and sepsiscope's own figures are validated on synthetic videos
only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """What is known of one metric: the values in health and septic shock, and a cut-off."""

    metric: str  # the column of measure's videos table
    label: str
    unit: str
    healthy: str = ""
    septic_shock: str = ""
    abnormal_below: float | None = None
    source: str = "Edul 2012"

    def is_abnormal(self, value: float | None) -> bool | None:
        """Whether ``value`` is below the published cut-off (None: no cut-off, or no value)."""
        if self.abnormal_below is None or value is None or value != value:
            return None
        return value < self.abnormal_below


REFERENCES: tuple[Reference, ...] = (
    Reference("tvd_mm_per_mm2", "TVD (all vessels)", "mm/mm²", source="De Backer 2007"),
    Reference("tvd_small_mm_per_mm2", "TVD (small vessels)", "mm/mm²",
              healthy="similar in both", septic_shock="similar in both"),
    Reference("pvd_mm_per_mm2", "PVD (small vessels)", "mm/mm²", healthy="16.6 ± 1.6",
              septic_shock="13.2 ± 4.4"),
    Reference("ppv_percent", "PPV", "%", healthy="100 ± 1", septic_shock="78 ± 23"),
    Reference("mfi", "MFI", "0-3", healthy="2.97 ± 0.03", septic_shock="2.15 ± 0.61",
              abnormal_below=2.6, source="Edul 2012; Ince 2018 (< 2.6 abnormal)"),
    Reference("de_backer_per_mm", "De Backer score", "vessels/mm", source="De Backer 2002"),
    Reference("mean_velocity_um_per_s", "Red-cell velocity (small)", "µm/s",
              healthy="1332 ± 187", septic_shock="830 ± 183"),
)  # fmt: skip
