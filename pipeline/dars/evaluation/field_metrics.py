"""The field's routing metrics, beside ours (definitions and sources: docs/routers.md).

* `aiq` (RouterBench, Hu et al. 2024, `calc_AIQ`): the area under the non-decreasing
  convex hull of a router's (cost, quality) points, extended flat to the largest cost of
  the systems compared, divided by that cost. The hull is `metrics.upper_envelope`.
* `routellm_curve` / `cpt` / `routellm_apgr` (RouteLLM, Ong et al. 2024): a router
  choosing between a strong and a weak model by a threshold on its preference for the
  strong one. PGR = (quality - weak) / (strong - weak) (`metrics.apgr`, the same ratio);
  CPT(x) = the smallest share of calls to the strong model whose PGR reaches x;
  APGR = the area under PGR against the share of strong calls, over [0, 1].
* `imp_max` / `oracle_gap` (LLMRouterBench, Li et al. 2026): the router's quality
  relative to the best single model in hindsight, (Q - Q_best) / Q_best, and its
  distance to the oracle, Q_oracle - Q.
* `arena_score` (RouterArena, Lu et al. 2025, `compute_arena_score`): with A the accuracy
  and c the raw $ per 1,000 queries, C = (log2 c_max - log2 c) / (log2 c_max - log2 c_min)
  (c_max = 200, c_min = 0.0044) and S = (1 + b) A C / (b A + C), b = 0.1.
* `robustness`: the share of queries whose routed model changes across the K rewrites
  of the query (a router that reads the same question the same way scores 0).
* `macro`: the unweighted mean over tasks.

Thresholds and lambda are tuned on the validation split only (`tune_threshold`), then
applied unchanged on test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dars.evaluation import metrics as M

ARENA_BETA, ARENA_C_MAX, ARENA_C_MIN = 0.1, 200.0, 0.0044
CPT_LEVELS = (0.2, 0.5, 0.8)


def aiq(costs: Sequence[float], qualities: Sequence[float], *, c_max: float | None = None) -> float:
    """RouterBench's AIQ of one router's (cost, quality) points; `c_max`: the largest cost
    over every system compared (default: this router's own)."""
    xs, ys = M.upper_envelope(np.asarray(costs, float), np.asarray(qualities, float))
    top = float(np.max(costs)) if c_max is None else float(c_max)
    if top <= 0:
        return float(ys[-1])  # everything is free: the best quality reached
    xs, ys = np.append(xs, max(top, xs[-1])), np.append(ys, ys[-1])
    return float(np.trapezoid(ys, xs) / top)


def routellm_curve(
    preference: np.ndarray, strong: np.ndarray, weak: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sweep every threshold on `preference` (higher = send to the strong model):
    (thresholds, share of strong calls, mean quality), shares from 0 to 1."""
    p = np.asarray(preference, float)
    order = np.argsort(-p, kind="stable")
    n = len(p)
    gain = (np.asarray(strong, float) - np.asarray(weak, float))[order]
    quality = (np.asarray(weak, float).sum() + np.concatenate([[0.0], np.cumsum(gain)])) / n
    share = np.arange(n + 1) / n
    thresholds = np.concatenate([[np.inf], p[order]])
    # ties: a threshold sends every query at that preference, keep the last of each run
    keep = np.append(thresholds[1:] != thresholds[:-1], True)
    keep[0] = True
    return thresholds[keep], share[keep], quality[keep]


def pgr(quality: Any, *, strong: float, weak: float) -> Any:
    """Performance gap recovered: 0 = the weak model, 1 = the strong one."""
    return M.apgr(quality, u_best_single=weak, u_oracle=strong)


def cpt(
    share: np.ndarray, quality: np.ndarray, *, strong: float, weak: float, level: float
) -> float:
    """Call-performance threshold: the smallest strong-call share whose PGR >= level."""
    g = pgr(quality, strong=strong, weak=weak)
    hit = np.flatnonzero(np.asarray(g) >= level - 1e-12)
    return float(share[hit[0]]) if len(hit) else float("nan")


def routellm_apgr(share: np.ndarray, quality: np.ndarray, *, strong: float, weak: float) -> float:
    """Area under PGR(share of strong calls) over [0, 1] (trapezoid)."""
    return float(np.trapezoid(pgr(quality, strong=strong, weak=weak), share))


def tune_threshold(
    preference: np.ndarray, strong: np.ndarray, weak: np.ndarray, *, level: float
) -> float:
    """On the validation split: the threshold of the cheapest sweep point whose PGR
    reaches `level` (+inf: never; -inf: always strong)."""
    t, share, q = routellm_curve(preference, strong, weak)
    g = pgr(q, strong=float(np.mean(strong)), weak=float(np.mean(weak)))
    hit = np.flatnonzero(np.asarray(g) >= level - 1e-12)
    return float(t[hit[0]]) if len(hit) else float("-inf")


def apply_threshold(
    preference: np.ndarray, strong: np.ndarray, weak: np.ndarray, threshold: float
) -> tuple[float, float]:
    """(share of strong calls, PGR) on test with a threshold tuned on validation."""
    to_strong = np.asarray(preference, float) >= threshold
    q = np.where(to_strong, strong, weak).mean()
    return float(to_strong.mean()), float(
        pgr(q, strong=float(np.mean(strong)), weak=float(np.mean(weak)))
    )


def routellm_metrics(
    preference: np.ndarray,
    strong: np.ndarray,
    weak: np.ndarray,
    *,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """CPT(20/50/80%) and APGR on test; with `validation` (its preference, strong and
    weak quality), also each CPT level's threshold tuned there and its test result."""
    qs, qw = float(np.mean(strong)), float(np.mean(weak))
    _, share, q = routellm_curve(preference, strong, weak)
    out: dict[str, Any] = {"apgr": routellm_apgr(share, q, strong=qs, weak=qw)}
    for level in CPT_LEVELS:
        out[f"cpt_{int(level * 100)}"] = cpt(share, q, strong=qs, weak=qw, level=level)
    if validation is not None:
        for level in CPT_LEVELS:
            t = tune_threshold(*validation, level=level)
            calls, g = apply_threshold(preference, strong, weak, t)
            out[f"validated_cpt_{int(level * 100)}"] = {"strong_calls": calls, "pgr": g}
    return out


def imp_max(quality: float, *, best_single: float) -> float:
    """(Q - Q_best) / Q_best: the relative gain over the best single model in hindsight."""
    return float((quality - best_single) / best_single) if best_single > 0 else float("nan")


def oracle_gap(quality: float, *, oracle: float) -> float:
    """Q_oracle - Q, in quality units."""
    return float(oracle - quality)


def arena_score(
    accuracy: float,
    cost_per_1k: float,
    *,
    beta: float = ARENA_BETA,
    c_max: float = ARENA_C_MAX,
    c_min: float = ARENA_C_MIN,
) -> float:
    """RouterArena's score; NaN where the cost is not a positive number (free builds:
    their formula has no value at 0 $)."""
    if not np.isfinite(cost_per_1k) or cost_per_1k <= 0:
        return float("nan")
    c = (np.log2(c_max) - np.log2(cost_per_1k)) / (np.log2(c_max) - np.log2(c_min))
    denom = beta * accuracy + c
    return float((1 + beta) * accuracy * c / denom) if denom != 0 else float("nan")


def robustness(choices: np.ndarray) -> float:
    """choices (K rewrites, n queries), -1 where a rewrite is missing -> the share of
    queries (with >= 2 rewrites) whose routed model is not the same on every rewrite."""
    c = np.asarray(choices)
    present = c >= 0
    ok = present.sum(axis=0) >= 2
    if not ok.any():
        return float("nan")
    hi = np.where(present, c, np.iinfo(np.int64).min).max(axis=0)
    lo = np.where(present, c, np.iinfo(np.int64).max).min(axis=0)
    return float(np.mean((hi != lo)[ok]))


def macro(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """{task: {metric: value}} -> {metric: unweighted mean over tasks (NaN-skipping)}."""
    keys = sorted({k for v in per_task.values() for k in v})
    out = {}
    for k in keys:
        vals = np.array([v.get(k, np.nan) for v in per_task.values()], dtype=float)
        out[k] = float(M.nanmean(vals, axis=0))
    return out
