"""A deterministic, query-grouped split stratified by task (used by `split` and `dars import`).

Within each task, queries are ordered by a seeded hash of their id and cut by the
fractions, so the split of a query never depends on which other queries exist, and one
query is in exactly one split.

With `train_per_task` (params `split.train_per_task`), the first N queries of each task in
that seeded order are train and the rest are cut validation:test in the ratio of the
fractions; a task with N or fewer queries fails (it would have no held-out query).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from dars.core import schema
from dars.core.errors import InputDataError, ParamsError


def _rank_key(seed: int, query_id: str) -> str:
    return hashlib.sha256(f"{seed}|{query_id}".encode()).hexdigest()


def assign_splits(
    *,
    queries: pd.DataFrame,
    seed: int,
    fractions: dict[str, float],
    train_per_task: int | None = None,
) -> pd.DataFrame:
    df = queries[["query_id", "task"]].drop_duplicates("query_id").copy()
    df["_key"] = [_rank_key(seed, q) for q in df["query_id"]]
    df = df.sort_values(["task", "_key"], kind="stable")
    df["_rank"] = df.groupby("task").cumcount()
    df["_size"] = df.groupby("task")["query_id"].transform("size")
    if train_per_task is None:
        # cut points per task: round the cumulative fractions (largest-remainder style)
        cum = np.cumsum([fractions[s] for s in schema.SPLITS])
        pos = (df["_rank"] + 0.5) / df["_size"]
        idx = np.searchsorted(cum, pos.to_numpy(), side="right").clip(max=len(cum) - 1)
        df["split"] = np.asarray(schema.SPLITS)[idx]
    else:
        df["split"] = _fixed_train(df, train_per_task, fractions)
    return (
        df[["query_id", "task", "split"]].sort_values(["task", "query_id"]).reset_index(drop=True)
    )


def _fixed_train(df: pd.DataFrame, n_train: int, fractions: dict[str, float]) -> np.ndarray:
    """N train queries per task, the rest cut validation:test by `fractions`."""
    small = df.groupby("task")["_size"].first()
    small = small[small <= n_train]
    if len(small):
        raise InputDataError(
            f"split.train_per_task = {n_train} leaves no held-out query for tasks "
            f"{ {str(t): int(n) for t, n in small.items()} } (queries per task); lower it "
            "or add queries"
        )
    held = fractions["validation"] + fractions["test"]
    if held <= 0:
        raise ParamsError(
            "Parameter 'split.fractions': with split.train_per_task, validation + test must "
            "be > 0 (their ratio cuts the held-out queries)"
        )
    rest_rank = df["_rank"] - n_train
    rest_size = df["_size"] - n_train
    pos = (rest_rank + 0.5) / rest_size
    split = np.where(pos < fractions["validation"] / held, "validation", "test")
    return np.where(df["_rank"] < n_train, "train", split)
