"""Uniform sampling of one model (`sampling.strategy: uniform`): N generations per
accepted variant, resumable.

The work unit is one variant (its N samples). Each finished unit is written atomically
to a checkpoint shard (`dars.sampling.shards`). A killed run, restarted, removes the
temporary files the kill left, loads the shards that are complete and valid, redoes the
missing or corrupt ones, and writes the output in a fixed order, so nothing is lost or
duplicated.

Executors: `local` runs the missing units in this process (`dars.sampling.local`);
`ray` runs them on a Ray cluster, one engine per worker (`dars.sampling.ray_data`).
Both plan the same units with the same shard names and seeds, and only the driver
writes shards.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from dars.backends import backend_class
from dars.core import schema
from dars.core.errors import ParamsError
from dars.core.io import write_table
from dars.core.params import ModelConfig, ParamsSource, SampleConfig
from dars.sampling.local import local_executor
from dars.sampling.shards import load_done, remove_temp_files
from dars.sampling.units import WorkUnit, plan_units

EXECUTORS = ("local", "ray")


def sample_model(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: ParamsSource,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
    progress: bool = True,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Sample every unit that has no valid checkpoint shard, then concatenate all shards.

    `executor="ray"` runs the missing units on a Ray cluster (see
    `dars.sampling.ray_data`); the shards, their keys and the output are the same.
    """
    if executor not in EXECUTORS:
        raise ParamsError(f"Unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    plan = plan_units(
        config=config,
        sample=sample,
        queries=queries,
        variants=variants,
        checkpoint_dir=checkpoint_dir,
    )
    shard_dir = checkpoint_dir / config.name
    shard_dir.mkdir(parents=True, exist_ok=True)
    remove_temp_files([shard_dir])
    tables = load_done(plan, n=sample.n)
    # a group with a missing unit is redone whole (its batch decides its samples' text)
    redo = {u.group for u in plan if u.shard not in tables and u.group >= 0}
    todo = [u for u in plan if u.shard not in tables or u.group in redo]
    for u in todo:
        tables.pop(u.shard, None)
    bar = tqdm(
        total=len(plan) * sample.n,
        initial=len(tables) * sample.n,
        unit="gen",
        desc=f"sample {config.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    tokens, t0 = 0, time.perf_counter()
    backend_cls = backend_class(config.backend)

    def on_done(unit: WorkUnit, table: pa.Table) -> None:
        nonlocal tokens
        write_table(table, unit.shard)  # atomic: a crash leaves no torn shard
        tables[unit.shard] = table
        tokens += int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        bar.update(table.num_rows)
        info = {"tok_s": f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f}"}
        info |= backend_cls.progress_note(config)
        bar.set_postfix(info)

    try:
        if executor == "ray":
            from dars.sampling.ray_data import run_ray

            run_ray(
                config=config,
                sample=sample,
                params=params,
                todo=todo,
                on_done=on_done,
                progress=progress,
                **(ray_options or {}),
            )
        else:
            local_executor(config=config, sample=sample, params=params, todo=todo, on_done=on_done)
    finally:
        bar.close()
    if not plan:
        return schema.SAMPLED.empty_table()
    return pa.concat_tables([tables[u.shard] for u in plan])
