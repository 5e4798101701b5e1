"""Posterior and intervals of a label's mean quality, vectorised over pairs.

Two estimands, two intervals (docs/intervals.md has the derivation and the coverage):

* **fixed variants** (`jeffreys_interval`, label columns `ci_low_fixed`/`ci_high_fixed`):
  the mean quality on the K rewrites that were drawn. `beta_posterior` is the conjugate
  Beta posterior with a Beta(a0, b0) prior (default Jeffreys, 0.5/0.5), treating the n
  valid scores of a pair as exchangeable draws: alpha = a0 + sum(s), beta = b0 + n - sum(s).
  Fractional scores (F1) enter as fractional successes.
* **rewrite population** (`rewrite_interval`, label columns `ci_low`/`ci_high`): the mean
  quality over all meaning-preserving rewrites of the query, of which the K drawn ones are
  a sample. Scores of one rewrite are correlated, so the pair carries less information
  than n independent scores: the same Jeffreys interval on *effective* counts
  n_eff = n / deff and s_eff = sum(s) / deff. `deff` is Kish's design effect
  1 + (sum(n_i^2)/n - 1) * rho (rho the intra-rewrite correlation from the one-way ANOVA
  variance components), with a small-K correction: the between-rewrite part of the
  variance of the mean, estimated from only K rewrites, is scaled by (t_{K-1} / z)^2 (the
  squared ratio of the two-sided Student-t quantile with K - 1 df to the normal one).
  The choice was made on measured coverage (benchmarks/intervals.py; docs/intervals.md).

Both intervals are equal-tailed with the boundary rule of Brown, Cai & DasGupta (2001,
Statistical Science 16(2), sec. 4.1.2): the lower bound is 0 when every score is 0 and the
upper bound is 1 when every score is 1. More generally, a bound that would exclude the
observed mean is moved to 0 (lower) or 1 (upper), so every interval contains its mean
(this only matters at the boundary and for fractional sums below ~5e-4). Pairs with n = 0
(every generation failed) get null (NaN) alpha, beta and bounds: there is nothing to
update the prior with.

`label_intervals` returns all four label columns in one pass (what `dars aggregate` calls).
Every function takes per-pair arrays that a two-level SQL group-by produces (first by
(query, model, variant), then by (query, model)); no per-pair Python loop. The quantile
functions run once per distinct parameter tuple (with 0/1 scores there are a few hundred
per build, whatever its size).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

ArrayLike = Any
NOISE = 1e-12
SAMPLE = 4096  # rows looked at to decide whether grouping equal rows pays off


def _f64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype="float64")


def _apply_unique(fn: Any, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """fn(*cols) -> tuple of arrays, evaluated once per distinct finite row of cols and
    scattered back (rows with a non-finite value give NaN).

    With 0/1 scores a build has a few hundred distinct rows, so this saves almost all of
    the quantile work. Rows are grouped by hashing (pandas.factorize, linear time); when
    a sample of the rows is mostly distinct (fractional scores), grouping would cost more
    than it saves, and fn runs on every row.
    """
    ok = np.isfinite(cols[0])
    for c in cols[1:]:
        ok &= np.isfinite(c)
    every = bool(ok.all())
    rows = list(cols) if every else [c[ok] for c in cols]
    m = len(rows[0])
    sample = np.stack([r[:SAMPLE] for r in rows], axis=1)
    if m == 0 or len(np.unique(sample, axis=0)) > 0.5 * len(sample):
        vals, inv = fn(*rows), None
    else:
        codes = np.zeros(m, dtype="int64")
        for r in rows:
            c, uniq = pd.factorize(r)
            codes = codes * len(uniq) + c
        inv, uniq = pd.factorize(codes)
        first = np.empty(len(uniq), dtype="int64")
        first[inv[::-1]] = np.arange(m - 1, -1, -1)  # first row of each distinct tuple
        vals = fn(*(r[first] for r in rows))
    outs = []
    for v in vals:
        v = np.asarray(v, dtype="float64")
        v = v if inv is None else v[inv]
        if every:
            outs.append(v)
            continue
        out = np.full(cols[0].shape, np.nan)
        out[ok] = v
        outs.append(out)
    return tuple(outs)


def beta_posterior(
    sum_s: ArrayLike, n: ArrayLike, *, prior_alpha: float = 0.5, prior_beta: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) per pair; NaN where n == 0."""
    sum_s, n = _f64(sum_s), _f64(n)
    empty = ~(n > 0)
    alpha = np.where(empty, np.nan, prior_alpha + sum_s)
    beta = np.where(empty, np.nan, prior_beta + n - sum_s)
    return alpha, beta


