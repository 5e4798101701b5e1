"""One capability distribution per (query, model), computed on bounded memory.

DuckDB does the two-level group-by over the outcomes Parquet files, reading only the
columns it needs: per (query, model, variant) the count, sum and sum of squares of the
valid scores, then per (query, model) the sums of those. Everything after that works on
the small per-pair table, vectorised.

For the valid observations s_ij (variant i, sample j; failed generations excluded):

* `mean`  = mean of s_ij; `std` = population std (ddof=0) of s_ij.
* Law of total variance, with variant weights n_i/n (exact, ddof=0):
  `var_within`  = sum_i n_i var_i / n   (output side: decoding noise within a rewrite)
  `var_between` = sum_i n_i (mean_i - mean)^2 / n   (input side: between rewrites)
  so `var_within + var_between == std**2`.
* Beta posterior with prior Beta(a0, b0) (params `aggregate.prior_alpha/beta`, default
  Jeffreys 0.5/0.5): alpha = a0 + sum s, beta = b0 + n - sum s. Scores are treated as
  exchangeable draws. Two equal-tailed `aggregate.ci` intervals, boundary-corrected
  (`dars.labels.intervals`, docs/intervals.md): `ci_low/ci_high` for the mean over the
  population of rewrites, `ci_low_fixed/ci_high_fixed` for the mean on the K drawn
  rewrites. n = 0 pairs get nulls.
* `single_shot` = the score of sample 0 of variant 0 (null if that generation failed).
* `mean_cost` = mean cost of the valid generations; `cost_norm` = mean_cost divided by
  the largest mean_cost in the build (costs normalised to [0, 1] as in the paper).
* `utility` = mean - lambda * cost_norm - beta_risk * std (paper: 0.05 and 0.2); lambda and
  beta_risk are one number or one per task (`dars.labels.utility`).

Pairs whose generations all failed keep a row with n = 0 and null statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dars.core import duck, schema
from dars.core.errors import ErrorRateExceededError, InputDataError
from dars.core.io import model_file, parquet_schema
from dars.core.params import ParamsSource, section
from dars.labels import intervals, utility

KEYS = ["query_id", "model"]
# the outcome columns the labels are computed from
COLUMNS = [
    "query_id",
    "model",
    "variant_id",
    "sample_id",
    "score",
    "status",
    "cost",
    "backend",
    "true_p",
]

# Level 1: per (query, model, variant); level 2: per (query, model). The level-2 sums of
# doubles are exact (DECIMAL, values rounded to 1e-18 first): a parallel hash aggregate
# adds a pair's per-variant values in no fixed order, and double addition is not
# associative, so the labels' last bits changed between runs of the same build (seen at
# 1M outcome rows), which breaks DVC's byte-identical outputs. A level-1 group (one
# variant's samples, contiguous in the file) is split into at most two partial sums,
# and a + b == b + a, so level 1 needs no such care.
EXACT = "DECIMAL(38, 18)"
PAIR_SQL = """
WITH per_variant AS (
    SELECT
        query_id, {key_1}variant_id,
        count(*)                                                 AS n_total,
        count(score)                                             AS n_i,
        coalesce(sum(score), 0)                                  AS sum_i,
        coalesce(sum(score * score), 0)                          AS sum2_i,
        count(*) FILTER (WHERE status = 'error')                 AS n_error,
        sum(cost) FILTER (WHERE score IS NOT NULL)               AS cost_sum,
        count(cost) FILTER (WHERE score IS NOT NULL)             AS cost_n,
        min(score) FILTER (WHERE variant_id = 0 AND sample_id = 0) AS single_shot,
        {backend_1}
        sum(true_p)                                              AS true_p_sum,
        count(true_p)                                            AS true_p_n
    FROM {source}
    GROUP BY query_id, {key_1}variant_id
)
SELECT
    query_id, {model}::VARCHAR AS model,
    sum(n_total)::BIGINT                                         AS n_total,
    sum(n_i)::BIGINT                                             AS n,
    sum(n_error)::BIGINT                                         AS n_error,
    count(*) FILTER (WHERE n_i > 0)::BIGINT                      AS n_variants,
    sum(sum_i::{dec})::DOUBLE                                 AS sum_s,
    sum(CASE WHEN n_i > 0 THEN (sum2_i - sum_i * sum_i / n_i)::{dec} END)::DOUBLE AS sw,
    sum(CASE WHEN n_i > 0 THEN (sum_i * sum_i / n_i)::{dec} END)::DOUBLE AS sq_means,
    sum(n_i * n_i) FILTER (WHERE n_i > 0)::DOUBLE                AS sum_n2,
    sum(cost_sum::{dec})::DOUBLE / nullif(sum(cost_n), 0)          AS mean_cost,
    min(single_shot)                                             AS single_shot,
    {backend_2}::VARCHAR                                         AS backend,
    sum(true_p_sum::{dec})::DOUBLE / nullif(sum(true_p_n), 0)      AS true_p
