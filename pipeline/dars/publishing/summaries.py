"""The card's numbers: per-model and per-task counts computed by DuckDB over the Parquet
files (only the columns each number needs, so the card stage's memory does not grow with
the generations and outcomes tables), and the tables the card makes of the source
licences, the validation report and the router metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dars.core import duck
from dars.core.params import ParamsSource, model_config
from dars.core.schema import GRADE_STATUSES

VALUE_KEYS = ("value", "diff")


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


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
    params: ParamsSource,
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
    ).fetchall()[0]
    (label_backends,) = con.execute(
        "SELECT list(DISTINCT backend) FILTER (WHERE backend IS NOT NULL) "
        f"FROM {duck.read_parquet([labels])}"
    ).fetchall()[0]
    return {
        "n_generations": int(n),
        "n_failed": int(failed),
        "backends": sorted(backends or []),
        "label_backends": sorted(label_backends or []),
    }


def table_summaries(
    *,
    params: ParamsSource,
    models: Sequence[str],
    generations: Sequence[Path],
    outcomes: Sequence[Path],
    labels: Path,
    queries: Path,
) -> dict[str, Any]:
    """The card's DuckDB numbers over one connection: `counts` (generation_counts),
    `sampling` (sampling_setup), `grading` (grading_summary), `label_stats`."""
    con = duck.connect()
    try:
        return {
            "counts": generation_counts(con, generations=generations, labels=labels),
            "sampling": sampling_setup(con, params=params, generations=generations, models=models),
            "grading": grading_summary(con, outcomes=outcomes, queries=queries),
            "label_stats": label_stats(con, labels),
        }
    finally:
        con.close()


def source_licences(queries: pa.Table) -> list[dict[str, Any]]:
    df = queries.select(["task", "source", "license", "grader"]).to_pandas()
    rows = []
    for (task, source, lic), g in df.groupby(["task", "source", "license"], sort=True):
        rows.append(
            {
                "task": task,
                "source": source,
                "license": lic,
                "queries": int(len(g)),
                "graders": sorted(g["grader"].unique().tolist()),
            }
        )
    return rows


def validation_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    tables = []
    for name, t in sorted((report.get("tables") or {}).items()):
        exps = t.get("expectations") or []
        tables.append(
            {
                "table": name,
                "rows": t.get("rows"),
                "expectations": len(exps),
                "passed": sum(bool(e.get("success")) for e in exps),
                "success": bool(t.get("success")),
            }
        )
    models = [
        {
            "model": m,
            "rows": c.get("rows"),
            "n_error": c.get("n_error"),
            "error_rate": c.get("error_rate"),
            "max_error_rate": c.get("max_error_rate"),
        }
        for m, c in sorted((report.get("model_counts") or {}).items())
    ]
    return {
        "success": bool(report.get("success")),
        "failed": list(report.get("failed") or []),
        "tables": tables,
        "expectations": sum(t["expectations"] for t in tables),
        "passed": sum(t["passed"] for t in tables),
        "models": models,
    }


def _metric_cell(leaf: Mapping[str, Any]) -> dict[str, Any]:
    key = next(k for k in VALUE_KEYS if k in leaf)
    return {
        "value": _num(leaf[key]),
        "ci_low": _num(leaf["ci_low"]) if is_number(leaf.get("ci_low")) else None,
        "ci_high": _num(leaf["ci_high"]) if is_number(leaf.get("ci_high")) else None,
        "p_value": _num(leaf["p_value"]) if is_number(leaf.get("p_value")) else None,
    }


def metric_table(obj: Any) -> dict[str, Any]:
    """Router metrics JSON -> one row per system, one column per metric.

    A "system" is any object whose members are metric objects, i.e. objects with a
    numeric `value` (or `diff`) and optionally `ci_low`/`ci_high`/`p_value`; its row
    name is its path in the JSON. Numeric scalars elsewhere are listed as settings.
    """
    rows: list[dict[str, Any]] = []
    scalars: list[tuple[str, float]] = []
    columns: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            cells = {
                k: _metric_cell(v)
                for k, v in node.items()
                if isinstance(v, Mapping) and any(is_number(v.get(x)) for x in VALUE_KEYS)
            }
            if cells:
                rows.append({"system": path, "cells": cells})
                columns.extend(k for k in cells if k not in columns)
            for k, v in node.items():
                if k not in cells:
                    walk(v, f"{path}/{k}" if path else str(k))
        elif is_number(node):
            scalars.append((path, float(node)))

    walk(obj, "")
    return {"columns": columns, "rows": rows, "scalars": scalars}


def router_summary(metrics: Mapping[str, Any], files: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per router: its published files and test utility under both supervisions."""
    names = {f.name for f in files}
    rows = []
    for name, r in sorted((metrics.get("routers") or {}).items()):
        if not isinstance(r, Mapping):
            continue

        def cell(leaf: Any) -> dict[str, Any] | None:
            return _metric_cell(leaf) if isinstance(leaf, Mapping) else None

        d = (r.get("dars") or {}).get("utility")
        ss = (r.get("single_shot") or {}).get("utility")
        diff = (r.get("dars_minus_single_shot") or {}).get("utility")
        rows.append(
            {
                "router": name,
                "files": sorted(
                    n for n in (f"{name}-dars.skops", f"{name}-single_shot-r0.skops") if n in names
                ),
                "dars": cell(d),
                "single_shot": cell(ss),
                "single_shot_std": _num(ss.get("std")) if isinstance(ss, Mapping) else None,
                "diff": cell(diff),
            }
        )
    return rows
