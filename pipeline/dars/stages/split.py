"""The `split` stage: a deterministic, query-grouped split stratified by task.

Within each task, queries are ordered by a seeded hash of their id and cut by the
fractions in params, so the split of a query never depends on which other queries
exist (adding queries does not move old ones between splits, except at the cut
points), and one query is in exactly one split.

`split.train_per_task` (default null) fixes the NUMBER of train queries per task instead,
as DARS does (200 per dataset, the rest test): the first N queries of each task in that
seeded order are train, and the rest are cut between validation and test in the ratio
of `split.fractions` (`train` is then ignored; validation 0 and test 1 = the rest is test).
A task with N or fewer queries fails, since it would have no held-out query.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core import schema
from dars.core.errors import InputDataError, ParamsError
from dars.core.io import read_frame, write_frame
from dars.core.params import load_params, section


def train_per_task(params: dict[str, Any]) -> int | None:
    n = section(params, "split").train_per_task
    return None if n is None else int(n)


def split_settings(params: dict[str, Any]) -> tuple[int, dict[str, float]]:
    s = section(params, "split")
    return int(s.seed), {k: float(s.fractions[k]) for k in schema.SPLITS}


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


def run(*, params_path: str, queries: str, out: str) -> Path:
    params = load_params(params_path)
    seed, fractions = split_settings(params)
    q = read_frame(queries, ["query_id", "task"], what="queries")
    splits = assign_splits(
        queries=q, seed=seed, fractions=fractions, train_per_task=train_per_task(params)
    )
    path = write_frame(splits, out, schema=schema.SPLIT)
    counts = splits.groupby(["task", "split"]).size().unstack(fill_value=0)
    print(f"split -> {path}\n{counts.to_string()}")
    return path
