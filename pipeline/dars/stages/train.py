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

from pathlib import Path

from dars.core import runlog
from dars.core.errors import InputDataError
from dars.core.io import write_json
from dars.core.params import load_params
from dars.evaluation.training import (  # noqa: F401  (re-exported for callers)
    SUPERVISIONS,
    TrainSettings,
    draw_single_shot,
    fit_router,
    supervision_targets,
    train_all,
    train_settings,
)
from dars.routers.io import read_outcomes, read_routing_inputs
from dars.routers.targets import split_queries


def run(
    *,
    params_path: str,
    labels: str,
    queries: str,
    splits: str,
    outcomes_dir: str,
    out_dir: str,
) -> Path:
    st = train_settings(load_params(params_path))
    lab, q, spl = read_routing_inputs(labels=labels, queries=queries, splits=splits)
    models = sorted(lab["model"].unique())
    train = split_queries(spl, q, "train")
    if len(train) < 2:
        raise InputDataError(f"splits file {splits!r} has {len(train)} train queries; need >= 2")
    ids, texts = train["query_id"].tolist(), train["prompt"].tolist()
    outcomes = read_outcomes(outcomes_dir, models)
    targets = supervision_targets(lab, outcomes, query_ids=ids, models=models, settings=st)
    out = Path(out_dir)
    index, fit_s = train_all(targets, texts=texts, models=models, settings=st, out=out)
    write_json(index, out / "index.json")
    runlog.write_log("train", "routers", {"output": str(out), "fit_s": fit_s})
    print(
        f"train: {len(st.routers)} routers x (dars + {st.repeats} single-shot draws) on "
        f"{len(ids)} train queries x {len(models)} models -> {out}/"
    )
    return out