FROM per_variant
GROUP BY query_id{key_2}
"""


def aggregation_settings(params: ParamsSource) -> dict[str, Any]:
    """The settings, floats except `lambda_cost`/`beta_risk`: a float or {task: float}
    (a task of the data without a value fails when the labels are computed)."""
    s = dataclasses.asdict(section(params, "aggregate"))
    weights = {k: utility.weight(s.pop(k)) for k in ("lambda_cost", "beta_risk")}
    return {k: float(v) for k, v in s.items()} | weights


def outcome_files(outcomes_dir: str | Path, models: Sequence[str]) -> list[Path]:
    """`<outcomes_dir>/<model>.parquet` per model, each checked for the contract columns."""
    paths = [model_file(outcomes_dir, m) for m in models]
    for name, path in zip(models, paths, strict=True):
        parquet_schema(path, required=schema.names(schema.OUTCOMES), what=f"outcomes[{name}]")
    return paths


class Source:
    """Where the outcome rows come from: Parquet files (the stage) or an in-memory frame
    (tests, callers that already hold the rows). Used as a context manager."""

    def __init__(self, outcomes: pd.DataFrame | Sequence[str | Path], con: Any = None) -> None:
        self.con = con or duck.connect()
        self._own = con is None
        if isinstance(outcomes, pd.DataFrame):
            cols = [c for c in COLUMNS if c in outcomes.columns]
            frame = outcomes[cols].copy()
            for c in ("cost", "true_p"):
                if c not in frame.columns:
                    frame[c] = np.nan
            if "backend" not in frame.columns:
                frame["backend"] = None
            table = pa.Table.from_pandas(frame, preserve_index=False)  # NaN -> null
            self.con.register("outcomes_frame", table)
            self.sql = "outcomes_frame"
            self.parts: list[tuple[str, tuple[Any, Any] | None]] = [(self.sql, None)]
        else:
            self.sql = duck.read_parquet(list(outcomes))
            # one file per model: grouped one file at a time, the hash table holds one
            # model's groups and stays in memory instead of spilling
            self.parts = [(duck.read_parquet([p]), one_model(p)) for p in outcomes]

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own:
            self.con.close()


def error_rates(pairs: pa.Table) -> pd.DataFrame:
    """Per-model failure counts (score null), indexed by model, from the per-pair table
    (`n_total` rows, `n` valid scores): no second scan of the outcomes."""
    by_model = pairs.group_by("model").aggregate([("n_total", "sum"), ("n", "sum")])
    rates = by_model.to_pandas().rename(columns={"n_total_sum": "n_total"})
    rates["n_failed"] = rates["n_total"] - rates.pop("n_sum")
    rates = rates.sort_values("model").set_index("model")
    rates["rate"] = rates["n_failed"] / rates["n_total"]
    return rates


def raise_on_error_rates(rates: pd.DataFrame, max_error_rate: float) -> pd.DataFrame:
    """Raise when a model's failure rate (`error_rates`) is above the threshold."""
    bad = rates[rates["rate"] > max_error_rate]
    if len(bad):
        lines = ", ".join(
            f"{m}: {int(r.n_failed)}/{int(r.n_total)} ({r.rate:.1%})" for m, r in bad.iterrows()
        )
        raise ErrorRateExceededError(
            f"failed-generation rate above aggregate.max_error_rate={max_error_rate:.1%} for "
            f"{lines}; labels from such a build cannot be trusted. Inspect the `error` column "
            "of data/outcomes/<model>.parquet, fix the engine, or raise the threshold."
        )
    return rates


