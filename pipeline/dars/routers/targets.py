"""Routing targets from label tables: which queries, in which order, with which Y.

Shared by the `train` and `evaluate` stages and by `dars bench`:

* `LABEL_COLUMNS`: the label columns a router is trained and scored on;
* `split_queries`: the (query_id, prompt) of one split in a fixed order;
* `wide`: one label column as a (queries, models) matrix;
* `dars_targets`: the DARS supervision Y = mean - beta * std and the normalised cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dars.labels import utility as W

LABEL_COLUMNS = ["query_id", "model", "mean", "std", "mean_cost", "cost_norm", "single_shot"]


def split_queries(splits: pd.DataFrame, queries: pd.DataFrame, split: str) -> pd.DataFrame:
    """query_id, prompt of one split, in a fixed (sorted) order."""
    ids = splits.loc[splits["split"] == split, "query_id"]
    q = queries[queries["query_id"].isin(ids)][["query_id", "prompt"]]
    return q.sort_values("query_id", kind="stable").reset_index(drop=True)


def wide(labels: pd.DataFrame, col: str, query_ids: list[str], models: list[str]) -> np.ndarray:
    """labels[col] as a (len(query_ids), len(models)) float matrix (NaN where missing)."""
    idx = pd.MultiIndex.from_product([query_ids, models], names=["query_id", "model"])
    s = labels.set_index(["query_id", "model"])[col].reindex(idx)
    return s.to_numpy(dtype=np.float64).reshape(len(query_ids), len(models))


def dars_targets(
    labels: pd.DataFrame, *, query_ids: list[str], models: list[str], beta_risk: W.Weight
) -> tuple[np.ndarray, np.ndarray]:
    """Y = mean - beta * std (n, m) and the per-query normalised cost (n, m); a per-task
    beta uses each query's task (labels' `task` column)."""
    beta = W.column(beta_risk, W.tasks_of(labels, query_ids), key="aggregate.beta_risk")
    y = wide(labels, "mean", query_ids, models) - beta * wide(labels, "std", query_ids, models)
    return y, wide(labels, "cost_norm", query_ids, models)
