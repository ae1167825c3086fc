"""The model a cross-validation leaves to apply: its fold models as one ensemble run.

``crossval`` ends with five fold models and a pooled out-of-fold figure; this writes them as one
run folder, ``RUN/ensemble``, that every verb taking a run accepts (``predict``, ``explain``,
``export``, ``interpret --run``, ``report``, ``serve``, live):

- ``classifier/model.safetensors``: the members' weights (an
  :class:`~sepsiscope.models.ensemble.EnsembleNet`, logits averaged);
- ``classifier/settings.json``: the folds' training settings and sampling, and
  ``ensemble = {members, folds, threshold_from}``;
- ``classifier/threshold.json``: the decision threshold fixed by Youden's J on the pooled
  out-of-fold predictions, where every patient was scored by a model that never saw it (never on
  a test split, and never in-sample).

The ensemble's probability on a new video is not an out-of-fold figure: no patient of the cohort
is new to it. Its honest figure is the cross-validation's pooled out-of-fold one, which the
ensemble can only be expected to match or exceed (each member saw 80 % of the patients, the
ensemble's errors average out).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from sepsiscope._io import read_json, write_json
from sepsiscope.errors import InputError
from sepsiscope.layout import RunLayout
from sepsiscope.settings import provenance

log = logging.getLogger(__name__)


def write_ensemble(
    layout: RunLayout, n_folds: int, oof_frames: pd.DataFrame, evaluate: Any
) -> RunLayout | None:
    """Write ``layout.ensemble`` from the run's ``n_folds`` fold models; None (with a warning)
    when a fold model cannot be read, so the cross-validation's figures still stand."""
    from safetensors.torch import save_file

    from sepsiscope.classifier.evaluate import choose_threshold
    from sepsiscope.classifier.inference import load_classifier
    from sepsiscope.models.ensemble import EnsembleNet

    folds = [layout.fold(i) for i in range(n_folds)]
    try:
        loaded = [load_classifier(fold.root) for fold in folds]
    except InputError as exc:
        log.warning("no ensemble written: %s", exc)
        return None
    first = folds[0].saved_training()
    dropouts = {settings.dropout for _, settings in loaded}
    ensemble = EnsembleNet(n_folds, dropout=dropouts.pop() if len(dropouts) == 1 else 0.0)
    for member, (model, _) in zip(ensemble.members, loaded, strict=True):
        member.load_state_dict(model.state_dict())
    out = layout.ensemble
    out.classifier.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ensemble.state_dict().items()}, str(out.model))
    record = {
        **first,
        "ensemble": {
            "members": n_folds,
            "folds": [str(fold.root) for fold in folds],
            "threshold_from": "pooled out-of-fold predictions",
        },
        **provenance(),
    }
    write_json(out.model_settings, record)
    chosen = choose_threshold(oof_frames, evaluate)
    write_json(out.threshold, {
        **chosen, "level": evaluate.threshold_level, "video_rule": evaluate.video_rule,
        "source": f"pooled out-of-fold predictions of {n_folds} folds", **provenance(),
    })  # fmt: skip
    return out


def is_ensemble(run_dir: Any) -> bool:
    """Whether a run folder holds an ensemble (crossval's ``RUN/ensemble``)."""
    settings = RunLayout(run_dir).model_settings
    return settings.exists() and bool((read_json(settings) or {}).get("ensemble"))
