"""The `split` stage: a deterministic, query-grouped split stratified by task.

Within each task, queries are ordered by a seeded hash of their id and cut by the
fractions in params, so the split of a query never depends on which other queries
exist (adding queries does not move old ones between splits, except at the cut
points), and one query is in exactly one split.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core import schema
from dars.core.io import read_frame, write_frame
from dars.core.params import load_params, section


def split_settings(params: dict[str, Any]) -> tuple[int, dict[str, float]]:
    s = section(params, "split")
    return int(s.seed), {k: float(s.fractions[k]) for k in schema.SPLITS}


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


def run(*, params_path: str, queries: str, out: str) -> Path:
    params = load_params(params_path)
    seed, fractions = split_settings(params)
    q = read_frame(queries, ["query_id", "task"], what="queries")
    splits = assign_splits(queries=q, seed=seed, fractions=fractions)
    path = write_frame(splits, out, schema=schema.SPLIT)
    counts = splits.groupby(["task", "split"]).size().unstack(fill_value=0)
    print(f"split -> {path}\n{counts.to_string()}")
    return path
