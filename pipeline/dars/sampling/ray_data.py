"""`dars sample --executor ray`: the sample stage's missing work units on a Ray cluster.

Ray Data does the scheduling (this is not our own scheduler): the work units (one per
accepted variant, N samples each) become a dataset with one block per unit (or per fixed
group of units, for a backend that decodes a group together: llama_cpp), and
`Dataset.map_batches` runs them on a fixed pool of `workers` actors (a callable class,
`compute=ActorPoolStrategy(size=workers)`), each holding one inference engine built once by
`build_backend`. A worker runs exactly the local code path (`run_units`:
`plan_requests` -> backend -> `rows_for`), so rows are identical in keys and seeds to
the local executor's. Workers return rows, not files: the driver writes each unit's
checkpoint shard atomically as results stream back (`iter_batches`), so the cluster
needs no shared filesystem, a crash loses only the units in flight, and a rerun, with
either executor, keeps the shards already written.

Point it at a running cluster with `--ray-address` (or `RAY_ADDRESS`); the driver ships
the `dars` package with `runtime_env={"py_modules": [...]}`. The engines themselves
(llama-cpp-python, vLLM, aiohttp) must be installed on the worker nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc

from dars.backends import build_backend
from dars.core import schema
from dars.core.errors import ExecutorError, MissingExtraError, ParamsError
from dars.core.params import ModelConfig, ParamsSource, SampleConfig
from dars.sampling.local import run_units
from dars.sampling.units import WorkUnit, grouped

SHARD_COL = "_shard"
UNITS_COL = "units"  # one dataset row per group of units (a fixed group, or one unit)


class SampleWorker:
    """A Ray Data callable class: one engine per actor, one work unit per batch."""

    def __init__(self, config: ModelConfig, sample: SampleConfig, params: ParamsSource):
        self.config, self.sample = config, sample
        self.backend = build_backend(config, params)

    def __call__(self, batch: pa.Table) -> pa.Table:
        units = [
            WorkUnit.from_row(r) for row in batch.to_pylist() for r in json.loads(row[UNITS_COL])
        ]
        tables = run_units(
            backend=self.backend, config=self.config, sample=self.sample, units=units
        )
        return pa.concat_tables(
            t.append_column(SHARD_COL, pa.array([str(u.shard)] * t.num_rows, pa.string()))
            for u, t in zip(units, tables, strict=True)
        )

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()


def _init_ray(*, address: str | None, progress: bool) -> bool:
    """Connect to (or start) a cluster unless one is connected; True if we started it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingExtraError("--executor ray needs Ray Data: pip install 'dars[ray]'") from exc
    ray.data.DataContext.get_current().enable_progress_bars = progress
    if ray.is_initialized():
        return False
    runtime_env = None
    if address:  # a remote cluster: ship this exact code (the dars package) to its workers
        runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
    ray.init(address=address, runtime_env=runtime_env, log_to_driver=progress)
    return True


def run_ray(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: ParamsSource,
    todo: list[WorkUnit],
    on_done: Callable[[WorkUnit, pa.Table], None],
    progress: bool = True,
    workers: int = 2,
    address: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
) -> None:
    """Run `todo` on `workers` Ray actors and call `on_done(unit, rows)` per finished unit."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParamsError(f"--ray-workers = {workers!r}; allowed: an integer >= 1")
    if cpus_per_worker <= 0 or gpus_per_worker < 0:
        raise ParamsError(
            f"--ray-cpus-per-worker = {cpus_per_worker!r} must be > 0 and "
            f"--ray-gpus-per-worker = {gpus_per_worker!r} must be >= 0"
        )
    if not todo:
        return
    started = _init_ray(address=address, progress=progress)
    import ray
    import ray.data

    try:
        by_shard = {str(u.shard): u for u in todo}
        groups = grouped(todo)
        ds = ray.data.from_items(
            [{UNITS_COL: json.dumps([u.as_row() for u in g])} for g in groups],
            override_num_blocks=len(groups),
        ).map_batches(
            SampleWorker,
            fn_constructor_kwargs={"config": config, "sample": sample, "params": params},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),  # one engine per actor
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        pending: dict[str, list[pa.Table]] = {}
        for got in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            batch = cast(pa.Table, got)  # batch_format="pyarrow": Ray yields Arrow tables
            for shard in set(batch.column(SHARD_COL).to_pylist()):
                part = batch.filter(pc.equal(batch.column(SHARD_COL), shard))
                pending.setdefault(shard, []).append(part)
                rows = pa.concat_tables(pending[shard])
                if rows.num_rows == sample.n:
                    table = rows.drop_columns([SHARD_COL]).sort_by("sample_id")
                    table = table.cast(schema.SAMPLED)
                    on_done(by_shard[shard], table)
                    del pending[shard]
                elif rows.num_rows > sample.n:
                    raise ExecutorError(
                        f"Ray returned {rows.num_rows} rows for shard {shard}, expected "
                        f"{sample.n}: refusing to write duplicated samples"
                    )
        if pending:
            raise ExecutorError(
                f"Ray returned incomplete results for {len(pending)} work units, e.g. "
                f"{next(iter(pending))}; rerun to redo them (finished shards are kept)"
            )
    finally:
        if started:
            ray.shutdown()
