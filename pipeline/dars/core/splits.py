"""A deterministic, query-grouped split stratified by task (used by `split` and `dars import`).

Within each task, queries are ordered by a seeded hash of their id and cut by the
fractions, so the split of a query never depends on which other queries exist, and one
query is in exactly one split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from dars.core import schema


def _rank_key(seed: int, query_id: str) -> str:
    return hashlib.sha256(f"{seed}|{query_id}".encode()).hexdigest()


def assign_splits(*, queries: pd.DataFrame, seed: int, fractions: dict[str, float]) -> pd.DataFrame:
    df = queries[["query_id", "task"]].drop_duplicates("query_id").copy()
    df["_key"] = [_rank_key(seed, q) for q in df["query_id"]]
    df = df.sort_values(["task", "_key"], kind="stable")
    df["_rank"] = df.groupby("task").cumcount()
    df["_size"] = df.groupby("task")["query_id"].transform("size")
    # cut points per task: round the cumulative fractions (largest-remainder style)
    cum = np.cumsum([fractions[s] for s in schema.SPLITS])
    pos = (df["_rank"] + 0.5) / df["_size"]
    idx = np.searchsorted(cum, pos.to_numpy(), side="right").clip(max=len(cum) - 1)
    df["split"] = np.asarray(schema.SPLITS)[idx]
    return (
        df[["query_id", "task", "split"]].sort_values(["task", "query_id"]).reset_index(drop=True)
    )
