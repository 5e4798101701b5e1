"""Routing metrics on the test split, against the distributional (DARS) labels.

Notation, per test query q and candidate model m: mu[q, m] (label `mean`), sigma[q, m]
(`std`), c[q, m] (`cost_norm`, in [0, 1]) and the utility

    U[q, m] = mu[q, m] - lambda * c[q, m] - beta * sigma[q, m]

with lambda = `aggregate.lambda_cost` and beta = `aggregate.beta_risk`, each one number or
one per task (`dars.labels.utility`; then lambda and beta are the query's task's). A router predicts
a score s[q, m] (its estimate of mu - beta * sigma) and routes with
`route`: m*(q) = argmax_m s[q, m] - lambda * c_hat[m], where c_hat is the router's
per-model cost estimate from its training labels (ties go to the cheaper model).

Metrics of a routing decision m*(.) over the n test queries:

* quality   = mean_q mu[q, m*(q)];  cost = mean_q c[q, m*(q)];  utility = mean_q U[q, m*(q)]
* regret    = mean_q (max_m U[q, m] - U[q, m*(q)])  (the oracle has regret 0)
* apgr      = (utility - U_best) / (U_oracle - U_best), where U_best is the utility of the
  best single model on the same queries (chosen in hindsight) and U_oracle the oracle's:
  0 = no better than always using the best single model, 1 = the oracle (APGR-style).
* nauc      = normalised area under the cost-quality curve (AIQ-style, RouterBench).
  Sweeping lambda over `evaluate.lambda_grid` gives points (cost_l, quality_l). Their
  non-decreasing upper concave envelope Q(c) is the best quality reachable at expected
  cost c by mixing lambda settings at random; it is extended flat left of its cheapest
  and right of its best point. nauc = 1/(c_hi - c_lo) * integral_{c_lo}^{c_hi} Q(c) dc,
  where [c_lo, c_hi] is the range of the single models' mean test costs (the same range
  for every router, the oracle included), so nauc is in quality units in [0, 1].
* verdict_flip = the share of chosen pairs whose single-shot test label gives the other
  verdict than the distributional label: (single_shot >= 0.5) != (mu >= 0.5). Pairs
  whose single-shot generation failed are left out, never counted as wrong.
* quality_true (simulated builds only) = mean_q true_p[q, m*(q)], the known truth.

Uncertainty: every number carries a paired-bootstrap 95% percentile interval over test
queries. All systems are scored on the same B resamples of query indices, so a
difference between two systems is bootstrapped pairwise; its two-sided p-value is
p = min(1, 2 * min(P*(d <= 0), P*(d >= 0))) with add-one smoothing, the inversion of the
percentile interval (p < 0.05 exactly when the 95% interval excludes 0).
A system trained R times (single-shot supervision, R label draws) is scored per repeat;
its value is the mean over repeats, `std` the spread across repeats, and its bootstrap
replicate is the mean over repeats on the same resample.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError
from dars.labels import utility as W

METRICS = ("quality", "cost", "utility", "regret", "apgr", "nauc", "verdict_flip")
HIGHER_IS_BETTER = {
    "quality": True,
    "cost": False,
    "utility": True,
    "regret": False,
    "apgr": True,
    "nauc": True,
    "verdict_flip": False,
    "quality_true": True,
}


@dataclass(frozen=True)
class LabelMatrix:
    """Wide (n_queries, n_models) views of the labels, rows and columns in a fixed order."""

    query_ids: list[str]
    models: list[str]
    mean: np.ndarray
    std: np.ndarray
    cost: np.ndarray
    single_shot: np.ndarray
    true_p: np.ndarray | None = None
    tasks: list[str] | None = None  # the task of each query (for per-task utility weights)

    def subset(self, rows: np.ndarray) -> LabelMatrix:
        return LabelMatrix(
            query_ids=[self.query_ids[i] for i in np.flatnonzero(rows)],
            models=self.models,
            mean=self.mean[rows],
            std=self.std[rows],
            cost=self.cost[rows],
            single_shot=self.single_shot[rows],
            true_p=None if self.true_p is None else self.true_p[rows],
            tasks=None if self.tasks is None else [self.tasks[i] for i in np.flatnonzero(rows)],
        )


def label_matrix(
    labels: pd.DataFrame, *, query_ids: Sequence[str], models: Sequence[str]
) -> LabelMatrix:
    """Pivot long labels to wide matrices; a missing (query, model) pair becomes NaN."""
    lab = labels.drop_duplicates(["query_id", "model"]).set_index(["query_id", "model"])
    index = pd.MultiIndex.from_product([list(query_ids), list(models)], names=lab.index.names)

    def wide(col: str) -> np.ndarray:
        values = lab[col].reindex(index).to_numpy(dtype=np.float64)
        return values.reshape(len(query_ids), len(models))

    has_truth = "true_p" in lab.columns and lab["true_p"].notna().any()
    tasks = W.tasks_of(labels, list(query_ids))
    return LabelMatrix(
        query_ids=list(query_ids),
        models=list(models),
        mean=wide("mean"),
        std=wide("std"),
        cost=wide("cost_norm"),
        single_shot=wide("single_shot"),
        true_p=wide("true_p") if has_truth else None,
        tasks=tasks,
    )


def complete_rows(lm: LabelMatrix) -> np.ndarray:
    """Queries whose mean, std and cost are known for every model (others cannot be scored)."""
    return np.isfinite(lm.mean).all(1) & np.isfinite(lm.std).all(1) & np.isfinite(lm.cost).all(1)


#: a utility weight as the arithmetic uses it: one number, or an (n, 1) column holding each
#: query row's own (its task's) value, broadcasting over the model axis (`W.column`)
Coef = float | np.ndarray


def utility(
    *, mean: np.ndarray, cost: np.ndarray, std: np.ndarray, lambda_cost: Coef, beta_risk: Coef
) -> np.ndarray:
    """U = mu - lambda * c - beta * sigma (elementwise)."""
    return mean - lambda_cost * cost - beta_risk * std


def route(scores: np.ndarray, *, cost: np.ndarray, lambda_cost: Coef) -> np.ndarray:
    """Chosen model index per row: argmax(scores - lambda * cost), ties to the cheaper model.

    `cost` is a per-model vector (a router's estimate) or a (n, m) matrix (an oracle)."""
    cost = np.broadcast_to(np.asarray(cost, dtype=np.float64), scores.shape)
    s = scores - lambda_cost * cost
    best = s.max(axis=1, keepdims=True)
    tied = s >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    return np.where(tied, cost, np.inf).argmin(axis=1)


def route_sweep(scores: np.ndarray, *, cost: np.ndarray, lambdas: Sequence[float]) -> np.ndarray:
    """(L, n) choices, one row per lambda."""
    return np.stack([route(scores, cost=cost, lambda_cost=lam) for lam in lambdas])


def take(matrix: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """matrix[q, choices[..., q]] for choices of shape (..., n)."""
    return np.take_along_axis(
        np.broadcast_to(matrix, choices.shape[:-1] + matrix.shape),
        choices[..., None],
        axis=-1,
    )[..., 0]


def per_query(
    choices: np.ndarray, lm: LabelMatrix, *, lambda_cost: Coef, beta_risk: Coef
) -> dict[str, np.ndarray]:
    """Per-query values of the mean metrics for choices of shape (..., n)."""
    u = utility(
        mean=lm.mean, cost=lm.cost, std=lm.std, lambda_cost=lambda_cost, beta_risk=beta_risk
    )
    ss = take(lm.single_shot, choices)
    mu = take(lm.mean, choices)
    flip = np.where(np.isfinite(ss), ((ss >= 0.5) != (mu >= 0.5)).astype(float), np.nan)
    out = {
        "quality": mu,
        "cost": take(lm.cost, choices),
        "utility": take(u, choices),
        "regret": u.max(axis=1) - take(u, choices),
        "verdict_flip": flip,
    }
    if lm.true_p is not None:
        out["quality_true"] = take(lm.true_p, choices)
    return out


def nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite entries; NaN (without a warning) where there are none."""
    ok = np.isfinite(a)
    count = ok.sum(axis=axis)
    total = np.where(ok, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _hull(costs: list[float], qualities: list[float]) -> tuple[list[float], list[float]]:
    """Andrew's monotone chain (upper hull) on plain floats: the bootstrap calls it tens of
    thousands of times on a handful of points, where numpy's per-call overhead dominated
    (evaluate spent 9 of its 15 s here on a 15-query build)."""
    pts = sorted(zip(costs, qualities, strict=True), key=lambda t: (t[0], -t[1]))
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        if hull and hull[-1][0] == p[0]:
            continue  # same cost, lower quality (sorted by -quality within a cost)
        hull.append(p)
    top = max(range(len(hull)), key=lambda i: (hull[i][1], -i))  # the first best point
    return [x for x, _ in hull[: top + 1]], [y for _, y in hull[: top + 1]]


def upper_envelope(costs: np.ndarray, qualities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing upper concave envelope of (cost, quality) points."""
    xs, ys = _hull(np.asarray(costs, float).tolist(), np.asarray(qualities, float).tolist())
    return np.array(xs), np.array(ys)


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    """np.interp for one point on increasing xs (flat beyond both ends)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def nauc(costs: np.ndarray, qualities: np.ndarray, *, c_lo: float, c_hi: float) -> float:
    """Normalised area under the cost-quality envelope over [c_lo, c_hi] (see module doc)."""
    c, q = np.asarray(costs, float).tolist(), np.asarray(qualities, float).tolist()
    if not all(map(math.isfinite, c + q)):
        return float("nan")
    xs, ys = _hull(c, q)
    if c_hi <= c_lo:
        return float(_interp(c_lo, xs, ys))
    grid = [c_lo, *(x for x in xs if c_lo < x < c_hi), c_hi]
    vals = [_interp(x, xs, ys) for x in grid]
    area = sum((grid[i + 1] - grid[i]) * (vals[i] + vals[i + 1]) / 2 for i in range(len(grid) - 1))
    return float(area / (c_hi - c_lo))


def apgr(u: Any, *, u_best_single: Any, u_oracle: Any) -> Any:
    """(u - u_best) / (u_oracle - u_best); NaN where the oracle gains nothing."""
    u, lo, hi = (np.asarray(v, dtype=np.float64) for v in (u, u_best_single, u_oracle))
    gap = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gap > 1e-12, (u - lo) / np.where(gap > 1e-12, gap, 1.0), np.nan)


def bootstrap_indices(n: int, *, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) query indices drawn with replacement, shared by every system (paired)."""
    if n < 1:
        raise InputDataError("no test queries to bootstrap over")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if not len(s):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(s, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_p_value(diff_samples: np.ndarray) -> float:
    """Two-sided paired-bootstrap p-value that the mean difference is 0 (see module doc)."""
    d = np.asarray(diff_samples, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d):
        return float("nan")
    below = (np.sum(d <= 0) + 1) / (len(d) + 1)
    above = (np.sum(d >= 0) + 1) / (len(d) + 1)
    return float(min(1.0, 2 * min(below, above)))


@dataclass(frozen=True)
class Reference:
    """What every system on a test set is compared with (computed once)."""

    lm: LabelMatrix
    lambda_cost: Coef  # a number, or an (n, 1) column: the query's task's
    beta_risk: Coef
    lambdas: tuple[float, ...]
    c_lo: float
    c_hi: float
    idx: np.ndarray  # (B, n) bootstrap indices
    u_best_boot: np.ndarray  # (B,)
    u_oracle_boot: np.ndarray  # (B,)
    u_best: float
    u_oracle: float


def reference(
    lm: LabelMatrix,
    *,
    lambda_cost: W.Weight,
    beta_risk: W.Weight,
    lambdas: Sequence[float],
    n_boot: int,
    seed: int,
) -> Reference:
    """The references of a test set; per-task weights become one value per query row."""
    if not complete_rows(lm).all():
        raise InputDataError("test labels hold missing mean/std/cost; drop those queries first")
    lam = W.column(lambda_cost, lm.tasks, key="aggregate.lambda_cost")
    beta = W.column(beta_risk, lm.tasks, key="aggregate.beta_risk")
    u = utility(mean=lm.mean, cost=lm.cost, std=lm.std, lambda_cost=lam, beta_risk=beta)
    idx = bootstrap_indices(len(lm.query_ids), n_boot=n_boot, seed=seed)
    per_model = lm.cost.mean(axis=0)
    return Reference(
        lm=lm,
        lambda_cost=lam,
        beta_risk=beta,
        lambdas=tuple(float(x) for x in lambdas),
        c_lo=float(per_model.min()),
        c_hi=float(per_model.max()),
        idx=idx,
        u_best_boot=u[idx].mean(axis=1).max(axis=1),
        u_oracle_boot=u.max(axis=1)[idx].mean(axis=1),
        u_best=float(u.mean(axis=0).max()),
        u_oracle=float(u.max(axis=1).mean()),
    )


@dataclass(frozen=True)
class Scored:
    """One system's metrics: per-repeat point values and bootstrap replicates."""

    points: dict[str, np.ndarray]  # metric -> (R,)
    boot: dict[str, np.ndarray]  # metric -> (B,), mean over repeats
    per_query: dict[str, np.ndarray]  # metric -> (n,), mean over repeats
    curve: tuple[np.ndarray, np.ndarray]  # (L,) cost and quality of the sweep, mean over R

    def summary(self, level: float = 0.95) -> dict[str, dict[str, float]]:
        out = {}
        for k, pts in self.points.items():
            lo, hi = percentile_ci(self.boot[k], level=level)
            finite = pts[np.isfinite(pts)]
            out[k] = {
                "value": float(finite.mean()) if len(finite) else float("nan"),
                "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                "ci_low": lo,
                "ci_high": hi,
                "repeats": int(len(pts)),
            }
        return out


def score(choices: np.ndarray, sweep: np.ndarray, ref: Reference) -> Scored:
    """Score a system from its choices (R, n) at lambda and its sweep choices (R, L, n)."""
    choices = np.atleast_2d(choices)
    if sweep.ndim == 2:
        sweep = sweep[None]
    lm, idx = ref.lm, ref.idx
    pq = per_query(choices, lm, lambda_cost=ref.lambda_cost, beta_risk=ref.beta_risk)
    points: dict[str, np.ndarray] = {}
    boot: dict[str, np.ndarray] = {}
    for k, v in pq.items():  # v: (R, n)
        points[k] = nanmean(v, axis=1) if k == "verdict_flip" else v.mean(axis=1)
        rb = v[:, idx]  # (R, B, n)
        rb = nanmean(rb, axis=2) if k == "verdict_flip" else rb.mean(axis=2)
        boot[k] = nanmean(rb, axis=0)
    points["apgr"] = apgr(points["utility"], u_best_single=ref.u_best, u_oracle=ref.u_oracle)
    boot["apgr"] = apgr(boot["utility"], u_best_single=ref.u_best_boot, u_oracle=ref.u_oracle_boot)

    sq = take(lm.mean, sweep)  # (R, L, n)
    sc = take(lm.cost, sweep)
    points["nauc"] = np.array(
        [nauc(sc[r].mean(1), sq[r].mean(1), c_lo=ref.c_lo, c_hi=ref.c_hi) for r in range(len(sq))]
    )
    qb = sq[:, :, idx].mean(axis=3)  # (R, L, B)
    cb = sc[:, :, idx].mean(axis=3)
    boot["nauc"] = np.array(
        [
            np.mean(
                [
                    nauc(cb[r, :, b], qb[r, :, b], c_lo=ref.c_lo, c_hi=ref.c_hi)
                    for r in range(len(sq))
                ]
            )
            for b in range(idx.shape[0])
        ]
    )
    mean_pq = {k: nanmean(v, axis=0) for k, v in pq.items()}
    curve = (sc.mean(axis=2).mean(axis=0), sq.mean(axis=2).mean(axis=0))
    return Scored(points=points, boot=boot, per_query=mean_pq, curve=curve)


def compare(a: Scored, b: Scored, *, level: float = 0.95) -> dict[str, dict[str, float]]:
    """a - b for every metric, with the paired-bootstrap interval and p-value."""
    out = {}
    for k in a.points:
        if k not in b.points:
            continue
        d = a.boot[k] - b.boot[k]
        lo, hi = percentile_ci(d, level=level)
        out[k] = {
            "diff": float(nanmean(a.points[k], axis=0) - nanmean(b.points[k], axis=0)),
            "ci_low": lo,
            "ci_high": hi,
            "p_value": bootstrap_p_value(d),
        }
    return out


def oracle_choices(ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: the best model per query by the true test utility, and its sweep."""
    lm = ref.lm
    risk_adj = lm.mean - ref.beta_risk * lm.std
    return (
        route(risk_adj, cost=lm.cost, lambda_cost=ref.lambda_cost),
        route_sweep(risk_adj, cost=lm.cost, lambdas=ref.lambdas),
    )


def best_single_choices(ref: Reference) -> tuple[np.ndarray, np.ndarray]:
    """Always the model with the best mean test utility (chosen in hindsight)."""
    lm = ref.lm
    n = len(lm.query_ids)
    risk_adj = (lm.mean - ref.beta_risk * lm.std).mean(axis=0, keepdims=True)
    cost = lm.cost.mean(axis=0)
    # the mean utility per model (per-task lambda: each query's own lambda), best first
    u = utility(
        mean=lm.mean, cost=lm.cost, std=lm.std, lambda_cost=ref.lambda_cost, beta_risk=ref.beta_risk
    ).mean(axis=0, keepdims=True)
    one = route(u, cost=cost, lambda_cost=0.0)
    sweep = route_sweep(risk_adj, cost=cost, lambdas=ref.lambdas)
    return np.repeat(one, n), np.repeat(sweep, n, axis=1)


def oracle_flip_rate(ref: Reference) -> dict[str, float]:
    """How often a single-shot test set names another best model than the labels do.

    Over test queries whose single-shot labels all exist: the share where
    argmax_m (single_shot - lambda * c) differs from argmax_m U."""
    lm = ref.lm
    ok = np.isfinite(lm.single_shot).all(axis=1)
    if not ok.any():
        return {"rate": float("nan"), "n_queries": 0}
    best_true, _ = oracle_choices(ref)
    lc = ref.lambda_cost
    lam = lc[ok] if isinstance(lc, np.ndarray) and lc.ndim else lc  # a column: the rows kept
    best_ss = route(lm.single_shot[ok], cost=lm.cost[ok], lambda_cost=lam)
    return {"rate": float(np.mean(best_ss != best_true[ok])), "n_queries": int(ok.sum())}
