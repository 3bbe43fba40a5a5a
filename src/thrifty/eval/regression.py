"""Ordinary least squares for the reading task: R², AIC and the t-test of one coefficient.

The BabyLM 2025 pipeline fits its reading-time regressions with ``statsmodels``' formula OLS;
thrifty fits the same design matrices with numpy's least squares and reports what the pipeline
reads from the fit: the coefficient, its t value and two-sided p value, R² and AIC. AIC follows
statsmodels (``-2 log L + 2 k`` with k the rank of the design, intercept included); the p value
comes from Student's t through the regularized incomplete beta function (continued fraction,
Press et al., *Numerical Recipes* §6.4), so no scipy is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAN = float("nan")


@dataclass(frozen=True)
class Fit:
    n: int  # rows fitted
    params: np.ndarray  # (k,) coefficients, in the design's column order
    t: np.ndarray  # (k,) coefficient / standard error
    p: np.ndarray  # (k,) two-sided p values
    r2: float
    aic: float


def ols(y: np.ndarray, design: np.ndarray) -> Fit:
    """Least-squares fit of y (n,) on ``design`` (n, k), whose first column is the intercept.

    Statistics that need residual degrees of freedom (t, p, and R² of a saturated fit) are NaN
    when there are no more rows than independent columns, as for a handful of words.
    """
    y = np.asarray(y, dtype=np.float64)
    design = np.asarray(design, dtype=np.float64)
    n = len(y)
    params, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ params
    ssr = float(resid @ resid)
    centered = y - y.mean() if n else y
    sst = float(centered @ centered)
    dof = n - rank
    if dof <= 0 or ssr <= 0 or sst <= 0:
        k = design.shape[1]
        return Fit(n, params, np.full(k, NAN), np.full(k, NAN), NAN, NAN)
    log_likelihood = -0.5 * n * (math.log(2 * math.pi) + math.log(ssr / n) + 1)
    sigma2 = ssr / dof
    se = np.sqrt(sigma2 * np.diag(np.linalg.pinv(design.T @ design)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = params / se
    p = np.array([two_sided_p(float(v), dof) for v in t])
    return Fit(n, params, t, p, 1.0 - ssr / sst, -2.0 * log_likelihood + 2.0 * rank)


def two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's T with ``dof`` degrees of freedom."""
    if math.isnan(t):
        return NAN
    return betainc(dof / 2.0, 0.5, dof / (dof + t * t))


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast only on this side of the mean; use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def _continued_fraction(a: float, b: float, x: float, tiny: float = 1e-300) -> float:
    """Modified Lentz evaluation of the incomplete beta continued fraction."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h
