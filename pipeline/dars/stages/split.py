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

from pathlib import Path

from dars.core import schema
from dars.core.io import read_frame, write_frame
from dars.core.params import ParamsSource, load_params, section
from dars.core.splits import assign_splits


def train_per_task(params: ParamsSource) -> int | None:
    n = section(params, "split").train_per_task
    return None if n is None else int(n)


def split_settings(params: ParamsSource) -> tuple[int, dict[str, float]]:
    s = section(params, "split")
    return int(s.seed), {k: float(s.fractions[k]) for k in schema.SPLITS}


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
