"""Shared builders of small, contract-valid input tables for tests and benchmarks.

`queries(n, ...)` and `variants(queries, k, ...)` build the frames; `write_inputs` writes
them where the stages read them (queries.parquet, variants.parquet), with the contract
schemas. Tests vary only what matters to them (ids, prompts, the variant rewrite).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dars.core import schema
from dars.core.io import write_frame


def queries(
    n: int,
    *,
    ids: Callable[[int], str] = lambda i: f"q{i:03d}",
    prompt: Callable[[int], str] = lambda i: f"What is {i} + 1?",
    reference: Callable[[int], str] = lambda i: str(i + 1),
    task: str = "arith",
    grader: str = "numeric",
) -> pd.DataFrame:
    """n numeric-graded queries (the `queries` contract)."""
    return pd.DataFrame(
        {
            "query_id": [ids(i) for i in range(n)],
            "task": task,
            "prompt": [prompt(i) for i in range(n)],
            "reference": [reference(i) for i in range(n)],
            "grader": grader,
            "source": "test",
            "license": "MIT",
            "metadata": "{}",
        }
    )


def variants(
    q: pd.DataFrame,
    k: int,
    *,
    rewrite: Callable[[int, str], str] = lambda v, p: p if v == 0 else f"Question {v}: {p}",
) -> pd.DataFrame:
    """k accepted variants per query (the `variants` contract); variant v's prompt is
    rewrite(v, original prompt)."""
    return pd.DataFrame(
        [
            {
                "query_id": qid,
                "variant_id": v,
                "prompt": rewrite(v, p),
                "method": "template",
                "accepted": True,
                "reject_reason": None,
            }
            for qid, p in zip(q["query_id"], q["prompt"], strict=True)
            for v in range(k)
        ]
    )


def write_inputs(root: Path, q: pd.DataFrame, v: pd.DataFrame) -> tuple[Path, Path]:
    """Write queries.parquet and variants.parquet under root; return their paths."""
    qp, vp = root / "queries.parquet", root / "variants.parquet"
    write_frame(q, qp, schema=schema.QUERIES)
    write_frame(v, vp, schema=schema.VARIANTS)
    return qp, vp
