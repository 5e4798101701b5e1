"""`validate` stage: Great Expectations suites over queries, variants, generations and
outcomes, plus coverage (every accepted variant x model has exactly N samples) and the
per-model error rate, on bounded memory (GX over a DuckDB SQL data source; the tables
stay in their Parquet files). How the checks are built: `dars.validation`.

The JSON report is deterministic (no timestamps, sorted keys) so that DVC outputs are
reproducible; it is written even when validation fails, and then the stage raises
ValidationFailedError naming the table, the expectation and example rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dars.core import params as P
from dars.core.errors import ValidationFailedError
from dars.core.io import write_json
from dars.validation.checks import validate_tables
from dars.validation.config import ValidateConfig, read_config
from dars.validation.derived import coverage_frame
from dars.validation.report import failure_message, variant_counts

__all__ = [
    "ValidateConfig",
    "coverage_frame",
    "read_config",
    "run",
    "variant_counts",
]


def run(
    *,
    params_path: str | Path,
    queries: str | Path,
    variants: str | Path,
    generations_dir: str | Path,
    outcomes_dir: str | Path,
    report: str | Path,
    docs_dir: str | Path,
) -> dict[str, Any]:
    cfg = read_config(P.load_params(params_path))
    result, order = validate_tables(
        cfg=cfg,
        queries=queries,
        variants=variants,
        generations_dir=generations_dir,
        outcomes_dir=outcomes_dir,
        report_path=report,
        docs_dir=docs_dir,
    )
    write_json(result, report)
    if not result["success"]:
        raise ValidationFailedError(failure_message(result, order=order))
    return result
