"""Patient-level splits, stratified by label: train/val/test and k folds, seeded.

Every patient is in exactly one of train, val and test, and in exactly one fold. The folds are
an alternative to the fixed split (k-fold cross-validation over the whole cohort), not a
subdivision of train. Within each label, patients are sorted, shuffled with the seed and dealt
out, so the same cohort and seed always give the same split, whatever the manifest's row order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sepsiscope.errors import InputError

if TYPE_CHECKING:
    from sepsiscope.data.store import FrameStore

PARTS = ("train", "val", "test")


def _shuffled(patients: list[str], seed: int, salt: int) -> list[str]:
    rng = np.random.default_rng([seed, salt])
    order = sorted(patients)
    return [order[i] for i in rng.permutation(len(order))]


def make_splits(
    labels: Mapping[str, str], *, val: float = 0.2, test: float = 0.2, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Split patients into train/val/test and ``folds`` folds, stratified by label.

    Parameters
    ----------
    labels : patient_id -> label (any hashable labels; usually ``septic`` / ``non-septic``).
    val, test : fractions of each label's patients (rounded, at least one when the fraction > 0).
    folds : number of folds (0 for none).
    seed : the same seed and cohort give the same split.

    Returns
    -------
    ``{"train": [...], "val": [...], "test": [...], "folds": [[...], ...], "seed": seed,
    "fractions": {"val": val, "test": test}}``, patient ids sorted within each part.

    Raises
    ------
    InputError
        When a label would be missing from a part (too few patients for the fractions or folds).

    Example
    -------
    >>> make_splits({"a": "septic", "b": "septic", "c": "septic", "d": "non-septic",
    ...              "e": "non-septic", "f": "non-septic"}, folds=3)["folds"]  # doctest: +SKIP
    """
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise InputError(f"val ({val}) and test ({test}) must be fractions with val + test < 1")
    if folds < 0 or folds == 1:
        raise InputError(f"folds must be 0 (none) or at least 2, got {folds}")
    if not labels:
        raise InputError("no patients to split")
    by_label: dict[str, list[str]] = {}
    for patient, label in labels.items():
        by_label.setdefault(str(label), []).append(str(patient))
    parts: dict[str, list[str]] = {name: [] for name in PARTS}
    fold_lists: list[list[str]] = [[] for _ in range(folds)]
    for salt, label in enumerate(sorted(by_label)):
        patients = _shuffled(by_label[label], seed, salt)
        n = len(patients)
        _, n_val, n_test = expected_sizes(n, val=val, test=test)
        if n - n_test - n_val < 1:
            raise InputError(
                f"cannot split {n} {label} patient(s) into train, val ({val}) and test ({test}) "
                f"with each part holding this label: add patients or lower --val/--test "
                f"(0 leaves a part out)"
            )
        parts["test"] += patients[:n_test]
        parts["val"] += patients[n_test : n_test + n_val]
        parts["train"] += patients[n_test + n_val :]
        if folds:
            if n < folds:
                raise InputError(
                    f"cannot make {folds} folds with {n} {label} patient(s): every fold needs "
                    f"each label; use --folds {n if n >= 2 else 0} or fewer (0 for none)"
                )
            # Deal round-robin, starting where the previous label stopped, to even fold sizes.
            offset = sum(len(f) for f in fold_lists) % folds
            for i, patient in enumerate(patients):
                fold_lists[(i + offset) % folds].append(patient)
    return {
        **{name: sorted(parts[name]) for name in PARTS},
        "folds": [sorted(f) for f in fold_lists],
        "seed": seed,
        "fractions": {"val": val, "test": test},
    }


def split_of(splits: Mapping[str, Any]) -> dict[str, str]:
    """patient_id -> part name (train, val or test)."""
    return {p: name for name in PARTS for p in splits.get(name, [])}


def fold_of(splits: Mapping[str, Any]) -> dict[str, int]:
    """patient_id -> fold number."""
    return {p: i for i, fold in enumerate(splits.get("folds", [])) for p in fold}