def _equal_tailed(
    sum_s: np.ndarray,
    n: np.ndarray,
    scale: np.ndarray,
    *,
    level: float,
    prior_alpha: float,
    prior_beta: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of Beta(a0 + s*scale, b0 + (n - s)*scale), boundary-corrected."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level!r}")
    alpha, beta = beta_posterior(
        sum_s * scale, n * scale, prior_alpha=prior_alpha, prior_beta=prior_beta
    )
    tail = (1.0 - level) / 2.0
    lo, hi = _apply_unique(
        lambda a, b: (special.betaincinv(a, b, tail), special.betaincinv(a, b, 1.0 - tail)),
        alpha,
        beta,
    )
    valid = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, sum_s / np.where(valid, n, 1.0), np.nan)
    # Brown, Cai & DasGupta: [0, .] when every score is 0, [., 1] when every score is 1;
    # generally, a bound that would exclude the observed mean moves to 0 or 1.
    lo = np.where(valid & ((sum_s <= 0.0) | (lo > mean)), 0.0, lo)
    hi = np.where(valid & ((sum_s >= n) | (hi < mean)), 1.0, hi)
    return lo, hi


def jeffreys_interval(
    sum_s: ArrayLike,
    n: ArrayLike,
    *,
    level: float = 0.95,
    prior_alpha: float = 0.5,
    prior_beta: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-variant interval: equal-tailed `level` interval of the Beta posterior,
    boundary-corrected; NaN at n = 0."""
    sum_s, n = _f64(sum_s), _f64(n)
    return _equal_tailed(
        sum_s, n, np.ones_like(n), level=level, prior_alpha=prior_alpha, prior_beta=prior_beta
    )


def design_effect(
    *,
    n: ArrayLike,
    var_within: ArrayLike,
    var_between: ArrayLike,
    n_variants: ArrayLike,
    sum_n2: ArrayLike | None = None,
    between_factor: ArrayLike = 1.0,
) -> np.ndarray:
    """Kish's design effect of the rewrite clustering, per pair (>= 1; NaN at n = 0).

    One-way random-effects ANOVA over the pair's variants (K = n_variants, variant i with
    n_i valid scores): SSW = n * var_within, SSB = n * var_between, MSW = SSW / (n - K),
    MSB = SSB / (K - 1), n0 = (n - sum(n_i^2)/n) / (K - 1),
    sigma_b^2 = max(0, (MSB - MSW) / n0), sigma_w^2 = MSW. The variance of the pooled mean
    is A + B with A = sigma_w^2 / n (within rewrites) and B = sigma_b^2 * sum(n_i^2) / n^2
    (between rewrites), so deff = n (A + B) / (sigma_w^2 + sigma_b^2)
    = 1 + (sum(n_i^2)/n - 1) * rho. `between_factor` scales B (the small-K correction of
    `rewrite_interval`).

    deff = 1 when K <= 1, when sigma_b^2 = 0 (no between-rewrite variance beyond what the
    within-rewrite noise explains; includes var_between = 0) and when every variant has
    one score. `sum_n2` defaults to the balanced n^2 / K. Variances below 1e-12 count as 0
    (floating-point residue of group-by sums; scores are in [0, 1]).
    """
    n, vw, vb, k = _f64(n), _f64(var_within), _f64(var_between), _f64(n_variants)
    vw = np.where(vw < NOISE, 0.0, vw)
    vb = np.where(vb < NOISE, 0.0, vb)
    s2 = n * n / np.maximum(k, 1.0) if sum_n2 is None else _f64(sum_n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        msw = np.where(n > k, n * vw / (n - k), 0.0)
        msb = np.where(k > 1, n * vb / (k - 1), 0.0)
        n0 = np.where(k > 1, (n - s2 / n) / (k - 1), 0.0)
        sb2 = np.where(n0 > 0, np.maximum(0.0, (msb - msw) / n0), 0.0)
        a = msw / n
        b = sb2 * s2 / (n * n) * _f64(between_factor)
        clustered = (n > 0) & (k > 1) & (b > 0)
        deff = np.where(clustered, n * (a + b) / (msw + sb2), 1.0)
    deff = np.maximum(np.nan_to_num(deff, nan=1.0), 1.0)
    return np.where(n > 0, deff, np.nan)


def rewrite_interval(
    *,
    n: ArrayLike,
    sum_s: ArrayLike,
    var_within: ArrayLike,
    var_between: ArrayLike,
    n_variants: ArrayLike,
    sum_n2: ArrayLike | None = None,
    level: float = 0.95,
    prior_alpha: float = 0.5,
    prior_beta: float = 0.5,
    df_correction: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for the rewrite-population mean quality of each pair; NaN at n = 0.

    Inputs, one value per (query, model) pair, all from the valid (non-null) scores s_ij
    of variant i, sample j:

    * `n`: number of valid scores; `sum_s`: their sum (fractional scores allowed);
    * `var_within` = sum_i n_i var_i / n and `var_between` = sum_i n_i (mean_i - mean)^2 / n
      (population variances, ddof = 0; the label columns of the same names);
    * `n_variants`: number of variants with at least one valid score (K);
    * `sum_n2`: sum_i n_i^2 over those variants (defaults to the balanced n^2 / K).

    The interval is the boundary-corrected Jeffreys interval on effective counts
    (s / deff, n / deff), `deff` from `design_effect` with the between-rewrite part of
    the variance scaled by (t_{K-1} / z)^2, t_{K-1} and z the two-sided `level` quantiles
    of Student's t with K - 1 df and of the normal: that part is estimated from K
    rewrites only. With one variant, or no estimated between-rewrite variance, deff = 1
    and the interval equals `jeffreys_interval` exactly. `df_correction=False` drops the
    (t_{K-1} / z)^2 factor (the plain design effect; kept for the benchmark).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level!r}")
    n, sum_s, k = _f64(n), _f64(sum_s), _f64(n_variants)
    factor = np.ones_like(n)
    if df_correction:
        q = 1.0 - (1.0 - level) / 2.0
        # one t quantile per distinct K (K <= 1: no between part, factor unused)
        (t,) = _apply_unique(lambda d: (special.stdtrit(d, q),), np.where(k > 1, k - 1, np.nan))
        factor = np.where(k > 1, (t / special.ndtri(q)) ** 2, 1.0)
    deff = design_effect(
        n=n,
        var_within=var_within,
        var_between=var_between,
        n_variants=k,
        sum_n2=sum_n2,
        between_factor=factor,
    )
    return _equal_tailed(
        sum_s, n, 1.0 / deff, level=level, prior_alpha=prior_alpha, prior_beta=prior_beta
    )


def label_intervals(
    *,
    n: ArrayLike,
    sum_s: ArrayLike,
    var_within: ArrayLike,
    var_between: ArrayLike,
    n_variants: ArrayLike,
    sum_n2: ArrayLike | None = None,
    level: float = 0.95,
    prior_alpha: float = 0.5,
    prior_beta: float = 0.5,
) -> dict[str, np.ndarray]:
    """Both label intervals at once: {"ci_low", "ci_high"} (`rewrite_interval`) and
    {"ci_low_fixed", "ci_high_fixed"} (`jeffreys_interval`), same inputs as
    `rewrite_interval`. Rows are grouped once on all six inputs, so with 0/1 scores the
    quantile work is done for a few hundred distinct rows whatever the build's size."""
    n, k = _f64(n), _f64(n_variants)
    s2 = n * n / np.maximum(k, 1.0) if sum_n2 is None else _f64(sum_n2)
    cols = [n, _f64(sum_s), _f64(var_within), _f64(var_between), k, s2]
    cols[0] = np.where(n > 0, n, np.nan)  # n = 0: a non-finite row, null bounds
    kw = {"level": level, "prior_alpha": prior_alpha, "prior_beta": prior_beta}

    def both(n_, s_, vw_, vb_, k_, s2_):
        lo, hi = rewrite_interval(
            n=n_, sum_s=s_, var_within=vw_, var_between=vb_, n_variants=k_, sum_n2=s2_, **kw
        )
        return (lo, hi, *jeffreys_interval(s_, n_, **kw))

    lo, hi, flo, fhi = _apply_unique(both, *cols)
    return {"ci_low": lo, "ci_high": hi, "ci_low_fixed": flo, "ci_high_fixed": fhi}
