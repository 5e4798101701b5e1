"""Run logs: what a stage measured about itself (wall-clock times, load), kept out of
the DVC-tracked outputs so that two clean builds write byte-identical tables and the
same `dvc.lock`.

A run log lives under `.dars/runs/<stage>/<name>.json` (ignored by git and not a DVC
output), next to a Parquet file of the per-row measurements when there are any. Each
run replaces the previous log of the same stage and name. `DARS_RUNS_DIR` moves them
(the test suite points it at a temporary folder, so that no test writes into the
checkout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dars.core import schema
from dars.core.io import write_json, write_table

RUNS_DIR = Path(".dars") / "runs"
RUNS_DIR_ENV = "DARS_RUNS_DIR"  # moves the run logs (the test suite: out of the checkout)
# What the engine of this process recorded about itself (a native backend's CPU features
# and load options); the sample stage writes it into its run log.
ENGINE: dict[str, Any] = {}


def runs_dir() -> Path:
    """Where run logs go: $DARS_RUNS_DIR if set, else .dars/runs under the working dir."""
    return Path(os.environ.get(RUNS_DIR_ENV) or RUNS_DIR)


def log_path(stage: str, name: str, *, root: str | Path | None = None) -> Path:
    return Path(runs_dir() if root is None else root) / stage / f"{name}.json"


def write_log(
    stage: str, name: str, record: dict[str, Any], *, root: str | Path | None = None
) -> Path:
    """Write `record` (plus the machine's load average) as the run log of stage/name."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return write_json(
        {"stage": stage, "name": name, **record, "loadavg": list(load)},
        log_path(stage, name, root=root),
    )


def split_wall_clock(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(the table without its wall-clock columns, the keys plus those columns)."""
    clock = [name for name, _ in schema.WALL_CLOCK if name in table.column_names]
    keys = [k for k in schema.KEYS["generations"] if k in table.column_names]
    return table.drop_columns(clock), table.select(keys + clock)


def latency_summary(latency: np.ndarray) -> dict[str, float | int | None]:
    """Count, total, mean and quantiles of per-row engine seconds."""
    lat = latency[~np.isnan(latency)] if latency.size else latency
    if lat.size == 0:
        return {"rows": 0, "total_s": 0.0, "mean_s": None, "p50_s": None, "p95_s": None,
                "max_s": None}  # fmt: skip
    return {
        "rows": int(lat.size),
        "total_s": round(float(lat.sum()), 4),
        "mean_s": round(float(lat.mean()), 4),
        "p50_s": round(float(np.quantile(lat, 0.5)), 4),
        "p95_s": round(float(np.quantile(lat, 0.95)), 4),
        "max_s": round(float(lat.max()), 4),
    }


def write_sampled(
    table: pa.Table,
    out: str | Path,
    *,
    stage: str,
    name: str,
    root: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write sampled rows to `out` in the contract schema (schema.GENERATIONS: no
    wall-clock columns); the per-row latencies and their summary go to the run log."""
    tracked, clock = split_wall_clock(table)
    tracked = tracked.select(schema.names(schema.GENERATIONS)).cast(schema.GENERATIONS)
    path = write_table(tracked, out)
    log_dir = log_path(stage, name, root=root).parent
    write_table(clock, log_dir / f"{name}.latency.parquet")
    latency = (
        clock.column("latency_s").to_numpy(zero_copy_only=False).astype(float)
        if "latency_s" in clock.column_names
        else np.array([], dtype=float)
    )
    record = {"output": str(out), "latency": latency_summary(latency), **(extra or {})}
    write_log(stage, name, record, root=root)
    return path
