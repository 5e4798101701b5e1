"""The `aggregate` stage: outcomes -> data/labels.parquet, one capability distribution per
(query, model). The statistics and how they are computed on bounded memory (DuckDB over
the outcomes Parquet files) are documented in `dars.labels.aggregate`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from dars.core import duck
from dars.core.errors import InputDataError, ValidationFailedError
from dars.core.io import write_table
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

__all__ = ["aggregate_labels", "aggregation_settings", "check_error_rates", "run"]


def _check_validation(report: str) -> None:
    path = Path(report)
    if not path.exists():
        raise InputDataError(f"validation report {report!r} does not exist; run `dars validate`")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not data.get("success", False):
        raise ValidationFailedError(
            f"validation report {report!r} says the build failed validation; "
            "labels are not aggregated from tables that failed their checks"
        )


def run(
    *, params_path: str, outcomes_dir: str, queries: str, validation_report: str, out: str
) -> Path:
    params = load_params(params_path)
    settings = aggregation_settings(params)
    _check_validation(validation_report)
    duck.parquet_schema(queries, required=["query_id", "task"], what="queries")
    q = pq.read_table(queries, columns=["query_id", "task"])
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
