"""Agreement between two methods of measurement, as the field reports it.

Pure functions on paired arrays (a method beside a reference, e.g. ``measure`` beside the
simulator's truth or a human reader):

- Bland-Altman (Bland & Altman 1986, Lancet 1:307): the bias (mean of method - reference) and
  the 95 % limits of agreement (bias ± 1.96 SD of the differences), absolute and relative (each
  difference as a percent of the pair's mean);
- the intraclass correlation ICC(2,1) (Shrout & Fleiss 1979, Psychol Bull 86:420: two-way
  random effects, absolute agreement, single measurement; McGraw & Wong 1996's ICC(A,1)) with
  its F-based confidence interval (McGraw & Wong 1996, Psychol Methods 1:30, table 7);
- Lin's concordance correlation coefficient (Lin 1989, Biometrics 45:255) with its interval on
  Fisher's z.

Pairs with a missing or infinite value are left out; each function says how many it used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from sepsiscope.errors import InputError


def _pairs(method: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    method = np.asarray(method, dtype=float).ravel()
    reference = np.asarray(reference, dtype=float).ravel()
    if method.shape != reference.shape:
        raise InputError(f"{len(method)} values against {len(reference)} reference values")
    keep = np.isfinite(method) & np.isfinite(reference)
    return method[keep], reference[keep]


def bland_altman(
    method: np.ndarray, reference: np.ndarray, *, confidence: float = 0.95
) -> dict[str, Any]:
    """Bias and limits of agreement of ``method`` against ``reference`` (same units).

    Returns ``n``, ``bias``, ``sd``, ``lower`` and ``upper`` (the limits), and the same in percent
    of each pair's mean (``bias_percent``, ``sd_percent``, ``lower_percent``,
    ``upper_percent``; pairs whose mean is 0 are left out of those). NaN with fewer than 2 pairs.
    """
    x, y = _pairs(method, reference)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    out: dict[str, Any] = {"n": len(x)}
    mean = (x + y) / 2
    relative = np.divide(100 * (x - y), mean, out=np.full_like(x, np.nan), where=mean != 0)
    for suffix, diff in (("", x - y), ("_percent", relative[np.isfinite(relative)])):
        bias = float(diff.mean()) if len(diff) else math.nan
        sd = float(diff.std(ddof=1)) if len(diff) >= 2 else math.nan
        out.update({f"bias{suffix}": bias, f"sd{suffix}": sd,
                    f"lower{suffix}": bias - z * sd, f"upper{suffix}": bias + z * sd})  # fmt: skip
    return out


def icc_2_1(ratings: np.ndarray, *, confidence: float = 0.95) -> dict[str, float]:
    """ICC(2,1) of ``ratings`` ``(n subjects, k raters)`` with its confidence interval.

    Rows with a missing value are left out. Returns ``icc``, ``lower``, ``upper`` and ``n``;
    NaN when fewer than 3 subjects remain or the ratings do not vary.
    """
    ratings = np.asarray(ratings, dtype=float)
    if ratings.ndim != 2 or ratings.shape[1] < 2:
        raise InputError(f"ratings must be (subjects, raters >= 2), got shape {ratings.shape}")
    ratings = ratings[np.isfinite(ratings).all(axis=1)]
    n, k = ratings.shape
    nan = {"icc": math.nan, "lower": math.nan, "upper": math.nan, "n": n}
    if n < 3:
        return nan
    grand = ratings.mean()
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((ratings.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((ratings - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    if denominator <= 0 or msr == 0:
        return nan
    icc = (msr - mse) / denominator
    alpha = 1 - confidence
    # McGraw & Wong 1996, table 7, case 2A: Satterthwaite's degrees of freedom for the denominator
    a = k * icc / (n * (1 - icc)) if icc < 1 else math.inf
    b = 1 + k * icc * (n - 1) / (n * (1 - icc)) if icc < 1 else math.inf
    if not math.isfinite(a):
        return {"icc": float(icc), "lower": 1.0, "upper": 1.0, "n": n}
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_low = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_high = stats.f.ppf(1 - alpha / 2, v, n - 1)
    spread = k * msc + (k * n - k - n) * mse
    lower = n * (msr - f_low * mse) / (f_low * spread + n * msr)
    upper = n * (f_high * msr - mse) / (spread + n * f_high * msr)
    return {"icc": float(icc), "lower": float(lower), "upper": float(upper), "n": n}


def lin_ccc(
    method: np.ndarray, reference: np.ndarray, *, confidence: float = 0.95
) -> dict[str, float]:
    """Lin's concordance correlation coefficient with its interval (Fisher's z, Lin 1989 eq. 8).

    Returns ``ccc``, ``lower``, ``upper`` and ``n``; NaN with fewer than 3 pairs or no spread.
    """
    x, y = _pairs(method, reference)
    n = len(x)
    nan = {"ccc": math.nan, "lower": math.nan, "upper": math.nan, "n": n}
    if n < 3:
        return nan
    # Lin's estimator uses the 1/n moments
    sx2, sy2 = x.var(), y.var()
    sxy = ((x - x.mean()) * (y - y.mean())).mean()
    shift2 = (x.mean() - y.mean()) ** 2
    if sx2 + sy2 + shift2 == 0:
        return nan
    ccc = 2 * sxy / (sx2 + sy2 + shift2)
    if sx2 == 0 or sy2 == 0 or abs(ccc) >= 1:
        bound = float(np.clip(ccc, -1, 1))
        return {"ccc": float(ccc), "lower": bound, "upper": bound, "n": n}
    r = sxy / math.sqrt(sx2 * sy2)
    u2 = shift2 / math.sqrt(sx2 * sy2)
    variance = (
        (1 - r**2) * ccc**2 / ((1 - ccc**2) * r**2)
        + 2 * ccc**3 * (1 - ccc) * u2 / (r * (1 - ccc**2) ** 2)
        - ccc**4 * u2**2 / (2 * r**2 * (1 - ccc**2) ** 2)
    ) / (n - 2)
    z = math.atanh(ccc)
    half = stats.norm.ppf(0.5 + confidence / 2) * math.sqrt(max(variance, 0.0))
    return {"ccc": float(ccc), "lower": math.tanh(z - half), "upper": math.tanh(z + half), "n": n}


def agreement(method: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Bland-Altman, ICC(2,1) and Lin's CCC of one metric, in one flat record."""
    x, y = _pairs(method, reference)
    icc = icc_2_1(np.column_stack([x, y]))
    ccc = lin_ccc(x, y)
    return {
        **bland_altman(x, y),
        "icc": icc["icc"], "icc_lower": icc["lower"], "icc_upper": icc["upper"],
        "ccc": ccc["ccc"], "ccc_lower": ccc["lower"], "ccc_upper": ccc["upper"],
    }  # fmt: skip
