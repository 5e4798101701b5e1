"""The Great Expectations suites, one per table. A suite is built from the columns the
table has: a contract column that is missing fails `expect_column_to_exist`, and the
checks on it are left out instead of raising."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import great_expectations.expectations as gxe

from dars.core.schema import (
    GEN_STATUSES,
    GRADE_STATUSES,
    GRADERS,
    IMPORTED_GRADER,
    KEYS,
    QUERIES,
    VARIANTS,
    names,
)

# The contract's minimum columns (DESIGN.md, "Data contract, v1") and which may be null.
QUERY_COLUMNS = names(QUERIES)
VARIANT_COLUMNS = names(VARIANTS)
GENERATION_COLUMNS = [
    "query_id",
    "variant_id",
    "model",
    "sample_id",
    "seed",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "status",
    "error",
]
OUTCOME_COLUMNS = GENERATION_COLUMNS + ["score", "parsed", "grade_status"]
NULLABLE = {
    "queries": frozenset(),
    "variants": frozenset({"reject_reason"}),
    "generations": frozenset({"completion", "error"}),
    "outcomes": frozenset({"completion", "error", "score", "parsed"}),
}


def _derived(column: str, description: str) -> Any:
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], description=description)


def contract_expectations(
    *,
    present: Collection[str],
    columns: Sequence[str],
    nullable: frozenset[str],
    keys: Sequence[str],
) -> list[Any]:
    """Every contract column exists and is non-null where the contract says so; key unique;
    at least one row."""
    exps: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    exps += [gxe.ExpectColumnToExist(column=c) for c in columns]
    exps += [
        gxe.ExpectColumnValuesToNotBeNull(column=c)
        for c in columns
        if c not in nullable and c in present
    ]
    if all(k in present for k in keys):
        exps.append(
            gxe.ExpectColumnValuesToBeUnique(column=keys[0])
            if len(keys) == 1
            else gxe.ExpectCompoundColumnsToBeUnique(column_list=list(keys))
        )
    return exps


def _if_present(present: Collection[str], exps: Sequence[tuple[str, Any]]) -> list[Any]:
    return [e for col, e in exps if col in present]


def queries_expectations(present: Collection[str]) -> list[Any]:
    exps = contract_expectations(
        present=present, columns=QUERY_COLUMNS, nullable=NULLABLE["queries"], keys=KEYS["queries"]
    )
    return exps + _if_present(
        present,
        [
            (
                "grader",
                gxe.ExpectColumnValuesToBeInSet(
                    column="grader", value_set=[*GRADERS, IMPORTED_GRADER]
                ),
            ),
            (
                "chk_variant0_accepted",
                _derived(
                    "chk_variant0_accepted",
                    "variant 0 (the original prompt) exists and is accepted",
                ),
            ),
        ],
    )


def variants_expectations(present: Collection[str]) -> list[Any]:
    exps = contract_expectations(
        present=present,
        columns=VARIANT_COLUMNS,
        nullable=NULLABLE["variants"],
        keys=KEYS["variants"],
    )
    return exps + _if_present(
        present,
        [
            ("variant_id", gxe.ExpectColumnValuesToBeBetween(column="variant_id", min_value=0)),
            (
                "accepted",
                gxe.ExpectColumnValuesToBeInSet(column="accepted", value_set=[True, False]),
            ),
            ("chk_query_exists", _derived("chk_query_exists", "query_id exists in queries")),
        ],
    )


def generations_expectations(
    present: Collection[str], *, model: str, n: int, table: str = "generations"
) -> list[Any]:
    columns = OUTCOME_COLUMNS if table == "outcomes" else GENERATION_COLUMNS
    exps = contract_expectations(
        present=present, columns=columns, nullable=NULLABLE[table], keys=KEYS[table]
    )
    return exps + _if_present(
        present,
        [
            ("model", gxe.ExpectColumnValuesToBeInSet(column="model", value_set=[model])),
            (
                "status",
                gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(GEN_STATUSES)),
            ),
            ("variant_id", gxe.ExpectColumnValuesToBeBetween(column="variant_id", min_value=0)),
            (
                "sample_id",
                gxe.ExpectColumnValuesToBeBetween(column="sample_id", min_value=0, max_value=n - 1),
            ),
            (
                "prompt_tokens",
                gxe.ExpectColumnValuesToBeBetween(column="prompt_tokens", min_value=0),
            ),
            (
                "completion_tokens",
                gxe.ExpectColumnValuesToBeBetween(column="completion_tokens", min_value=0),
            ),
            ("latency_s", gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0)),
            ("cost", gxe.ExpectColumnValuesToBeBetween(column="cost", min_value=0)),
            (
                "true_p",
                gxe.ExpectColumnValuesToBeBetween(column="true_p", min_value=0, max_value=1),
            ),
            ("chk_query_exists", _derived("chk_query_exists", "query_id exists in queries")),
            (
                "chk_variant_exists",
                _derived("chk_variant_exists", "(query_id, variant_id) exists in variants"),
            ),
            (
                "chk_variant_accepted",
                _derived(
                    "chk_variant_accepted", "a sampled variant that exists is an accepted one"
                ),
            ),
            (
                "chk_completion_if_ok",
                _derived("chk_completion_if_ok", "completion is not null when status == 'ok'"),
            ),
            (
                "chk_error_if_error",
                _derived("chk_error_if_error", "error is not null when status == 'error'"),
            ),
        ],
    )


def outcomes_expectations(present: Collection[str], *, model: str, n: int) -> list[Any]:
    exps = generations_expectations(present, model=model, n=n, table="outcomes")
    return exps + _if_present(
        present,
        [
            ("score", gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1)),
            (
                "grade_status",
                gxe.ExpectColumnValuesToBeInSet(
                    column="grade_status", value_set=list(GRADE_STATUSES)
                ),
            ),
            (
                "chk_score_null_iff_error",
                _derived(
                    "chk_score_null_iff_error", "score is null exactly when status == 'error'"
                ),
            ),
            (
                "chk_in_generations",
                _derived(
                    "chk_in_generations", "the outcome's key exists in the model's generations"
                ),
            ),
        ],
    )


def coverage_expectations(*, n: int, per_pair: tuple[int, int] | None = None) -> list[Any]:
    if per_pair is not None:
        lo, hi = per_pair
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_pair_rows",
                min_value=lo,
                max_value=hi,
                description=f"adaptive sampling: every query x model has between "
                f"sampling.min_per_pair = {lo} and sampling.max_per_pair = {hi} rows "
                "(status=error rows count as present)",
            ),
            _derived("chk_sample_ids_complete", "a variant's sample ids are exactly 0..n_rows-1"),
        ]
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_rows",
            min_value=n,
            max_value=n,
            description=f"every accepted variant x model has exactly sample.n = {n} rows "
            "(status=error rows count as present)",
        ),
        _derived("chk_sample_ids_complete", f"sample ids are exactly 0..{n - 1}"),
    ]


def error_rate_expectations(*, max_error_rate: float) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="error_rate"),
        gxe.ExpectColumnValuesToBeBetween(
            column="error_rate",
            min_value=0,
            max_value=max_error_rate,
            description=f"share of status=error generations <= validate.max_error_rate "
            f"= {max_error_rate}",
        ),
    ]
