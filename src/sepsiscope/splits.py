"""Patient-level splits, stratified by label: train/val/test and k folds, seeded.

Every patient is in exactly one of train, val and test, and in exactly one fold. The folds are
an alternative to the fixed split (k-fold cross-validation over the whole cohort), not a
subdivision of train. Within each label, patients are sorted, shuffled with the seed and dealt
out, so the same cohort and seed always give the same split, whatever the manifest's row order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sepsiscope.errors import InputError

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
