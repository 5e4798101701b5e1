"""Cross-row and cross-table rules as DuckDB queries.

Rules that need another row or another table (referential integrity, "score is null
exactly when status == error", coverage, the error rate) are computed in SQL into derived
columns named `chk_*` or into small derived tables; the GX suites then expect them to
hold, so every rule shows up in the Data Docs.

A large per-model table is copied once, with its `chk_*` columns, into the workspace's
DuckDB storage (streamed, spilling to disk past the memory cap): every GX query then
scans DuckDB's compressed columns, and no join is evaluated more than once.
A column a rule needs that is missing skips the rule; the table's own suite fails on it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import duckdb
import pandas as pd

from dars.core import duck
from dars.core.schema import KEYS
from dars.validation.workspace import Relation, Workspace

COVERAGE_KEYS = ["table", "model", "query_id", "variant_id"]


def _has(columns: Collection[str], *names: str) -> bool:
    return all(c in columns for c in names)


def query_checks(*, queries: Relation, variants: Relation) -> dict[str, str]:
    q, v = queries.columns, variants.columns
    checks = {}
    if _has(q, "query_id") and _has(v, "query_id", "variant_id", "accepted"):
        checks["chk_variant0_accepted"] = (
            f"coalesce(t.query_id IN (SELECT query_id FROM {duck.ident(variants.sql_name)} "
            "WHERE variant_id = 0 AND accepted = true), false)"
        )
    return checks


def variant_checks(*, variants: Relation, queries: Relation) -> dict[str, str]:
    checks = {}
    if _has(variants.columns, "query_id") and _has(queries.columns, "query_id"):
        checks["chk_query_exists"] = (
            f"coalesce(t.query_id IN (SELECT query_id FROM {duck.ident(queries.sql_name)}), false)"
        )
    return checks


def _exists(ref: Relation, keys: Collection[str], extra: str = "") -> str:
    on = " AND ".join(f"r.{duck.ident(k)} = t.{duck.ident(k)}" for k in keys)
    return f"EXISTS (SELECT 1 FROM {duck.ident(ref.sql_name)} r WHERE {on}{extra})"


def generation_checks(*, table: Relation, queries: Relation, variants: Relation) -> dict[str, str]:
    cols = table.columns
    checks = {}
    if _has(cols, "query_id") and _has(queries.columns, "query_id"):
        checks["chk_query_exists"] = (
            f"coalesce(t.query_id IN (SELECT query_id FROM {duck.ident(queries.sql_name)}), false)"
        )
    keys = ("query_id", "variant_id")
    if _has(cols, *keys) and _has(variants.columns, *keys):
        checks["chk_variant_exists"] = _exists(variants, keys)
        if "accepted" in variants.columns:
            # an unknown variant fails chk_variant_exists, not this one
            checks["chk_variant_accepted"] = "NOT " + _exists(
                variants, keys, " AND r.accepted IS DISTINCT FROM true"
            )
    if _has(cols, "status", "completion"):
        checks["chk_completion_if_ok"] = (
            "(t.status IS DISTINCT FROM 'ok') OR t.completion IS NOT NULL"
        )
    if _has(cols, "status", "error"):
        checks["chk_error_if_error"] = "(t.status IS DISTINCT FROM 'error') OR t.error IS NOT NULL"
    return checks


def outcome_checks(
    *, table: Relation, generations: Relation, queries: Relation, variants: Relation
) -> dict[str, str]:
    checks = generation_checks(table=table, queries=queries, variants=variants)
    if _has(table.columns, "score", "status"):
        checks["chk_score_null_iff_error"] = (
            "coalesce(isnan(t.score::DOUBLE), true) = (t.status IS NOT DISTINCT FROM 'error')"
        )
    keys = KEYS["outcomes"]
    if _has(table.columns, *keys) and _has(generations.columns, *keys):
        checks["chk_in_generations"] = _exists(generations, keys)
    return checks


def with_checks_small(ws: Workspace, table: Relation, checks: Mapping[str, str]) -> Relation:
    """A small table with its `chk_*` columns, materialized."""
    if not checks:
        return table
    name = ws.new_name("checked")
    exprs = ", ".join(f"({sql}) AS {duck.ident(col)}" for col, sql in checks.items())
    ws.execute(
        f"CREATE TABLE {duck.ident(name)} AS "
        f"SELECT t.*, {exprs} FROM {duck.ident(table.sql_name)} t"
    )
    return Relation(name, (*table.columns, *checks), table.rows)


def with_checks_large(
    ws: Workspace, table: Relation, path: str | Path, checks: Mapping[str, str]
) -> Relation:
    """A Parquet-file table with its `chk_*` columns, copied once into the workspace's
    DuckDB storage (streamed, in file order): the suites then scan DuckDB's columnar
    storage instead of decoding the Parquet file and re-evaluating the joins per query."""
    name = ws.new_name("checked")
    exprs = "".join(f", ({sql}) AS {duck.ident(col)}" for col, sql in checks.items())
    ws.execute(
        f"CREATE TABLE {duck.ident(name)} AS "
        f"SELECT t.*{exprs} FROM read_parquet({duck.quote(path)}) t"
    )
    return Relation(name, (*table.columns, *checks), table.rows)


def _distinct_ids(n: int) -> str:
    """How many distinct sample ids in 0..n-1 a group has. For n <= 62 a bit mask (exact,
    and small per group, where count(DISTINCT) keeps a set per group and ran DuckDB out of
    memory on 25M-row tables); otherwise count(DISTINCT)."""
    in_range = f"FILTER (WHERE sample_id BETWEEN 0 AND {n - 1})"
    if n <= 62:
        return f"coalesce(bit_count(bit_or(1::BIGINT << sample_id::BIGINT) {in_range}), 0)"
    return f"count(DISTINCT sample_id) {in_range}"


def coverage_parts(
    *,
    variants: str,
    variant_columns: Collection[str],
    tables: Mapping[tuple[str, str], tuple[str, Collection[str]]],
    n: int,
    per_pair: tuple[int, int] | None = None,
) -> tuple[list[str], list[str], str]:
    """One SELECT per (table, model), in (table, model) order, each sorted by (query_id,
    variant_id): one row per accepted variant, how many rows it has, and whether its
    sample ids are exactly 0..n-1. status=error rows count as present.

    Adaptive builds (`per_pair` = (min, max) rows per (query, model)): a variant's sample
    ids must be exactly 0..n_rows-1 (any n_rows, 0 included), and `n_pair_rows` (the
    rows of its query x model) must lie in [min, max].

    `tables` maps (table, model) to (SQL name, columns). Returns (selects, columns, the
    empty SELECT with those columns); the selects read the CTE `accepted` (ACCEPTED_SQL)."""
    cols = COVERAGE_KEYS + ["n_rows", "chk_sample_ids_complete"]
    if per_pair is not None:
        cols = cols + ["n_pair_rows"]
        n = per_pair[1]
    empty = (
        'SELECT NULL::VARCHAR AS "table", NULL::VARCHAR AS model, NULL::VARCHAR AS query_id, '
        "NULL::BIGINT AS variant_id, NULL::BIGINT AS n_rows, NULL::BOOLEAN AS "
        "chk_sample_ids_complete"
        + (", NULL::BIGINT AS n_pair_rows" if per_pair else "")
        + " WHERE false"
    )
    if not _has(variant_columns, "query_id", "variant_id", "accepted"):
        return [], cols, empty
    parts = []
    for (table, model), (name, columns) in sorted(tables.items()):
        if not _has(columns, "query_id", "variant_id", "sample_id"):
            continue  # the missing column fails that table's own suite
        if per_pair is None:
            chk = "n_valid = " + str(n)
            pair = ""
        else:
            chk = "n_valid = n_rows AND (id_max IS NULL OR id_max = n_rows - 1)"
            pair = ", sum(n_rows) OVER (PARTITION BY query_id)::BIGINT AS n_pair_rows"
        parts.append(
            f"""SELECT {duck.quote(table)} AS "table", {duck.quote(model)} AS model,
                query_id, variant_id, n_rows, ({chk}) AS chk_sample_ids_complete{pair}
            FROM (
                SELECT a.query_id, a.variant_id,
                    coalesce(c.n_rows, 0)::BIGINT AS n_rows,
                    coalesce(c.n_valid, 0)::BIGINT AS n_valid, c.id_max
                FROM accepted a LEFT JOIN (
                    SELECT query_id, variant_id, count(*) AS n_rows,
                        {_distinct_ids(n)} AS n_valid,
                        max(sample_id) FILTER (WHERE sample_id BETWEEN 0 AND {n - 1})
                            AS id_max
                    FROM {duck.ident(name)}
                    GROUP BY query_id, variant_id
                ) c USING (query_id, variant_id)
            )
            ORDER BY query_id, variant_id"""
        )
    return parts, cols, empty


def accepted_sql(variants: str) -> str:
    return (
        f"WITH accepted AS (SELECT DISTINCT query_id, variant_id FROM {duck.ident(variants)} "
        "WHERE accepted = true)\n"
    )


def coverage_sql(
    *,
    variants: str,
    variant_columns: Collection[str],
    tables: Mapping[tuple[str, str], tuple[str, Collection[str]]],
    n: int,
    per_pair: tuple[int, int] | None = None,
) -> tuple[str, list[str]]:
    """The coverage rows of every (table, model) in one statement (small in-memory
    tables; the stage builds them one part at a time, `coverage_table`)."""
    parts, cols, empty = coverage_parts(
        variants=variants,
        variant_columns=variant_columns,
        tables=tables,
        n=n,
        per_pair=per_pair,
    )
    if not parts:
        return empty, cols
    order = ", ".join(duck.ident(c) for c in COVERAGE_KEYS)
    union = "\nUNION ALL\n".join(f"({p})" for p in parts)
    return accepted_sql(variants) + f"SELECT * FROM ({union}) ORDER BY {order}", cols


def coverage_table(
    ws: Workspace,
    *,
    variants: Relation,
    tables: Mapping[tuple[str, str], Relation],
    n: int,
    per_pair: tuple[int, int] | None = None,
) -> Relation:
    """The coverage table, built one (table, model) at a time in key order (each part's
    group-by fits in memory on 100M-row builds; the insertion order is the sort order)."""
    parts, _, empty = coverage_parts(
        variants=variants.sql_name,
        variant_columns=variants.columns,
        tables={k: (r.sql_name, r.columns) for k, r in tables.items()},
        n=n,
        per_pair=per_pair,
    )
    name = ws.new_name("coverage")
    ws.execute(f"CREATE TABLE {duck.ident(name)} AS {empty}")
    for part in parts:
        ws.execute(f"INSERT INTO {duck.ident(name)} {accepted_sql(variants.sql_name)}{part}")
    return ws.relation(name)


def coverage_frame(
    *,
    variants: pd.DataFrame,
    tables: dict[tuple[str, str], pd.DataFrame],
    n: int,
    per_pair: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """The coverage table for in-memory frames (same SQL as the stage)."""
    con: duckdb.DuckDBPyConnection = duck.connect()
    try:
        con.register("variants_frame", variants)
        names = {}
        for i, (key, df) in enumerate(tables.items()):
            con.register(f"table_{i}", df)
            names[key] = (f"table_{i}", list(df.columns))
        sql, cols = coverage_sql(
            variants="variants_frame",
            variant_columns=list(variants.columns),
            tables=names,
            n=n,
            per_pair=per_pair,
        )
        out = con.execute(sql).df()
    finally:
        con.close()
    return out[cols].reset_index(drop=True)


def error_rate_table(ws: Workspace, *, generations: Mapping[str, Relation]) -> Relation:
    """Per model (params order): rows, status=error rows and their share (null at 0 rows)."""
    selects = []
    for i, (model, rel) in enumerate(generations.items()):
        if "status" not in rel.columns:
            continue  # the missing column fails the generations suite
        selects.append(
            f"SELECT {i} AS _order, {duck.quote(model)} AS model, count(*)::BIGINT AS rows, "
            "count(*) FILTER (WHERE status = 'error')::BIGINT AS n_error "
            f"FROM {duck.ident(rel.sql_name)}"
        )
    name = ws.new_name("error_rate")
    if selects:
        body = "\nUNION ALL\n".join(selects)
        ws.execute(
            f"CREATE TABLE {duck.ident(name)} AS SELECT model, rows, n_error, "
            "CASE WHEN rows > 0 THEN n_error / rows END::DOUBLE AS error_rate "
            f"FROM ({body}) ORDER BY _order"
        )
    else:
        ws.execute(
            f"CREATE TABLE {duck.ident(name)} (model VARCHAR, rows BIGINT, n_error BIGINT, "
            "error_rate DOUBLE)"
        )
    return ws.relation(name)
