"""Per-task utility weights: U = mean - lambda_t * cost_norm - beta_t * std.

`aggregate.lambda_cost` and `aggregate.beta_risk` are each either one number (the same
weight for every task) or a mapping task -> number, as DARS uses one risk weight per
dataset (gpqa 0.1, math 0.05, drop 0.15 with lambda = 0.05; see params/dars.yaml). The
task is the `task` column of queries and labels (the key under `prepare.tasks`).

`aggregate`, `train`, `evaluate`, `dars bench` and the card all resolve the weights with
the functions below, so every stage applies the same value to the same query:

* `weight` turns the schema's checked value (`dars.core.params`, kind `per_task`) into a
  float or a {task: float} dict; `parse_weight` checks one from elsewhere (a manifest);
* `per_task` turns a weight into {task: float} for the tasks present (a task missing from a
  mapping fails with the tasks that have a value);
* `per_row` gives one weight per row of a `task` sequence, as a float array;
* `describe` renders a weight for tables and the card ("0.2" or "gpqa 0.1, math 0.05").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dars.core.errors import InputDataError, ParamsError

Weight = float | dict[str, float]


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ParamsError(
            f"Parameter '{key}' = {value!r} is not a number; allowed: a number >= 0, or a "
            "mapping task -> number >= 0"
        )
    if value < 0:
        raise ParamsError(f"Parameter '{key}' = {value!r} is out of range; allowed: >= 0")
    return float(value)


def parse_weight(value: Any, key: str) -> Weight:
    """A validated weight from outside params.yaml (e.g. a dataset's MANIFEST.json): a
    float, or {task: float}. params.yaml itself is checked by its schema
    (`dars.core.params`, kind `per_task`), which also checks mapping keys against
    `prepare.tasks`."""
    if isinstance(value, Mapping):
        if not value:
            raise ParamsError(
                f"Parameter '{key}' is an empty mapping; give a number or task -> number"
            )
        return {str(t): _number(v, f"{key}.{t}") for t, v in value.items()}
    return _number(value, key)


def weight(value: float | Mapping[str, float]) -> Weight:
    """A checked schema value as a Weight: a float, or {task: float}."""
    if isinstance(value, Mapping):
        return {str(t): float(v) for t, v in value.items()}
    return float(value)


def per_task(weight: Weight, tasks: Iterable[str], *, key: str) -> dict[str, float]:
    """{task: weight} for every task in `tasks`; a mapping lacking one of them fails."""
    names = sorted({str(t) for t in tasks})
    if not isinstance(weight, Mapping):
        return {t: float(weight) for t in names}
    missing = [t for t in names if t not in weight]
    if missing:
        raise InputDataError(
            f"'{key}' gives per-task values for {sorted(weight)} but the data has tasks "
            f"{missing} without one; add them to '{key}' or use one number for all tasks"
        )
    return {t: float(weight[t]) for t in names}


def per_row(weight: Weight, tasks: Sequence[Any] | None, *, key: str) -> np.ndarray:
    """One weight per row of `tasks` (float64 array). A scalar weight needs no tasks."""
    if not isinstance(weight, Mapping):
        n = 0 if tasks is None else len(tasks)
        return np.full(n, float(weight), dtype=np.float64)
    if tasks is None:
        raise InputDataError(
            f"'{key}' is per task ({describe(weight)}) but these labels have no `task` column"
        )
    if isinstance(tasks, pa.ChunkedArray | pa.Array):
        # an Arrow column (millions of labels): look up each distinct task once
        if tasks.null_count:
            raise InputDataError(_NO_TASK.format(key=key))
        if isinstance(tasks, pa.ChunkedArray):
            tasks = tasks.combine_chunks()
        codes = pc.dictionary_encode(tasks)
        distinct = per_row(weight, codes.dictionary.to_pylist(), key=key)
        return distinct[codes.indices.to_numpy(zero_copy_only=False)]
    if any(t is None or (isinstance(t, float) and math.isnan(t)) for t in tasks):
        raise InputDataError(_NO_TASK.format(key=key))
    table = per_task(weight, tasks, key=key)
    return np.array([table[str(t)] for t in tasks], dtype=np.float64)


_NO_TASK = "'{key}' is per task but some labels have no task; re-run `dars aggregate`"


def column(weight: Weight, tasks: Sequence[Any] | None, *, key: str) -> float | np.ndarray:
    """A scalar weight unchanged, a per-task one as an (n, 1) column that broadcasts over
    the model axis of an (n_queries, n_models) matrix."""
    if not isinstance(weight, Mapping):
        return float(weight)
    return per_row(weight, tasks, key=key)[:, None]


def tasks_of(labels: Any, query_ids: Sequence[str]) -> list[Any] | None:
    """The task of each query id, from a labels (or queries) frame; None without `task`."""
    if "task" not in labels.columns:
        return None
    by_query = labels.drop_duplicates("query_id").set_index("query_id")["task"]
    return [by_query.get(q) for q in query_ids]


def describe(weight: Weight) -> str:
    if isinstance(weight, Mapping):
        return ", ".join(f"{t} {v:g}" for t, v in sorted(weight.items()))
    return f"{weight:g}"


def as_json(weight: Weight) -> float | dict[str, float]:
    return dict(sorted(weight.items())) if isinstance(weight, Mapping) else float(weight)
