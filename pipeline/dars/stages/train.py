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
from pathlib import Path

import numpy as np

from dars.core import runlog
from dars.core.errors import InputDataError
from dars.core.io import write_json
from dars.core.params import load_params
from dars.evaluation.training import (  # noqa: F401
    SUPERVISIONS,
    TrainSettings,
    draw_single_shot,
    fit_router,
    train_settings,
)
from dars.labels import utility as W
from dars.routers.io import read_outcomes, read_routing_inputs, save_router
from dars.routers.targets import dars_targets, split_queries


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
