"""The `sample` stage: N generations per accepted variant for one model configuration.

The library code lives in `dars.sampling`: work units and their checkpoint shards
(`units`, `shards`), the request planner (`requests`), the executors (`local`,
`ray_data`), and the two strategies, `uniform` (N per variant, resumable) and
`adaptive` (rounds until each pair's interval is narrow enough).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dars.core import runlog, schema
from dars.core.io import read_frame
from dars.core.params import load_params, model_config, sample_config
from dars.sampling import adaptive
from dars.sampling.uniform import sample_model


def run(
    *,
    params_path: str,
    model: str,
    queries: str,
    variants: str,
    out: str,
    checkpoint_dir: str,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
) -> Path:
    params = load_params(params_path)
    config = model_config(params, model)
    sample = sample_config(params)
    q = read_frame(queries, schema.names(schema.QUERIES), what="queries")
    v = read_frame(variants, schema.names(schema.VARIANTS), what="variants")
    adaptive_run = adaptive.sampling_strategy(params) == "adaptive"
    table = (adaptive.sample_model_adaptive if adaptive_run else sample_model)(
        config=config,
        sample=sample,
        params=params,
        queries=q,
        variants=v,
        checkpoint_dir=Path(checkpoint_dir),
        executor=executor,
        ray_options=ray_options,
    )
    path = runlog.write_sampled(  # latency and the engine's CPU options: the run log
        table, out, stage="sample", name=model, extra={"engine": dict(runlog.ENGINE)}
    )
    n_err = pc_count(table, "error")
    print(f"sample {model}: {table.num_rows} generations ({n_err} errors) -> {path}")
    return path


def pc_count(table: pa.Table, status: str) -> int:
    return int(pc.sum(pc.equal(table.column("status"), status)).as_py() or 0)
