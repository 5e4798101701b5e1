"""The `train` stage: every reference router under both supervisions, saved with skops.

Supervision (targets Y[q, m] for the train queries; a router learns text -> Y):

* `dars`: Y = mean - beta_risk * std of the distributional label (its risk-adjusted
  quality); the router's per-model cost estimate is the train mean of `cost_norm`.
  Routing then maximises Y_hat - lambda * c_hat, i.e. the DARS utility
  U = mu_q - lambda * mu_c - beta * sigma_q with lambda, beta from `aggregate`.
* `single_shot`: Y = the score of ONE observation drawn at random (uniformly among the
  pair's valid K x N generations), the way a one-sample dataset labels a pair; its cost
  estimate is the train mean of the drawn generations' normalised cost. This is repeated
  `routers.single_shot_repeats` times with independent draws (seeds `routers.seed` + r),
  and every repeat is a separate router, so results are reported as mean +- std.

A pair with no valid observation (every generation failed) has no target; its query is
left out of that router's training set and counted, never filled with 0.

Outputs, in `--out-dir`:
  <router>-dars.skops, <router>-single_shot-r<r>.skops (r = 0..R-1), and index.json
  listing every file with its router, supervision, repeat and sha256.
Each .skops file holds a dict: the fitted text -> scores Pipeline ("pipeline"), the model
names in column order ("models"), the cost estimate ("cost_estimate") and metadata;
`dars.routers.io.load_router` reads it back, refusing any type it does not trust.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core import runlog
from dars.core.errors import InputDataError, ParamsError
from dars.core.io import write_json
from dars.core.params import load_params, section
from dars.core.registry import unknown_name_message
from dars.labels import utility as W
from dars.routers import ROUTERS, make_router
from dars.routers.features import FEATURIZERS
from dars.routers.io import read_outcomes, read_routing_inputs, save_router
from dars.routers.targets import dars_targets, split_queries, wide

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


def train_settings(params: dict[str, Any]) -> TrainSettings:
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
) -> tuple[Any, np.ndarray, int]:
    """Fit on the queries whose targets are all known; return (pipeline, cost estimate, dropped)."""
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
    )
    pipe.fit([t for t, k in zip(texts, keep, strict=True) if k], y[keep])
    return pipe, cost[keep].mean(axis=0), int((~keep).sum())


def run(
    *,
    params_path: str,
    labels: str,
    queries: str,
    splits: str,
    outcomes_dir: str,
    out_dir: str,
) -> Path:
    params = load_params(params_path)
    st = train_settings(params)
    lab, q, spl = read_routing_inputs(labels=labels, queries=queries, splits=splits)
    models = sorted(lab["model"].unique())
    train = split_queries(spl, q, "train")
    if len(train) < 2:
        raise InputDataError(f"splits file {splits!r} has {len(train)} train queries; need >= 2")
    ids, texts = train["query_id"].tolist(), train["prompt"].tolist()
    cost_scale = float(lab["mean_cost"].max())
    if not np.isfinite(cost_scale) or cost_scale <= 0:
        cost_scale = 1.0  # every generation was free: all normalised costs are 0
    outcomes = read_outcomes(outcomes_dir, models)

    targets: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    y, c = dars_targets(lab, query_ids=ids, models=models, beta_risk=st.beta_risk)
    targets.append(("dars", 0, y, c))
    for r in range(st.repeats):
        y, c = draw_single_shot(
            outcomes, query_ids=ids, models=models, cost_scale=cost_scale, seed=st.seed + r
        )
        targets.append(("single_shot", r, y, c))

    out = Path(out_dir)
    entries = []
    fit_s: dict[str, float] = {}
    for name in st.routers:
        for sup, r, y, c in targets:
            t0 = time.perf_counter()
            pipe, cost_est, dropped = fit_router(
                name, texts=texts, y=y, cost=c, settings=st, random_state=st.seed + r
            )
            fname = f"{name}-{sup}.skops" if sup == "dars" else f"{name}-{sup}-r{r}.skops"
            digest = save_router(
                {
                    "pipeline": pipe,
                    "models": list(models),
                    "cost_estimate": cost_est,
                    "router": name,
                    "supervision": sup,
                    "repeat": r,
                    "features": st.features,
                    "lambda_cost": W.as_json(st.lambda_cost),
                    "beta_risk": W.as_json(st.beta_risk),
                },
                out / fname,
            )
            entries.append(
                {
                    "router": name,
                    "supervision": sup,
                    "repeat": r,
                    "path": fname,
                    "sha256": digest,
                    "n_train": len(ids) - dropped,
                    "n_dropped": dropped,
                }
            )
            fit_s[fname] = round(time.perf_counter() - t0, 3)  # run log, not the output
    index = {
        "models": list(models),
        "features": st.features,
        "lambda_cost": W.as_json(st.lambda_cost),
        "beta_risk": W.as_json(st.beta_risk),
        "single_shot_repeats": st.repeats,
        "n_train_queries": len(ids),
        "routers": entries,
    }
    write_json(index, out / "index.json")
    runlog.write_log("train", "routers", {"output": str(out), "fit_s": fit_s})
    print(
        f"train: {len(st.routers)} routers x (dars + {st.repeats} single-shot draws) on "
        f"{len(ids)} train queries x {len(models)} models -> {out}/"
    )
    return out
