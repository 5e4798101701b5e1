"""Training the reference routers under both supervisions (the `train` stage's work).

* `train_settings`: the `routers` and `aggregate` parameters, names checked;
* `draw_single_shot`: one valid observation per (query, model), uniformly at random, the
  way a one-sample dataset labels a pair (failed generations are never drawn);
* `fit_router`: fit one router on the queries whose targets are all known;
* `supervision_targets` and `train_all`: every router on every target set, saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError, ParamsError
from dars.core.params import ParamsSource, section
from dars.core.registry import unknown_name_message
from dars.labels import utility as W
from dars.routers import ROUTERS, make_router
from dars.routers.features import FEATURIZERS
from dars.routers.targets import dars_targets, wide

SUPERVISIONS = ("dars", "single_shot")


@dataclass(frozen=True)
class TrainSettings:
    routers: tuple[str, ...]
    features: str
    repeats: int
    seed: int
    router_params: dict[str, dict[str, Any]]
    lambda_cost: W.Weight  # a number or {task: number} (dars.labels.utility)
    beta_risk: W.Weight


def train_settings(params: ParamsSource) -> TrainSettings:
    r, agg = section(params, "routers"), section(params, "aggregate")
    names, features, rp = r.names, r.features, r.params
    for n in names:
        if n not in ROUTERS:
            raise ParamsError(
                "Parameter 'routers.names': " + unknown_name_message("router", n, ROUTERS.names())
            )
    if features not in FEATURIZERS:
        raise ParamsError(
            "Parameter 'routers.features': "
            + unknown_name_message("featurizer", features, FEATURIZERS.names())
        )
    for n in rp:
        if n not in ROUTERS:
            raise ParamsError(
                "Parameter 'routers.params': " + unknown_name_message("router", n, ROUTERS.names())
            )
    return TrainSettings(
        routers=tuple(names),
        features=str(features),
        repeats=int(r.single_shot_repeats),
        seed=int(r.seed),
        router_params={k: dict(v) for k, v in rp.items()},
        lambda_cost=W.weight(agg.lambda_cost),
        beta_risk=W.weight(agg.beta_risk),
    )


def draw_single_shot(
    outcomes: pd.DataFrame,
    *,
    query_ids: list[str],
    models: list[str],
    cost_scale: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One valid observation per pair, uniformly at random: (score, cost / cost_scale)."""
    keys = ["query_id", "model", "variant_id", "sample_id"]
    ok = outcomes[outcomes["score"].notna() & outcomes["query_id"].isin(query_ids)]
    ok = ok[ok["model"].isin(models)].sort_values(keys, kind="stable").reset_index(drop=True)
    sizes = ok.groupby(["query_id", "model"], sort=True).size()
    starts = np.concatenate([[0], np.cumsum(sizes.to_numpy())[:-1]])
    u = np.random.default_rng(seed).random(len(sizes))
    pick = starts + np.floor(u * sizes.to_numpy()).astype(np.int64)
    drawn = ok.iloc[pick][["query_id", "model", "score", "cost"]].copy()
    drawn["cost"] = drawn["cost"].astype(np.float64) / cost_scale
    return (
        wide(drawn, "score", query_ids, models),
        wide(drawn, "cost", query_ids, models),
    )


def fit_router(
    name: str,
    *,
    texts: list[str],
    y: np.ndarray,
    cost: np.ndarray,
    settings: TrainSettings,
    random_state: int,
    models: list[str] | None = None,
) -> tuple[Any, np.ndarray, int]:
    """Fit on the queries whose targets are all known; return (pipeline, cost estimate,
    dropped). `models` (Y's columns) tells the routers that take them the model count and
    descriptions (`dars.routers.model_kwargs`), unless `routers.params` sets them."""
    keep = np.isfinite(y).all(axis=1) & np.isfinite(cost).all(axis=1)
    if keep.sum() < 2:
        raise InputDataError(
            f"router {name!r}: only {int(keep.sum())} training queries have a label for every "
            "model (at least 2 needed); check the failed generations in the outcomes"
        )
    pipe = make_router(
        name,
        features=settings.features,
        params=settings.router_params.get(name),
        random_state=random_state,
        models=models,
    )
    pipe.fit([t for t, k in zip(texts, keep, strict=True) if k], y[keep])
    return pipe, cost[keep].mean(axis=0), int((~keep).sum())


def supervision_targets(
    lab: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    query_ids: list[str],
    models: list[str],
    settings: TrainSettings,
) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(supervision, repeat, Y, cost) for the DARS labels and each single-shot draw;
    costs are normalised by the build's largest mean cost (1 if everything was free)."""
    cost_scale = float(lab["mean_cost"].max())
    if not np.isfinite(cost_scale) or cost_scale <= 0:
        cost_scale = 1.0  # every generation was free: all normalised costs are 0
    y, c = dars_targets(lab, query_ids=query_ids, models=models, beta_risk=settings.beta_risk)
    targets = [("dars", 0, y, c)]
    for r in range(settings.repeats):
        y, c = draw_single_shot(
            outcomes,
            query_ids=query_ids,
            models=models,
            cost_scale=cost_scale,
            seed=settings.seed + r,
        )
        targets.append(("single_shot", r, y, c))
    return targets


def train_all(
    targets: list[tuple[str, int, np.ndarray, np.ndarray]],
    *,
    texts: list[str],
    models: list[str],
    settings: TrainSettings,
    out: Path,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit every router on every target set, save each with skops under `out`; returns
    the index (what `evaluate` reads) and the fit seconds per file (for the run log)."""
    from dars.routers.io import save_router

    entries, fit_s = [], {}
    for name in settings.routers:
        for sup, r, y, c in targets:
            t0 = time.perf_counter()
            pipe, cost_est, dropped = fit_router(
                name,
                texts=texts,
                y=y,
                cost=c,
                settings=settings,
                random_state=settings.seed + r,
                models=list(models),
            )
            fname = f"{name}-{sup}.skops" if sup == "dars" else f"{name}-{sup}-r{r}.skops"
            meta = {"router": name, "supervision": sup, "repeat": r}
            digest = save_router(
                {
                    "pipeline": pipe,
                    "models": list(models),
                    "cost_estimate": cost_est,
                    **meta,
                    "features": settings.features,
                    "lambda_cost": W.as_json(settings.lambda_cost),
                    "beta_risk": W.as_json(settings.beta_risk),
                },
                out / fname,
            )
            entries.append(
                meta
                | {"path": fname, "sha256": digest, "n_train": len(texts) - dropped}
                | {"n_dropped": dropped}
            )
            fit_s[fname] = round(time.perf_counter() - t0, 3)
    index = {
        "models": list(models),
        "features": settings.features,
        "lambda_cost": W.as_json(settings.lambda_cost),
        "beta_risk": W.as_json(settings.beta_risk),
        "single_shot_repeats": settings.repeats,
        "n_train_queries": len(texts),
        "routers": entries,
    }
    return index, fit_s
