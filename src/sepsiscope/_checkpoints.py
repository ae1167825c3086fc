"""Lightning checkpoints read safely, and kept inside the run folder they belong to.

A checkpoint is a pickle. ``torch.load(weights_only=True)`` unpickles only tensors, plain
containers and numbers, so a file that carries code is refused instead of run; every checkpoint
sepsiscope reads goes through :func:`load_checkpoint` (and Lightning's own resume is asked for
``weights_only=True``).

Lightning stores absolute paths in its checkpoint callbacks' state (``dirpath``,
``best_model_path``, ``best_k_models``). In a run folder that was copied or moved, those name the
original folder: Lightning would then forget which epoch was best and could later delete or load
files there. :func:`rebase_checkpoint` rewrites them to the folder the checkpoint is in now.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from sepsiscope._io import atomic_path
from sepsiscope.errors import InputError


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents, unpickled with ``weights_only=True``.

    Raises InputError naming the file when it is missing, not a checkpoint, or holds anything
    but tensors and plain data (such a file could run code when unpickled: it is not opened).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint there")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise InputError(f"{path}: corrupted checkpoint ({exc})") from exc
        culprit = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        raise InputError(
            f"{path}: refused: the file holds more than weights and plain data, and loading it "
            f"could run code from it ({culprit[0] if culprit else 'unsupported object'}). Use "
            "only checkpoints you made yourself; delete it, or train again with --overwrite"
        ) from exc
    except Exception as exc:  # the unpickler raises IndexError, KeyError, ... on garbage
        raise InputError(f"{path}: corrupted checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputError(f"{path}: corrupted checkpoint (no state_dict in it)")
    return checkpoint


def rebase_checkpoint(path: str | os.PathLike) -> bool:
    """Point the checkpoint callbacks' paths in ``path`` into ``path``'s own folder.

    Every stored path keeps its file name and moves to the folder ``path`` is in. Returns True
    when the file was rewritten (atomically), False when its paths were already there.
    """
    import torch

    path = Path(path)
    checkpoint = load_checkpoint(path)
    here = str(path.parent.resolve())
    changed = False

    def moved(value: Any) -> Any:
        nonlocal changed
        if not isinstance(value, str) or not value:
            return value
        target = str(Path(here) / Path(value).name) if value.endswith(".ckpt") else here
        changed |= target != value
        return target

    for state in (checkpoint.get("callbacks") or {}).values():
        if not isinstance(state, dict) or "dirpath" not in state:
            continue  # not a ModelCheckpoint
        for key in ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = moved(state[key])
        if isinstance(state.get("best_k_models"), dict):
            state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    if changed:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    return changed
