"""The `aggregate` stage: outcomes -> data/labels.parquet, one capability distribution per
(query, model). The statistics and how they are computed on bounded memory (DuckDB over
the outcomes Parquet files) are documented in `dars.labels.aggregate`."""

from __future__ import annotations

import json
from pathlib import Path

from dars.core import schema
from dars.core.errors import InputDataError, ValidationFailedError
from dars.core.io import read_frame, write_frame
from dars.core.params import load_params, model_names
from dars.labels.aggregate import (
    Source,
    aggregate_labels,
    aggregation_settings,
    check_error_rates,
    outcome_files,
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
    q = read_frame(queries, ["query_id", "task"], what="queries")[["query_id", "task"]]
    files = outcome_files(outcomes_dir, model_names(params))
    with Source(files) as src:
        rates = check_error_rates(src, settings["max_error_rate"])
        labels = aggregate_labels(outcomes=src, queries=q, settings=settings)
    path = write_frame(labels, out, schema=schema.LABELS)
    print(
        f"aggregate: {len(labels)} labels ({labels['query_id'].nunique()} queries x "
        f"{labels['model'].nunique()} models) -> {path}; failed generations: "
        + ", ".join(f"{m}={int(r.n_failed)}" for m, r in rates.iterrows())
    )
    return path
