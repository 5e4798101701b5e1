"""The local executor: a model's missing work units in this process, one engine.

`run_units` is the one code path from units to rows that both executors run
(`plan_requests` -> backend -> `rows_for`), so their rows match in keys and seeds: a
fixed group of units through the backend's scheduler (llama_cpp: `generate_units`,
continuous batching across the group), else one variant at a time (`sample_units`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from dars.backends import Backend, build_backend
from dars.core.errors import BackendError
from dars.core.params import ModelConfig, ParamsSource, SampleConfig
from dars.sampling.requests import plan_requests
from dars.sampling.retries import backend_attempts, generate_with_retries
from dars.sampling.rows import rows_for
from dars.sampling.units import WorkUnit, grouped


def unit_requests(units: Any, *, config: Any, sample: Any) -> list[Any]:
    """The planned requests of each unit (`plan_requests`), in unit order."""
    return [
        plan_requests(
            config=config,
            sample=sample,
            query_id=u.query_id,
            variant_id=u.variant_id,
            prompt=u.prompt,
            grader=u.grader,
            reference=u.reference,
            task=u.task,
        )
        for u in units
    ]


def sample_units(
    *, backend: Backend, config: ModelConfig, sample: SampleConfig, units: list[WorkUnit]
) -> list[pa.Table]:
    """The generation rows of each unit (one table per unit, in order).

    A backend with `generate_variants` (the openai backend) gets all units in one call,
    so its requests overlap across variants; the others run one variant at a time.
    """
    reqs = unit_requests(units, config=config, sample=sample)
    many = getattr(backend, "generate_variants", None)
    if many is not None and len(units) > 1:
        try:
            groups = many(reqs)
            outs = [(g, [backend_attempts(r) for r in g]) for g in groups]
        except BackendError:
            outs = [generate_with_retries(backend, r, sample.max_retries) for r in reqs]
    else:
        outs = [generate_with_retries(backend, r, sample.max_retries) for r in reqs]
    return [
        rows_for(config=config, backend=backend, requests=r, results=res, attempts=att)
        for r, (res, att) in zip(reqs, outs, strict=True)
    ]


def sample_group(
    *, backend: Backend, config: ModelConfig, sample: SampleConfig, units: list[WorkUnit]
) -> list[pa.Table]:
    """The rows of a fixed group of units decoded together by a backend's scheduler
    (`generate_units`, the llama_cpp backend). If the group fails as a whole, its units
    are retried one variant at a time (`generate_with_retries`)."""
    reqs = unit_requests(units, config=config, sample=sample)
    try:
        results = backend.generate_units(reqs)  # type: ignore[attr-defined]
        outs = [(res, [1] * len(res)) for res in results]
    except BackendError:
        outs = [generate_with_retries(backend, r, sample.max_retries) for r in reqs]
    return [
        rows_for(config=config, backend=backend, requests=r, results=res, attempts=att)
        for r, (res, att) in zip(reqs, outs, strict=True)
    ]


def run_units(
    *, backend: Backend, config: ModelConfig, sample: SampleConfig, units: list[WorkUnit]
) -> list[pa.Table]:
    """One executor call: a whole group through the scheduler when the units have one,
    else `sample_units`. Both executors call this."""
    if units and units[0].group >= 0 and hasattr(backend, "generate_units"):
        if len({u.group for u in units}) != 1:
            raise ValueError("run_units takes the units of one group at a time")
        return sample_group(backend=backend, config=config, sample=sample, units=units)
    return sample_units(backend=backend, config=config, sample=sample, units=units)


def units_per_call(backend: Backend, n: int) -> int:
    """How many variants to hand a backend at once (a crash loses at most this many)."""
    conc = getattr(backend, "max_concurrency", None)
    if conc is None or not hasattr(backend, "generate_variants"):
        return 1
    return max(1, -(-2 * int(conc) // n))  # keep ~2x the concurrency limit queued


def local_executor(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: ParamsSource,
    todo: list[WorkUnit],
    on_done: Callable[[WorkUnit, pa.Table], None],
) -> None:
    if not todo:
        return
    backend = build_backend(config, params)
    try:
        if todo[0].group >= 0:  # fixed groups, checkpointed together when each ends
            chunks = grouped(todo)
        else:
            step = units_per_call(backend, sample.n)
            chunks = [todo[i : i + step] for i in range(0, len(todo), step)]
        for chunk in chunks:
            tables = run_units(backend=backend, config=config, sample=sample, units=chunk)
            for u, t in zip(chunk, tables, strict=True):
                on_done(u, t)
    finally:
        backend.close()
