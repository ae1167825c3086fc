"""sepsiscope: sepsis detection research on sublingual dark-field microcirculation videos.

For research only; not a medical device and not for diagnosis.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
