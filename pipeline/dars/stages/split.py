"""The `split` stage: a deterministic, query-grouped split stratified by task.

Within each task, queries are ordered by a seeded hash of their id and cut by the
fractions in params, so the split of a query never depends on which other queries
exist (adding queries does not move old ones between splits, except at the cut
points), and one query is in exactly one split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dars.core import schema
from dars.core.io import read_frame, write_frame
from dars.core.params import load_params, section
from dars.core.splits import assign_splits


def split_settings(params: dict[str, Any]) -> tuple[int, dict[str, float]]:
    s = section(params, "split")
    return int(s.seed), {k: float(s.fractions[k]) for k in schema.SPLITS}


def run(*, params_path: str, queries: str, out: str) -> Path:
    params = load_params(params_path)
    seed, fractions = split_settings(params)
    q = read_frame(queries, ["query_id", "task"], what="queries")
    splits = assign_splits(queries=q, seed=seed, fractions=fractions)
    path = write_frame(splits, out, schema=schema.SPLIT)
    counts = splits.groupby(["task", "split"]).size().unstack(fill_value=0)
    print(f"split -> {path}\n{counts.to_string()}")
    return path