def check_error_rates(
    outcomes: pd.DataFrame | Sequence[str | Path] | Source, max_error_rate: float
) -> pd.DataFrame:
    """Per-model failure counts of outcome rows; raise when a model's failure rate is above
    the threshold."""
    if isinstance(outcomes, Source):
        pairs = pair_table(outcomes)
    else:
        with Source(outcomes) as src:
            pairs = pair_table(src)
    return raise_on_error_rates(error_rates(pairs), max_error_rate)


def one_model(path: str | Path) -> tuple[Any, Any] | None:
    """(model, backend) when the Parquet footer's statistics show that every row of the
    file has that one model and one backend (min == max, no nulls, in every row group);
    None when they do not or cannot tell."""
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if meta.num_row_groups == 0 or not {"model", "backend"} <= set(names):
        return None
    values = []
    for name in ("model", "backend"):
        seen = set()
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(names.index(name)).statistics
            if stats is None or not stats.has_min_max or stats.null_count != 0:
                return None
            seen |= {stats.min, stats.max}
        if len(seen) != 1:
            return None
        value = seen.pop()
        values.append(value.decode() if isinstance(value, bytes) else value)
    return values[0], values[1]


def pair_sql(source: str, constants: tuple[Any, Any] | None = None) -> str:
    """PAIR_SQL over one source. With `constants` = the source's one (model, backend)
    (`one_model`: one model's file), they are constants instead of a group key and a
    per-group string minimum: the same result, less work."""
    if constants is not None:
        model, backend = (duck.quote(str(v)) for v in constants)
        fmt = {"key_1": "", "key_2": "", "model": model, "backend_1": "", "backend_2": backend}
    else:
        fmt = {
            "key_1": "model, ",
            "key_2": ", model",
            "model": "model",
            "backend_1": "min(backend) AS backend,",
            "backend_2": "min(backend)",
        }
    return PAIR_SQL.format(source=source, dec=EXACT, **fmt)


def _group_parts(source: Source) -> pa.Table:
    """The per-pair rows of every part of the source; the whole source in one query when
    parts share a model (a pair must not be split over two parts)."""
    try:
        tables = [duck.arrow_table(source.con, pair_sql(*part)) for part in source.parts]
        models = [set(pc.unique(t.column("model")).to_pylist()) for t in tables]
        if sum(map(len, models)) != len(set().union(*models)):
            tables = [duck.arrow_table(source.con, pair_sql(source.sql))]
    except duckdb.ConversionException as exc:
        raise InputDataError(
            "outcome scores and costs must be finite numbers (scores in [0, 1]); "
            f"{str(exc).splitlines()[0]}. `dars validate` names the rows"
        ) from exc
    return pa.concat_tables(tables)


