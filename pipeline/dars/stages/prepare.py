"""Stage `prepare`: source tasks -> queries table, plus a quarantine of bad source rows.

Params (section `prepare`):
- `tasks`: mapping task name -> {kind: humaneval | arithmetic | huggingface, ...settings};
- `max_quarantine_fraction` (default 0.05): fail when a larger share of rows is bad;
- `max_prompt_chars` (default 20000): longer prompts are quarantined.

Every candidate row from a task loader is validated (`dars.tasks.validate_rows`). A bad
row is not skipped: it goes to the quarantine table with its reason and field, and is
counted as `dropped_<reason>` (datatrove style) in the stats JSON. Past the threshold
the quarantine and the stats are written first, then QuarantineThresholdError is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from dars.core import io
from dars.core.errors import (
    InputDataError,
    QuarantineThresholdError,
)
from dars.core.params import ParamsSource, as_params, load_params, section
from dars.core.schema import QUARANTINE, QUERIES
from dars.tasks import TASK_LOADERS
from dars.tasks.configs import task_configs
from dars.tasks.validate_rows import build, stats, threshold_message


@dataclass(frozen=True)
class Settings:
    max_quarantine_fraction: float
    max_prompt_chars: int
    where: str


# --- params ------------------------------------------------------------------------


def read_settings(params: ParamsSource) -> Settings:
    s = section(params, "prepare")
    return Settings(
        max_quarantine_fraction=float(s.max_quarantine_fraction),
        max_prompt_chars=s.max_prompt_chars,
        where=as_params(params).where,
    )


# --- stage ----------------------------------------------------------------------------


def run(
    *, params_path: str | Path, out: str | Path, quarantine_out: str | Path, stats_out: str | Path
) -> dict[str, Any]:
    params = load_params(params_path)
    settings = read_settings(params)
    configs = task_configs(params)
    # Loaders check their settings when called, so every bad value fails before any rows
    # are read; the rows themselves are produced lazily in `build`.
    candidates = {
        task: TASK_LOADERS.get(config["kind"])(
            task=task, config=config, key=f"prepare.tasks.{task}"
        )
        for task, config in configs.items()
    }
    result = build(candidates, max_prompt_chars=settings.max_prompt_chars)
    summary = stats(result, max_quarantine_fraction=settings.max_quarantine_fraction)
    if not result.queries and not result.quarantine:
        raise InputDataError(
            f"The tasks in 'prepare.tasks' of '{settings.where}' yielded no rows at all"
        )
    io.write_table(pa.Table.from_pylist(result.quarantine, schema=QUARANTINE), quarantine_out)
    io.write_json(summary, stats_out)
    if summary["quarantine_fraction"] > settings.max_quarantine_fraction:
        raise QuarantineThresholdError(
            threshold_message(
                summary,
                max_quarantine_fraction=settings.max_quarantine_fraction,
                where=settings.where,
                quarantine_path=str(quarantine_out),
            )
        )
    io.write_table(pa.Table.from_pylist(result.queries, schema=QUERIES), out)
    return summary
