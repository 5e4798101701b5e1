"""Posterior and interval of a label's mean quality, vectorised over pairs.

`beta_posterior` is the conjugate Beta posterior of the success rate with a Beta(a0, b0)
prior (default Jeffreys, 0.5/0.5), treating the n valid scores of a pair as exchangeable
draws: alpha = a0 + sum(s), beta = b0 + n - sum(s). Fractional scores (F1) enter as
fractional successes.

`jeffreys_interval` is the equal-tailed posterior interval with the boundary correction of
Brown, Cai & DasGupta (2001, Statistical Science 16(2), sec. 4.1.2): the lower bound is 0
when every score is 0 and the upper bound is 1 when every score is 1. Without it the
interval excludes the observed mean at the boundary (mean = 1.0, ci = [0.905, 0.99998]),
and covers p in {0, 1} never. Pairs with n = 0 (every generation failed) get null
(NaN) alpha, beta and bounds: there is nothing to update the prior with.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def beta_posterior(
    sum_s: np.ndarray, n: np.ndarray, *, prior_alpha: float = 0.5, prior_beta: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) per pair; NaN where n == 0."""
    sum_s = np.asarray(sum_s, dtype="float64")
    n = np.asarray(n, dtype="float64")
    empty = ~(n > 0)
    alpha = np.where(empty, np.nan, prior_alpha + sum_s)
    beta = np.where(empty, np.nan, prior_beta + n - sum_s)
    return alpha, beta


def jeffreys_interval(
    sum_s: np.ndarray,
    n: np.ndarray,
    *,
    level: float = 0.95,
    prior_alpha: float = 0.5,
    prior_beta: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed `level` interval of the Beta posterior, boundary-corrected; NaN at n = 0."""
    sum_s = np.asarray(sum_s, dtype="float64")
    n = np.asarray(n, dtype="float64")
    alpha, beta = beta_posterior(sum_s, n, prior_alpha=prior_alpha, prior_beta=prior_beta)
    tail = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(tail, alpha, beta)
        hi = stats.beta.ppf(1.0 - tail, alpha, beta)
    valid = n > 0
    lo = np.where(valid & (sum_s <= 0.0), 0.0, lo)
    hi = np.where(valid & (sum_s >= n), 1.0, hi)
    return lo, hi