def expected_sizes(n: int, *, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) patient counts for one label of ``n`` patients."""
    n_test = max(1, round(n * test)) if test > 0 else 0
    n_val = max(1, round(n * val)) if val > 0 else 0
    return n - n_test - n_val, n_val, n_test


__all__ = ["PARTS", "make_splits", "split_of", "fold_of", "expected_sizes"]


def split_tables(
    store: FrameStore, *, split_by: str = "patient", fold: int | None = None, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Usable frame rows of "train", "val" and "test" as a training with these settings defines
    them (``TrainSettings.split_by``, ``fold`` and ``seed``).

    ``split_by="patient"``: the store's patient splits. ``fold=i``: fold i's patients are the test
    split, fold i+1's (mod K) the validation split and the other folds train; with 2 folds a
    stratified quarter of the other fold validates. ``split_by="frame"``: LEAKY, see
    :func:`_frame_split`. ``split_by="all"``: every usable patient trains, nothing is held out
    (``crossval --refit``; validation and test are empty). ``train`` and ``evaluate`` both call
    this, so evaluation judges the frames training held out.
    """
    frames = store.samples(None)
    splits = store.splits
    if not splits:
        raise InputError(f"{store.root}: the store has no patient splits; run `sepsiscope ingest`")
    if fold is not None:
        if split_by != "patient":
            raise InputError(f"fold and split_by={split_by!r} cannot be combined")
        folds = [[str(p) for p in f] for f in splits.get("folds") or []]
        if fold >= len(folds):
            raise InputError(f"fold {fold} does not exist: the store has {len(folds)}")
        test = set(folds[fold])
        if len(folds) >= 3:
            val = set(folds[(fold + 1) % len(folds)])
        else:
            val = _stratified_quarter(frames, set(folds[1 - fold]), seed)
        pid = frames["patient_id"]
        parts = {"train": ~pid.isin(test | val), "val": pid.isin(val), "test": pid.isin(test)}
        return {name: frames[mask].assign(split=name) for name, mask in parts.items()}
    if split_by == "frame":
        return _frame_split(frames, seed)
    if split_by == "all":
        usable = frames[frames["split"] != "none"]
        return {
            "train": usable.assign(split="train"),
            "val": usable.iloc[:0],
            "test": usable.iloc[:0],
        }
    return {name: frames[frames["split"] == name] for name in ("train", "val", "test")}


def _stratified_quarter(frames: pd.DataFrame, patients: set[str], seed: int) -> set[str]:
    """About a quarter of ``patients`` (at least one per label), chosen by ``seed``."""
    labels = frames.drop_duplicates("patient_id").set_index("patient_id")["y"]
    chosen: set[str] = set()
    for y in (0, 1):
        group = sorted(p for p in patients if labels.get(p) == y)
        rng = np.random.default_rng([seed, y])
        k = max(1, round(len(group) / 4)) if len(group) > 1 else 0
        chosen |= {group[i] for i in rng.permutation(len(group))[:k]}
    return chosen


def _frame_split(frames: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """LEAKY: frames of every patient dealt to train/val/test by the store's split fractions."""
    frames = frames[frames["split"] != "none"]
    counts = frames["split"].value_counts()
    fractions = np.array([counts.get(n, 0) for n in ("train", "val", "test")], float)
    fractions /= max(fractions.sum(), 1)
    rng = np.random.default_rng(seed)
    assigned = pd.Series("train", index=frames.index)
    for _, group in frames.groupby("y"):  # stratified by label
        order = rng.permutation(group.index.to_numpy())
        cut = np.round(np.cumsum(fractions) * len(order)).astype(int)
        assigned[order[cut[0] : cut[1]]] = "val"
        assigned[order[cut[1] :]] = "test"
    return {name: frames[assigned == name].assign(split=name) for name in ("train", "val", "test")}
