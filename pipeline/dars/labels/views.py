"""DARS's evaluation views: labels of the test queries from a subset of the same outcomes.

DARS (arXiv 2606.06924) scores routers on its test queries under two views besides the
full K x N label of each (query, model) pair:

* `prompt_variation`: the K variants, one decode each (sample 0 of every variant), i.e.
  input-side uncertainty only;
* `decoding_variation`: the original prompt (variant 0), all N decodes, i.e. output-side
  uncertainty only.

`view_labels` recomputes, from the outcome rows a view keeps, the label columns that routing
metrics read: `n` (valid observations), `mean`, `std` (population, ddof=0, as in
`aggregate`), `mean_cost`, `cost_norm`, `single_shot` (sample 0 of variant 0, the same in
every view) and, for simulated builds, `true_p`. `cost_norm` divides by the SAME scale as the
full labels (the build's largest mean cost), so costs are comparable across views. Failed
generations (null score) are left out of the mean exactly as in `aggregate`; a pair whose
view has no valid observation gets null statistics (its query is then not scored in that
view, never counted as wrong). Utility is not stored: the metrics recompute it with the
(possibly per-task) weights of `dars.labels.utility`.

An imported DARS release (`dars import dars-release`) records each test row's view in the
column `observation_type` (the release's test rows are either rewrites x 1 decode or the
original x N decodes, not a K x N grid); where outcomes carry that column, a view keeps the
rows that name it, so the views are the release's own.

With adaptive sampling (`sampling.strategy: adaptive`) a pair may lack some variants or
decodes; a view then holds whatever of its cells were sampled (`n` says how many).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError
from dars.core.io import read_model_files

VIEWS = ("prompt_variation", "decoding_variation")
FULL = "full"  # the K x N label (data/labels.parquet), reported next to the views
OUTCOME_COLUMNS = ["query_id", "model", "variant_id", "sample_id", "score", "cost"]
#: optional outcome columns the views read where a table has them
OPTIONAL_COLUMNS = ["true_p", "observation_type"]


def view_mask(outcomes: pd.DataFrame, view: str) -> pd.Series:
    """The outcome rows a view keeps."""
    if view in VIEWS and "observation_type" in outcomes.columns:
        tagged = outcomes["observation_type"]
        if tagged.notna().any():
            return tagged == view
    if view == "prompt_variation":
        return outcomes["sample_id"] == 0
    if view == "decoding_variation":
        return outcomes["variant_id"] == 0
    raise InputDataError(f"unknown evaluation view {view!r}; valid views: {', '.join(VIEWS)}")


def view_labels(
    outcomes: pd.DataFrame,
    *,
    view: str,
    cost_scale: float,
    tasks: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-(query, model) labels of one view (columns in the module docstring).

    `cost_scale` is the full labels' largest `mean_cost`; `tasks` (query_id, task) adds
    the `task` column that per-task utility weights need."""
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise InputDataError(
            f"outcomes lack columns {missing} needed for the evaluation views; "
            f"they have {list(outcomes.columns)}"
        )
    keys = ["query_id", "model"]
    df = outcomes[view_mask(outcomes, view)].copy()
    df["s"] = df["score"].astype("float64")
    df["valid"] = df["s"].notna()
    df["c"] = df["cost"].astype("float64").where(df["valid"])
    df["s2"] = df["s"] ** 2
    agg = {"n": ("valid", "sum"), "mean": ("s", "mean"), "m2": ("s2", "mean")}
    agg["mean_cost"] = ("c", "mean")
    has_truth = "true_p" in df.columns and df["true_p"].notna().any()
    if has_truth:
        agg["true_p"] = ("true_p", "mean")
    lab = df.groupby(keys, sort=True).agg(**agg)
    lab["std"] = np.sqrt((lab["m2"] - lab["mean"] ** 2).clip(lower=0.0))
    first = df[(df["variant_id"] == 0) & (df["sample_id"] == 0)].set_index(keys)["s"]
    lab["single_shot"] = first.reindex(lab.index)
    scale = float(cost_scale) if np.isfinite(cost_scale) and cost_scale > 0 else 0.0
    lab["cost_norm"] = lab["mean_cost"] / scale if scale > 0 else lab["mean_cost"] * 0.0
    lab["n"] = lab["n"].astype("int64")
    lab = lab.drop(columns="m2").reset_index()
    lab["view"] = view
    if tasks is not None:
        lab = lab.merge(tasks[["query_id", "task"]].drop_duplicates("query_id"), on="query_id")
    return lab.sort_values(keys, kind="stable").reset_index(drop=True)


def cost_scale(labels: pd.DataFrame) -> float:
    """The scale the full labels' `cost_norm` was divided by (the build's largest mean
    cost), recovered from any subset of them as mean_cost / cost_norm; 0 if all free."""
    ok = (labels["cost_norm"] > 0) & labels["mean_cost"].notna()
    if not ok.any():
        return 0.0
    return float((labels.loc[ok, "mean_cost"] / labels.loc[ok, "cost_norm"]).median())


def all_view_labels(
    outcomes: pd.DataFrame,
    *,
    query_ids: Sequence[str],
    cost_scale: float,
    tasks: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """{view: labels} for the outcomes of `query_ids` (the test split), every view."""
    sub = outcomes[outcomes["query_id"].isin(set(query_ids))]
    return {v: view_labels(sub, view=v, cost_scale=cost_scale, tasks=tasks) for v in VIEWS}


def read_outcomes(
    outcomes_dir: str | Path, *, models: Sequence[str], query_ids: Sequence[str]
) -> pd.DataFrame:
    """The outcome columns the views need (plus `true_p` when present), only for
    `query_ids`: each model's file is read column- and row-filtered by pyarrow."""
    return read_model_files(
        outcomes_dir, models, required=OUTCOME_COLUMNS, optional=OPTIONAL_COLUMNS,
        query_ids=query_ids,
    )  # fmt: skip
