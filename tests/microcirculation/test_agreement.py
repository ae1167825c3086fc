"""Agreement statistics against values computed by hand and published ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sepsiscope.errors import InputError
from sepsiscope.microcirculation.agreement import agreement, bland_altman, icc_2_1, lin_ccc

# Shrout & Fleiss 1979, table 2: 6 targets rated by 4 judges; ICC(2,1) = 0.29 in the paper,
# and 0.290 [0.019, 0.761] in R's irr::icc(model="twoway", type="agreement")
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)


def test_bland_altman_by_hand():
    # differences 1, -1, 3: mean 1, SD 2; limits 1 ± 1.96 x 2
    result = bland_altman([10, 20, 30], [9, 21, 27])
    assert (result["n"], result["bias"], result["sd"]) == (3, 1.0, 2.0)
    assert result["lower"] == pytest.approx(1 - 1.959964 * 2, abs=1e-5)
    assert result["upper"] == pytest.approx(1 + 1.959964 * 2, abs=1e-5)
    # relative: 1/9.5, -1/20.5, 3/28.5 in percent
    relative = np.array([1 / 9.5, -1 / 20.5, 3 / 28.5]) * 100
    assert result["bias_percent"] == pytest.approx(relative.mean())
    assert result["sd_percent"] == pytest.approx(relative.std(ddof=1))


def test_missing_pairs_are_left_out_and_mismatched_lengths_refused():
    result = bland_altman([10, np.nan, 20, 30], [9, 5, 21, 27])
    assert result["n"] == 3 and result["bias"] == 1.0
    with pytest.raises(InputError, match="3 values against 2"):
        bland_altman([1, 2, 3], [1, 2])


def test_icc_2_1_matches_shrout_and_fleiss():
    # mean squares: rows 11.24, columns 32.49, error 1.02 (the paper's table 3)
    result = icc_2_1(SHROUT_FLEISS)
    assert result["icc"] == pytest.approx(
        (11.2417 - 1.0194) / (11.2417 + 3 * 1.0194 + 4 * (32.4861 - 1.0194) / 6), abs=1e-3
    )  # noqa: E501
    assert result["icc"] == pytest.approx(0.290, abs=5e-4)
    assert result["lower"] == pytest.approx(0.019, abs=1e-3)
    assert result["upper"] == pytest.approx(0.761, abs=1e-3)


def test_icc_of_identical_raters_is_one_and_of_too_few_subjects_nan():
    values = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    assert icc_2_1(np.column_stack([values, values]))["icc"] == pytest.approx(1.0)
    assert math.isnan(icc_2_1(np.array([[1.0, 2.0], [2.0, 3.0]]))["icc"])


def test_lin_ccc_by_hand():
    # y = x + 1 on 1, 2, 3: s_xy = s_x² = s_y² = 2/3 (1/n moments), shift² = 1 -> 4/3 / 7/3
    assert lin_ccc([1, 2, 3], [2, 3, 4])["ccc"] == pytest.approx(4 / 7)
    # perfect agreement
    perfect = lin_ccc([1, 2, 3, 4], [1, 2, 3, 4])
    assert perfect["ccc"] == pytest.approx(1.0) and perfect["lower"] == pytest.approx(1.0)


def test_agreement_collects_all_three():
    record = agreement([10, 20, 30, 40], [9, 21, 27, 41])
    assert record["bias"] == 0.5 and record["n"] == 4
    assert 0.9 < record["icc"] <= 1 and record["icc_lower"] < record["icc"] < record["icc_upper"]
    assert 0.9 < record["ccc"] <= 1 and record["ccc_lower"] < record["ccc"] < record["ccc_upper"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.5, 50), min_size=4, max_size=30),
    st.floats(-5, 5),
    st.floats(0.5, 2),
)
def test_bounds_and_shift_invariants(reference, shift, scale):
    reference = np.array(reference)
    method = reference * scale + shift
    record = agreement(method, reference)
    assert record["bias"] == pytest.approx((method - reference).mean(), abs=1e-9)
    for name in ("icc", "ccc"):
        value = record[name]
        if not math.isnan(value):
            assert -1 - 1e-9 <= value <= 1 + 1e-9
            assert record[f"{name}_lower"] <= value + 1e-9 <= record[f"{name}_upper"] + 2e-9
