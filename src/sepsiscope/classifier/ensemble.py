"""The models a cross-validation leaves to apply: its fold models as one ensemble run, and
optionally one model refit on every patient.

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

``crossval --refit`` also trains ``RUN/refit``: one network on every patient for the epoch count
the folds' selection kept (the median), no validation and no selection, with the same threshold
from the pooled out-of-fold predictions. It costs one network instead of five at prediction, but
nothing judges it: its figures too are the cross-validation's (docs/evaluation.md compares the
two on new patients).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
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
    _write_oof_threshold(out, oof_frames, evaluate, n_folds)
    return out


def write_refit(
    layout: RunLayout,
    store_dir: Any,
    train_settings: dict[str, Any],
    n_folds: int,
    oof_frames: pd.DataFrame,
    evaluate: Any,
    *,
    overwrite: bool = False,
    quiet: bool = False,
) -> RunLayout:
    """Train ``layout.refit`` on every patient for the median of the epochs the folds' selection
    kept (unless a refit of that many epochs is there and not ``overwrite``), and give it the
    threshold of the pooled out-of-fold predictions."""
    from sepsiscope.classifier.train import TrainSettings, train

    kept = [int(read_json(layout.fold(i).train_result)["best_epoch"]) + 1 for i in range(n_folds)]
    epochs = max(1, int(np.median(kept)))
    out = layout.refit
    settings = TrainSettings.build(**{**train_settings, "epochs": epochs, "split_by": "all",
                                      "fold": None})  # fmt: skip
    done = out.model.exists() and (out.saved_training().get("refit") or {}).get("epochs") == epochs
    if overwrite or not done:  # like the folds, a finished refit is kept
        log.info("refit on every patient: %d epochs (the folds kept %s)", epochs, kept)
        train(store_dir, out.root, settings, quiet=quiet, overwrite=True)
    record = read_json(out.model_settings)
    record["refit"] = {
        "folds": n_folds, "epochs": epochs, "epochs_kept_by_folds": kept,
        "threshold_from": "pooled out-of-fold predictions",
    }  # fmt: skip
    write_json(out.model_settings, record)
    _write_oof_threshold(out, oof_frames, evaluate, n_folds)
    return out


def _write_oof_threshold(
    out: RunLayout, oof_frames: pd.DataFrame, evaluate: Any, n_folds: int
) -> None:
    """The threshold by Youden's J on the pooled out-of-fold predictions, as threshold.json."""
    from sepsiscope.classifier.evaluate import choose_threshold

    chosen = choose_threshold(oof_frames, evaluate)
    write_json(out.threshold, {
        **chosen, "level": evaluate.threshold_level, "video_rule": evaluate.video_rule,
        "source": f"pooled out-of-fold predictions of {n_folds} folds", **provenance(),
    })  # fmt: skip


def crossval_model(run_dir: Any) -> str | None:
    """``"ensemble"`` or ``"refit"`` for the models ``crossval`` leaves in ``RUN/ensemble`` and
    ``RUN/refit`` (their honest figures are the folder above's cross-validation), else None."""
    settings = RunLayout(run_dir).model_settings
    saved = (read_json(settings) or {}) if settings.exists() else {}
    return next((kind for kind in ("ensemble", "refit") if saved.get(kind)), None)


def is_ensemble(run_dir: Any) -> bool:
    """Whether a run folder holds an ensemble (crossval's ``RUN/ensemble``)."""
    return crossval_model(run_dir) == "ensemble"
