"""Patient splits: disjoint, complete, stratified, seeded, and refused when a class would vanish."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.data.splits import make_splits
from sepsiscope.errors import InputError


def _cohort(n_septic: int, n_control: int) -> dict[str, str]:
    labels = {f"s{i}": "septic" for i in range(n_septic)}
    labels.update({f"c{i}": "non-septic" for i in range(n_control)})
    return labels


@settings(max_examples=60, deadline=None)
@given(
    n_septic=st.integers(3, 40),
    n_control=st.integers(3, 40),
    seed=st.integers(0, 2**31 - 1),
    folds=st.integers(2, 3),
    val=st.sampled_from([0.0, 0.1, 0.2, 0.25]),
    test=st.sampled_from([0.0, 0.15, 0.2, 0.3]),
)
def test_no_patient_in_two_parts_and_folds_cover_everyone_once(
    n_septic, n_control, seed, folds, val, test
):
    labels = _cohort(n_septic, n_control)
    splits = make_splits(labels, val=val, test=test, folds=folds, seed=seed)
    parts = [set(splits[p]) for p in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(labels)
    assert set.union(*parts) == set(labels)
    fold_members = [p for fold in splits["folds"] for p in fold]
    assert sorted(fold_members) == sorted(labels)  # each patient in exactly one fold
    for name, fraction in (("train", 1), ("val", val), ("test", test)):
        present = {labels[p] for p in splits[name]}
        assert present == ({"septic", "non-septic"} if fraction else set())
    for fold in splits["folds"]:
        assert {labels[p] for p in fold} == {"septic", "non-septic"}
    assert make_splits(dict(reversed(labels.items())), val=val, test=test, folds=folds,
                       seed=seed) == splits  # fmt: skip


def test_fractions_are_respected_per_label():
    splits = make_splits(_cohort(10, 20), val=0.2, test=0.3, folds=5, seed=1)
    septic = {p for p in splits["test"] if p.startswith("s")}
    assert len(septic) == 3 and len(splits["test"]) == 9 and len(splits["val"]) == 6
    assert [len(f) for f in splits["folds"]] == [6, 6, 6, 6, 6]
    assert splits["seed"] == 1 and splits["fractions"] == {"val": 0.2, "test": 0.3}


def test_seed_changes_the_split():
    a = make_splits(_cohort(10, 10), seed=0)
    b = make_splits(_cohort(10, 10), seed=1)
    assert a["test"] != b["test"]


@pytest.mark.parametrize(
    ("cohort", "kwargs", "message"),
    [
        ((2, 5), {"folds": 0}, "cannot split 2 septic patient"),
        ((5, 5), {"folds": 6}, "cannot make 6 folds with 5"),
        ((5, 5), {"val": 0.5, "test": 0.5}, "val .* and test .* must be fractions"),
        ((5, 5), {"folds": 1}, "folds must be 0"),
        ((0, 0), {}, "no patients"),
    ],
)
def test_refuses_splits_that_leave_a_class_out(cohort, kwargs, message):
    with pytest.raises(InputError, match=message):
        make_splits(_cohort(*cohort), **kwargs)


def test_zero_fractions_leave_parts_empty():
    splits = make_splits(_cohort(2, 2), val=0, test=0, folds=2)
    assert splits["val"] == [] and splits["test"] == [] and len(splits["train"]) == 4
