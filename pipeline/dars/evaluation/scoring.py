"""One scoring function for `dars evaluate` and `dars bench` (our protocol, the default).

`score` takes systems {name: {supervision: [(predicted scores, cost estimate), ...]}} and
the test label matrix, and returns what both commands report:

* every metric of `dars.evaluation.metrics` with its paired-bootstrap interval, the oracle
  and the best single model (`routing.evaluate_systems`);
* with outcome rows: the same under DARS's evaluation views (`routing.evaluate_views`);
* the field's metrics (`field_block`, definitions in `dars.evaluation.field_metrics`):
  AIQ, RouteLLM CPT/APGR for the strong/weak pair, ImpMax, OracleGap, the RouterArena
  score (raw $ per 1,000 queries, when the labels carry `mean_cost`) and, with the
  predictions on each rewrite, robustness; over all test queries, per task and as the
  per-task macro average. RouteLLM's thresholds are tuned on the validation split when
  its predictions are given, never on test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dars.evaluation import field_metrics as F
from dars.evaluation import metrics as M
from dars.evaluation.routing import EvalSettings, evaluate_systems, evaluate_views
from dars.labels import views as V

Systems = Mapping[str, Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]]]
#: {system: {supervision: per run, one (n, m) prediction per rewrite (NaN rows: missing)}}
Rewrites = Mapping[str, Mapping[str, Sequence[Sequence[np.ndarray]]]]
FIELD_HEADLINE = ("aiq", "apgr_routellm", "cpt_50", "imp_max", "oracle_gap", "arena_score")


@dataclass(frozen=True)
class Validation:
    """The validation split's label matrix and every system's predictions on it (same
    order of runs as the test systems), for tuning thresholds off the test split."""

    lm: M.LabelMatrix
    predictions: Mapping[str, Mapping[str, Sequence[np.ndarray]]]


def validation(
    lm: M.LabelMatrix, predictions: Mapping[str, Mapping[str, Sequence[tuple[np.ndarray, Any]]]]
) -> Validation | None:
    """The Validation of systems' (scores, cost) runs on the validation split, or None
    when it has no query with complete labels."""
    if not len(lm.query_ids) or not predictions:
        return None
    preds = {n: {s: [p for p, _ in rs] for s, rs in v.items()} for n, v in predictions.items()}
    return Validation(lm=lm, predictions=preds)


def score(
    systems: Systems,
    *,
    lm: M.LabelMatrix,
    settings: EvalSettings,
    outcomes: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    validation: Validation | None = None,
    rewrite_predictions: Rewrites | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, M.Scored]], dict[str, M.Scored], M.Reference]:
    """Score `systems` on `lm` (our protocol); `labels` (the test labels with `mean_cost`,
    `cost_norm` and `task`) give the view costs' scale and the raw $ of the arena score;
    `outcomes` add the DARS views."""
    plain = {n: {s: list(r) for s, r in v.items()} for n, v in systems.items()}
    result, scored, refs, ref = evaluate_systems(plain, lm=lm, settings=settings)
    if outcomes is not None and labels is not None:
        by_view = V.all_view_labels(
            outcomes,
            query_ids=lm.query_ids,
            cost_scale=V.cost_scale(labels),
            tasks=labels[["query_id", "task"]] if "task" in labels.columns else None,
        )
        result["views"] = evaluate_views(plain, lm=lm, labels_by_view=by_view, settings=settings)
    raw = None
    if labels is not None and "mean_cost" in labels.columns:
        from dars.routers.targets import wide

        raw = wide(
            labels.drop_duplicates(["query_id", "model"]), "mean_cost", lm.query_ids, lm.models
        )
    result["field"] = field_block(
        systems,
        ref=ref,
        raw_cost=raw,
        validation=validation,
        rewrite_predictions=rewrite_predictions,
    )
    return result, scored, refs, ref


def strong_weak(lm: M.LabelMatrix) -> tuple[int, int]:
    """RouteLLM's pair: the most and the least expensive model by mean cost (a property
    of the models, so choosing it on test leaks nothing about quality)."""
    c = lm.cost.mean(axis=0)
    return int(np.argmax(c)), int(np.argmin(c))


def _per_rows(
    rows: np.ndarray,
    preds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    ref: M.Reference,
    raw_cost: np.ndarray | None,
    c_max: float,
    pair: tuple[int, int],
    validation: tuple[M.LabelMatrix, Sequence[np.ndarray]] | None,
    rewrites: Sequence[Sequence[np.ndarray]] | None,
) -> dict[str, float]:
    lm = ref.lm
    mean, cost = lm.mean[rows], lm.cost[rows]
    lam: Any = ref.lambda_cost
    if np.ndim(lam) > 0:
        lam = np.asarray(lam)[rows]
    q_best, q_oracle = float(mean.mean(0).max()), float(mean.max(1).mean())
    s, w = pair
    runs = []
    for r, (pred, c_est) in enumerate(preds):
        p = pred[rows]
        choice = M.route(p, cost=c_est, lambda_cost=lam)
        sweep = M.route_sweep(p, cost=c_est, lambdas=ref.lambdas)
        qual = float(M.take(mean, choice).mean())
        out = {
            "aiq": F.aiq(M.take(cost, sweep).mean(1), M.take(mean, sweep).mean(1), c_max=c_max),
            "imp_max": F.imp_max(qual, best_single=q_best),
            "oracle_gap": F.oracle_gap(qual, oracle=q_oracle),
        }
        val = None
        if validation is not None:
            vlm, vpreds = validation
            val = (vpreds[r][:, s] - vpreds[r][:, w], vlm.mean[:, s], vlm.mean[:, w])
        rl = F.routellm_metrics(p[:, s] - p[:, w], mean[:, s], mean[:, w], validation=val)
        out["apgr_routellm"] = rl.pop("apgr")
        for k, v in rl.items():
            if isinstance(v, dict):
                out[f"{k}_strong_calls"], out[f"{k}_pgr"] = v["strong_calls"], v["pgr"]
            else:
                out[k] = v
        if raw_cost is not None:
            dollars = float(M.take(raw_cost[rows], choice).mean()) * 1000
            out["cost_per_1k_usd"] = dollars
            out["arena_score"] = F.arena_score(qual, dollars)
        if rewrites is not None:
            ks = []
            for x in rewrites[r]:  # one (n, m) prediction per rewrite; NaN rows: missing
                xr = x[rows]
                ok = np.isfinite(xr).all(axis=1)
                ch = M.route(np.where(ok[:, None], xr, 0.0), cost=c_est, lambda_cost=lam)
                ks.append(np.where(ok, ch, -1))
            out["robustness"] = F.robustness(np.stack(ks))
        runs.append(out)
    return {k: float(M.nanmean(np.array([o[k] for o in runs], float), axis=0)) for k in runs[0]}


def field_block(
    systems: Systems,
    *,
    ref: M.Reference,
    raw_cost: np.ndarray | None = None,
    validation: Validation | None = None,
    rewrite_predictions: Rewrites | None = None,
) -> dict[str, Any]:
    """The field's metrics of every system (mean over its runs), over all test queries,
    per task and as the per-task macro average. AIQ's largest cost is shared by every
    system (the dearest single model's mean normalised cost)."""
    lm = ref.lm
    pair = strong_weak(lm)
    c_max = float(lm.cost.mean(axis=0).max())
    tasks = lm.tasks if lm.tasks is not None and None not in lm.tasks else None
    groups = {"all": np.ones(len(lm.query_ids), dtype=bool)}
    if tasks is not None:
        for t in sorted(set(tasks)):
            groups[t] = np.array([x == t for x in tasks])
    out: dict[str, Any] = {
        "strong_model": lm.models[pair[0]],
        "weak_model": lm.models[pair[1]],
        "aiq_cost_max": c_max,
        "systems": {},
    }
    for name, sups in systems.items():
        out["systems"][name] = {}
        for sup, runs in sups.items():
            entry: dict[str, Any] = {}
            for g, rows in groups.items():
                val = None
                if validation is not None and name in validation.predictions:
                    vp = list(validation.predictions[name].get(sup, []))
                    if len(vp) == len(runs):
                        vrows = _task_rows(validation.lm, None if g == "all" else g)
                        val = (validation.lm.subset(vrows), [p[vrows] for p in vp])
                rw = None
                if rewrite_predictions is not None and name in rewrite_predictions:
                    rw = rewrite_predictions[name].get(sup)
                entry[g] = _per_rows(
                    rows,
                    runs,
                    ref=ref,
                    raw_cost=raw_cost,
                    c_max=c_max,
                    pair=pair,
                    validation=val,
                    rewrites=rw,
                )
            per_task = {g: v for g, v in entry.items() if g != "all"}
            out["systems"][name][sup] = {
                "all": entry["all"],
                "per_task": per_task,
                "macro": F.macro(per_task) if per_task else entry["all"],
            }
    return out


def _task_rows(lm: M.LabelMatrix, task: str | None) -> np.ndarray:
    if task is None or lm.tasks is None:
        return np.ones(len(lm.query_ids), dtype=bool)
    return np.array([t == task for t in lm.tasks])
