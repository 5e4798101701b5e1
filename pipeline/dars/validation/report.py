"""The JSON report: deterministic (no timestamps, sorted keys), one entry per table with
its expectations, plus per-model and per-variant counts computed in SQL."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dars.core import duck
from dars.core.schema import GRADE_STATUSES
from dars.validation.gx_run import TableCheck
from dars.validation.workspace import Relation, Workspace

MESSAGE_EXAMPLES = 3


def _has(df: pd.DataFrame, *cols: str) -> bool:
    return all(c in df.columns for c in cols)


def plain(value: Any) -> Any:
    """JSON-safe, deterministic: numpy scalars -> Python, NaN -> None, containers recursed."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _columns(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def _exception(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for sub in info.values():  # keyed by metric
        msg = _exception(sub)
        if msg:
            return msg
    return None


def _keys_first(example: Any, checked: Sequence[str]) -> Any:
    """Order an example row as key columns first, then the checked value(s)."""
    if not isinstance(example, dict):
        return example
    return {k: v for k, v in example.items() if k not in checked} | {
        k: v for k, v in example.items() if k in checked
    }


def summarize_expectation(result: Any, *, k: int) -> dict[str, Any]:
    cfg = result.expectation_config
    kwargs = {
        key: val
        for key, val in cfg.kwargs.items()
        if key not in ("batch_id", "column", "column_list", "column_A", "column_B")
    }
    res = result.result or {}
    examples = res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list")
    summary = {
        "expectation": cfg.type,
        "columns": _columns(cfg.kwargs),
        "kwargs": kwargs,
        "success": bool(result.success),
        "element_count": res.get("element_count"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_examples": [
            _keys_first(x, _columns(cfg.kwargs)) for x in list(examples or [])[:k]
        ],
        "observed_value": res.get("observed_value"),
        "exception": _exception(result.exception_info),
    }
    if cfg.description:
        summary["description"] = cfg.description
    return plain(summary)


def summarize_table(check: TableCheck, results: Sequence[Any], *, k: int) -> dict[str, Any]:
    exps = [summarize_expectation(r, k=k) for r in results]
    return {
        "rows": check.relation.rows,
        "success": all(e["success"] for e in exps),
        "expectations": exps,
    }


def model_counts(
    ws: Workspace,
    *,
    generations: Mapping[str, Relation],
    outcomes: Mapping[str, Relation],
    max_error_rate: float,
) -> dict[str, Any]:
    counts = {}
    for model, gen in generations.items():
        out = outcomes[model]
        n_error = None
        if "status" in gen.columns:
            n_error = ws.execute(
                f"SELECT count(*) FROM {duck.ident(gen.sql_name)} WHERE status = 'error'"
            ).fetchall()[0][0]
        grade = {s: 0 for s in GRADE_STATUSES}
        if "grade_status" in out.columns:
            rows = ws.execute(
                "SELECT coalesce(grade_status::VARCHAR, '<null>'), count(*) "
                f"FROM {duck.ident(out.sql_name)} GROUP BY 1"
            ).fetchall()
            grade |= {str(s): int(c) for s, c in rows}
        counts[model] = {
            "rows": gen.rows,
            "outcome_rows": out.rows,
            "n_error": n_error,
            "error_rate": (n_error / gen.rows) if (n_error is not None and gen.rows) else None,
            "max_error_rate": max_error_rate,
            "grade_status": dict(sorted(grade.items())),
        }
    return plain(counts)


def variant_counts(variants: pd.DataFrame) -> dict[str, Any]:
    """Accepted variants, and rejected ones (LLM rewrites) counted by reason: a
    `reject_reason` is "<reason>: <detail>[; <reason>: <detail>...]"; `rejected_by_reason`
    counts the first reason of each rejected variant, `failed_checks` every reason."""
    if not _has(variants, "accepted"):
        return {}
    accepted = variants["accepted"] == True  # noqa: E712
    reasons = (
        variants.loc[~accepted, "reject_reason"].astype(object).fillna("<none>").astype(str)
        if "reject_reason" in variants
        else pd.Series([], dtype=str)
    )
    parts = reasons.str.split("; ")
    first = parts.str[0].str.split(":").str[0].str.strip().value_counts()
    every = parts.explode().dropna().str.split(":").str[0].str.strip().value_counts()
    return plain(
        {
            "accepted": int(accepted.sum()),
            "rejected": int((~accepted).sum()),
            "rejected_by_reason": {str(k): int(v) for k, v in sorted(first.items())},
            "failed_checks": {str(k): int(v) for k, v in sorted(every.items())},
        }
    )


def _example_text(example: Any) -> str:
    if isinstance(example, dict):
        return ", ".join(f"{k}={v}" for k, v in example.items())
    return repr(example)


def failure_message(report: dict[str, Any], *, order: Sequence[str]) -> str:
    failures = [
        (t, e) for t in order for e in report["tables"][t]["expectations"] if not e["success"]
    ]
    table, exp = failures[0]
    head = (
        f"validation failed: table {table!r} expectation "
        f"{exp['expectation']}({', '.join(exp['columns'])})"
    )
    if exp.get("exception"):
        head += f" raised: {exp['exception']}"
    elif exp.get("unexpected_count"):
        examples = exp["unexpected_examples"][:MESSAGE_EXAMPLES]
        head += f" — {exp['unexpected_count']} unexpected rows"
        if examples:
            head += ", e.g. " + "; ".join(f"({_example_text(x)})" for x in examples)
    elif exp.get("observed_value") is not None:
        head += f" — observed {exp['observed_value']!r}"
    more = len(failures) - 1
    if more:
        head += f" (and {more} more failed expectation{'s' if more > 1 else ''})"
    return head + f"; see {report['report_path']!r}"
