"""An ensemble of SepsisNets: a cross-validation's fold models, their logits averaged.

Every fold model of ``crossval`` was trained without one fifth of the patients; together they
make one model to apply (``RUN/ensemble``, written by :func:`sepsiscope.classifier.ensemble.
write_ensemble`). ``forward`` averages the members' logits (a geometric mean of their odds), so
the ensemble is a drop-in for a SepsisNet wherever only the logit is used: inference, the back
ends, ONNX export, prediction. :meth:`member_logits` gives each member's logit, whose spread is
the ensemble's uncertainty; Grad-CAM averages the members' maps (:mod:`.gradcam`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sepsiscope.models.classifier import SepsisNet


class EnsembleNet(nn.Module):
    """``n_members`` SepsisNets; ``forward`` gives the mean of their logits, ``(n,)``."""

    def __init__(self, n_members: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(SepsisNet(dropout=dropout) for _ in range(n_members))

    def member_logits(self, x: Tensor) -> Tensor:
        """Each member's logit, ``(n, n_members)``."""
        return torch.stack([member(x) for member in self.members], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.member_logits(x).mean(dim=1)


def members_of(model: nn.Module) -> list[nn.Module]:
    """The SepsisNets inside ``model``: its members, or the model itself."""
    return list(model.members) if isinstance(model, EnsembleNet) else [model]


class MemberLogits(nn.Module):
    """An ensemble whose ``forward`` gives every member's logit, ``(n, n_members)`` (for back
    ends that report the members' spread; traceable like the ensemble)."""

    def __init__(self, ensemble: EnsembleNet) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, x: Tensor) -> Tensor:
        return self.ensemble.member_logits(x)
