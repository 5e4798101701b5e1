"""The `aggregate` stage: outcomes -> data/labels.parquet, one capability distribution per
(query, model). The statistics and how they are computed on bounded memory (DuckDB over
the outcomes Parquet files) are documented in `dars.labels.aggregate`."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from dars.core.io import read_table, write_table
from dars.core.params import load_params, model_names
from dars.labels.aggregate import (
    Source,
    aggregate_labels,
    aggregation_settings,
    check_error_rates,
    error_rates,
    label_table,
    outcome_files,
    pair_table,
    raise_on_error_rates,
)
from dars.validation.gate import require_passed

__all__ = ["aggregate_labels", "aggregation_settings", "check_error_rates", "run"]


def run(
    *, params_path: str, outcomes_dir: str, queries: str, validation_report: str, out: str
) -> Path:
    params = load_params(params_path)
    settings = aggregation_settings(params)
    require_passed(validation_report, refusing="aggregate labels")
    q = read_table(
        queries, required=["query_id", "task"], columns=["query_id", "task"], what="queries"
    )
    files = outcome_files(outcomes_dir, model_names(params))
    with Source(files) as src:
        pairs = pair_table(src, q)
    rates = raise_on_error_rates(error_rates(pairs), settings["max_error_rate"])
    labels = label_table(pairs, settings=settings)
    path = write_table(labels, out)
    n_queries = pc.count_distinct(labels.column("query_id")).as_py()
    n_models = pc.count_distinct(labels.column("model")).as_py()
    print(
        f"aggregate: {labels.num_rows} labels ({n_queries} queries x "
        f"{n_models} models) -> {path}; failed generations: "
        + ", ".join(f"{m}={int(r.n_failed)}" for m, r in rates.iterrows())
    )
    return path
