"""The card's per-model and per-task numbers, computed by DuckDB over the Parquet files
(only the columns each number needs), so the card stage's memory does not grow with the
generations and outcomes tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from dars.core import duck
from dars.core.params import model_config
from dars.core.schema import GRADE_STATUSES


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if x != x else x


def label_stats(con: duckdb.DuckDBPyConnection, labels: Path) -> list[dict[str, Any]]:
    """Per-model label statistics (means over the model's (query, model) pairs)."""
    rows = con.execute(
        f"""
        SELECT model, count(*), sum(n), sum(n_error), avg(mean), avg(std), avg(var_within),
            avg(var_between), avg(ci_high - ci_low), avg(single_shot),
            avg(CASE WHEN single_shot IS NOT NULL AND mean IS NOT NULL
                     THEN ((single_shot >= 0.5) != (mean >= 0.5))::DOUBLE END),
            avg(mean_cost), avg(utility), max(n_total)
        FROM {duck.read_parquet([labels])}
        GROUP BY model ORDER BY model
        """
    ).fetchall()
    names = (
        "mean std var_within var_between ci_width single_shot disagree mean_cost utility".split()
    )
    return [
        {
            "model": r[0],
            "pairs": int(r[1]),
            "n_valid": int(r[2] or 0),
            "n_error": int(r[3] or 0),
            **{k: _num(v) for k, v in zip(names, r[4:-1], strict=True)},
            "n_max": int(r[-1] or 0),
        }
        for r in rows
    ]


def sampling_setup(
    con: duckdb.DuckDBPyConnection,
    *,
    params: dict[str, Any],
    generations: Sequence[Path],
    models: Sequence[str],
) -> list[dict[str, Any]]:
    """Per model: backend and revision as recorded in the rows, settings from params."""
    found = {
        r[0]: r[1:]
        for r in con.execute(
            f"""
            SELECT model, list(DISTINCT backend) FILTER (WHERE backend IS NOT NULL),
                list(DISTINCT revision) FILTER (WHERE revision IS NOT NULL),
                count(*), count(*) FILTER (WHERE status = 'error'), count(DISTINCT seed)
            FROM {duck.read_parquet(generations)} GROUP BY model
            """
        ).fetchall()
    }
    rows = []
    for name in models:
        cfg = model_config(params, name)
        backends, revisions, n, failed, seeds = found.get(name, ([], [], 0, 0, 0))
        rows.append(
            {
                "model": name,
                "backends": sorted(backends or []),
                "revisions": sorted(revisions or []),
                "prompting": cfg.prompting,
                "shots": cfg.shots,
                "temperature": cfg.temperature,
                "top_p": cfg.top_p,
                "max_tokens": cfg.max_tokens,
                "price_per_1k_prompt": cfg.price_per_1k_prompt,
                "price_per_1k_completion": cfg.price_per_1k_completion,
                "generations": int(n),
                "failed": int(failed),
                "distinct_seeds": int(seeds),
            }
        )
    return rows


def grading_summary(
    con: duckdb.DuckDBPyConnection, *, outcomes: Sequence[Path], queries: Path
) -> list[dict[str, Any]]:
    """Per (task, grader): grade_status counts and the mean score of valid rows."""
    counts = ", ".join(
        f"count(*) FILTER (WHERE o.grade_status = {duck.quote(s)})" for s in GRADE_STATUSES
    )
    rows = con.execute(
        f"""
        SELECT q.task, q.grader, count(*), {counts}, avg(o.score)
        FROM {duck.read_parquet(outcomes)} o
        JOIN (SELECT query_id, task, grader FROM read_parquet({duck.quote(queries)})) q
            USING (query_id)
        WHERE q.task IS NOT NULL AND q.grader IS NOT NULL
        GROUP BY q.task, q.grader ORDER BY q.task, q.grader
        """
    ).fetchall()
    k = len(GRADE_STATUSES)
    return [
        {
            "task": r[0],
            "grader": r[1],
            "rows": int(r[2]),
            "status": {s: int(c) for s, c in zip(GRADE_STATUSES, r[3 : 3 + k], strict=True)},
            "mean_score": _num(r[3 + k]),
        }
        for r in rows
    ]


def generation_counts(
    con: duckdb.DuckDBPyConnection, *, generations: Sequence[Path], labels: Path
) -> dict[str, Any]:
    """Generations, failed generations, and the backends of generations and labels."""
    n, failed, backends = con.execute(
        f"""
        SELECT count(*), count(*) FILTER (WHERE status = 'error'),
            list(DISTINCT backend) FILTER (WHERE backend IS NOT NULL)
        FROM {duck.read_parquet(generations)}
        """
    ).fetchone()
    (label_backends,) = con.execute(
        "SELECT list(DISTINCT backend) FILTER (WHERE backend IS NOT NULL) "
        f"FROM {duck.read_parquet([labels])}"
    ).fetchone()
    return {
        "n_generations": int(n),
        "n_failed": int(failed),
        "backends": sorted(backends or []),
        "label_backends": sorted(label_backends or []),
    }