def pair_table(source: Source, queries: pd.DataFrame | pa.Table | None = None) -> pa.Table:
    """The two-level group-by: one row per (query, model) with the sums the labels need
    and the query's task (null without `queries`), sorted by (query_id, model)."""
    if queries is None:
        q = pa.table({"query_id": pa.array([], pa.string()), "task": pa.array([], pa.string())})
    else:
        q = queries if isinstance(queries, pa.Table) else pa.Table.from_pandas(queries)
    source.con.register("label_queries", q.select(["query_id", "task"]))
    source.con.register("label_pairs", _group_parts(source))
    try:
        return duck.arrow_table(
            source.con,
            "SELECT p.*, q.task FROM label_pairs p LEFT JOIN label_queries q USING (query_id) "
            "ORDER BY p.query_id, p.model",
        )
    finally:
        source.con.unregister("label_pairs")


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A column as float64 with NaN for null."""
    return pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)


def label_table(pairs: pa.Table, *, settings: dict[str, Any]) -> pa.Table:
    """The label columns from the per-pair sums, vectorised (numpy on Arrow columns)."""
    n = _floats(pairs, "n")
    sum_s = _floats(pairs, "sum_s")
    has = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(has, sum_s / n, np.nan)
        sw = np.clip(_floats(pairs, "sw"), 0.0, None)
        sb = np.clip(_floats(pairs, "sq_means") - n * mean**2, 0.0, None)
        var_within = np.where(has, sw / n, np.nan)
        var_between = np.where(has, sb / n, np.nan)
    std = np.sqrt(var_within + var_between)

    prior = {"prior_alpha": settings["prior_alpha"], "prior_beta": settings["prior_beta"]}
    alpha, beta = intervals.beta_posterior(sum_s, n, **prior)
    cis = intervals.label_intervals(
        n=n,
        sum_s=sum_s,
        var_within=var_within,
        var_between=var_between,
        n_variants=_floats(pairs, "n_variants"),
        sum_n2=_floats(pairs, "sum_n2"),
        level=settings["ci"],
        **prior,
    )

    mean_cost = _floats(pairs, "mean_cost")
    max_cost = np.nanmax(mean_cost) if np.isfinite(mean_cost).any() else np.nan
    if max_cost and max_cost > 0:
        cost_norm = mean_cost / max_cost
    else:
        cost_norm = np.where(np.isnan(mean_cost), np.nan, 0.0)
    tasks = pairs.column("task")
    lam = utility.per_row(settings["lambda_cost"], tasks, key="aggregate.lambda_cost")
    risk = utility.per_row(settings["beta_risk"], tasks, key="aggregate.beta_risk")
    util = mean - lam * cost_norm - risk * std

    floats = {
        "mean": mean,
        "std": std,
        "var_within": var_within,
        "var_between": var_between,
        "alpha": alpha,
        "beta": beta,
        **cis,
        "single_shot": _floats(pairs, "single_shot"),
        "mean_cost": mean_cost,
        "cost_norm": cost_norm,
        "utility": util,
        "true_p": _floats(pairs, "true_p"),
    }
    columns = []
    for field in schema.LABELS:
        if field.name in floats:
            columns.append(pa.array(floats[field.name], type=field.type, from_pandas=True))
        else:
            columns.append(pc.cast(pairs.column(field.name), field.type))
    return pa.Table.from_arrays(columns, schema=schema.LABELS)


def labels_from_pairs(
    pairs: pd.DataFrame, *, queries: pd.DataFrame, settings: dict[str, Any]
) -> pd.DataFrame:
    """`label_table` for a per-pair frame (without `task`) and a queries frame."""
    lab = pairs.merge(queries[["query_id", "task"]], on="query_id", how="left")
    lab = lab.sort_values(KEYS, kind="stable")
    return label_table(
        pa.Table.from_pandas(lab, preserve_index=False), settings=settings
    ).to_pandas()


def aggregate_table(
    *,
    outcomes: pd.DataFrame | Sequence[str | Path] | Source,
    queries: pd.DataFrame | pa.Table,
    settings: dict[str, Any],
) -> pa.Table:
    """Labels (Arrow, contract schema) from outcome rows: a frame, Parquet paths or an
    open Source."""
    if isinstance(outcomes, Source):
        pairs = pair_table(outcomes, queries)
    else:
        with Source(outcomes) as src:
            pairs = pair_table(src, queries)
    return label_table(pairs, settings=settings)


def aggregate_labels(
    *,
    outcomes: pd.DataFrame | Sequence[str | Path] | Source,
    queries: pd.DataFrame | pa.Table,
    settings: dict[str, Any],
) -> pd.DataFrame:
    """Labels as a DataFrame (one row per (query, model), sorted by them)."""
    return aggregate_table(outcomes=outcomes, queries=queries, settings=settings).to_pandas()
