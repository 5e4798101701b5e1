"""Scoring routers on a label matrix: shared by the `evaluate` stage and `dars bench`.

A *system* is a router under one supervision, given as one or more runs of
(predicted scores (n_queries, n_models), per-model cost estimate). Each run routes every
query to argmax(score - lambda * cost); the choices are scored against the labels with
the metrics of `dars.evaluation.metrics`, next to the oracle and the best single model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dars.core.params import DEFAULT_LAMBDAS, ParamsSource
from dars.evaluation import metrics as M
from dars.labels import utility as W

__all__ = [
    "DEFAULT_LAMBDAS",
    "EvalSettings",
    "check_predictions",
    "eval_settings",
    "evaluate_systems",
    "evaluate_views",
    "score_references",
    "system_choices",
    "test_label_matrix",
]


@dataclass(frozen=True)
class EvalSettings:
    lambda_cost: W.Weight  # a number or {task: number} (dars.labels.utility)
    beta_risk: W.Weight
    lambdas: tuple[float, ...]
    n_boot: int
    seed: int
    ci: float


def check_predictions(pred: Any, *, n_queries: int, models: Sequence[str], who: str) -> np.ndarray:
    """The (n_queries, n_models) float matrix a router must return, or a clear error."""
    from dars.core.errors import RouterInterfaceError

    try:
        arr = np.asarray(pred, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RouterInterfaceError(
            f"{who}.predict returned {type(pred).__name__}, which is not a numeric array: {exc}"
        ) from exc
    want = (n_queries, len(models))
    if arr.shape != want:
        raise RouterInterfaceError(
            f"{who}.predict returned an array of shape {arr.shape}; expected {want} "
            f"(one row per query, one column per model in this order: {list(models)})"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise RouterInterfaceError(
            f"{who}.predict returned {int(bad.sum())} non-finite values, e.g. {arr[r, c]} at "
            f"query row {r}, model {models[c]!r}; predictions must be finite numbers"
        )
    return arr


def system_choices(
    runs: Sequence[tuple[np.ndarray, np.ndarray]], ref: M.Reference
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, cost estimate) per repeat -> choices (R, n) and sweep choices (R, L, n)."""
    choices = np.stack([M.route(s, cost=c, lambda_cost=ref.lambda_cost) for s, c in runs])
    sweep = np.stack([M.route_sweep(s, cost=c, lambdas=ref.lambdas) for s, c in runs])
    return choices, sweep


def score_references(ref: M.Reference) -> dict[str, M.Scored]:
    return {
        "oracle": M.score(*M.oracle_choices(ref), ref),
        "best-single (test, hindsight)": M.score(*M.best_single_choices(ref), ref),
    }


def test_label_matrix(
    labels: pd.DataFrame, test_ids: list[str], models: list[str]
) -> tuple[M.LabelMatrix, np.ndarray]:
    lm = M.label_matrix(labels, query_ids=test_ids, models=models)
    ok = M.complete_rows(lm)
    return lm.subset(ok), ok


def evaluate_systems(
    systems: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
    *,
    lm: M.LabelMatrix,
    settings: EvalSettings,
) -> tuple[dict[str, Any], dict[str, dict[str, M.Scored]], dict[str, M.Scored], M.Reference]:
    """Score systems {name: {supervision: [(scores, cost estimate), ...]}} on `lm`."""
    ref = M.reference(
        lm,
        lambda_cost=settings.lambda_cost,
        beta_risk=settings.beta_risk,
        lambdas=settings.lambdas,
        n_boot=settings.n_boot,
        seed=settings.seed,
    )
    scored: dict[str, dict[str, M.Scored]] = {}
    out: dict[str, Any] = {}
    for name, sups in systems.items():
        scored[name] = {sup: M.score(*system_choices(runs, ref), ref) for sup, runs in sups.items()}
        out[name] = {sup: s.summary(settings.ci) for sup, s in scored[name].items()}
        if "dars" in scored[name] and "single_shot" in scored[name]:
            out[name]["dars_minus_single_shot"] = M.compare(
                scored[name]["dars"], scored[name]["single_shot"], level=settings.ci
            )
    refs = score_references(ref)
    result = {
        "models": lm.models,
        "n_test_queries": len(lm.query_ids),
        "has_truth": lm.true_p is not None,
        "settings": {
            "lambda_cost": W.as_json(settings.lambda_cost),
            "beta_risk": W.as_json(settings.beta_risk),
            "lambda_grid": list(settings.lambdas),
            "bootstrap": settings.n_boot,
            "seed": settings.seed,
            "ci": settings.ci,
            "nauc_cost_range": [ref.c_lo, ref.c_hi],
        },
        "routers": out,
        "reference": {k: v.summary(settings.ci) for k, v in refs.items()},
        "oracle_verdict_flip": M.oracle_flip_rate(ref),
    }
    return result, scored, refs, ref


def evaluate_views(
    systems: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
    *,
    lm: M.LabelMatrix,
    labels_by_view: dict[str, pd.DataFrame],
    settings: EvalSettings,
) -> dict[str, Any]:
    """Every system under each DARS evaluation view (`dars.labels.views`), on the queries
    of `lm` (rows of the predictions) whose view labels are complete for every model."""
    out: dict[str, Any] = {}
    for view, vl in labels_by_view.items():
        vlm = M.label_matrix(vl, query_ids=lm.query_ids, models=lm.models)
        if vlm.tasks is None or any(t is None for t in vlm.tasks):
            vlm = M.LabelMatrix(**{**vlm.__dict__, "tasks": lm.tasks})
        ok = M.complete_rows(vlm)
        entry: dict[str, Any] = {"n_test_queries": int(ok.sum()), "n_dropped": int((~ok).sum())}
        if not ok.any():
            out[view] = entry | {"routers": {}, "reference": {}}
            continue
        sub = {
            name: {sup: [(p[ok], c) for p, c in runs] for sup, runs in sups.items()}
            for name, sups in systems.items()
        }
        res, _, _, _ = evaluate_systems(sub, lm=vlm.subset(ok), settings=settings)
        out[view] = entry | {
            k: res[k] for k in ("routers", "reference", "oracle_verdict_flip", "has_truth")
        }
    return out


def eval_settings(params: ParamsSource) -> EvalSettings:
    """The `aggregate` weights and the `evaluate` section as EvalSettings."""
    from dars.core.params import section

    agg, ev = section(params, "aggregate"), section(params, "evaluate")
    return EvalSettings(
        lambda_cost=W.weight(agg.lambda_cost),
        beta_risk=W.weight(agg.beta_risk),
        lambdas=tuple(sorted(float(g) for g in ev.lambda_grid)),
        n_boot=int(ev.bootstrap),
        seed=int(ev.seed),
        ci=float(ev.ci),
    )
