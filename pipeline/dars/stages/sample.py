"""The `sample` stage: N generations per accepted variant for one model configuration.

Resumable: the work unit is one variant (its N samples). Each finished unit is written
atomically to a checkpoint shard whose name is a hash of everything that determines its
content (model fingerprint, query, variant, prompt, N, seeds). A killed run, restarted,
loads the shards that are complete and valid, redoes the missing or corrupt ones, and
writes the output in a fixed order, so nothing is lost or duplicated.

Executors: `local` runs the missing units in this process; `ray` runs them on a Ray
cluster, one engine per worker (`pipeline/dars/sampling/ray_data.py`). Both plan the same
units with the same shard names and seeds, and only the driver writes shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from dars.prompting import format as prompting
from dars.core import schema
from dars.backends import Backend, GenRequest, GenResult, build_backend
from dars.core.errors import BackendError, InputDataError, ParamsError
from dars.core.io import read_frame, write_table
from dars.core.params import ModelConfig, SampleConfig, load_params, model_config, sample_config

log = logging.getLogger(__name__)
SHARD_FORMAT = 1


def sample_seed(
    *, base_seed: int, model: str, query_id: str, variant_id: int, sample_id: int
) -> int:
    """A distinct, order-independent seed per (model, query, variant, sample)."""
    key = f"{base_seed}|{model}|{query_id}|{variant_id}|{sample_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def shard_key(
    *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int, prompt: str
) -> str:
    blob = json.dumps(
        {
            "format": SHARD_FORMAT,
            "model": config.name,
            "config": config.fingerprint_fields(),
            "n": sample.n,
            "seed": sample.seed,
            "query_id": query_id,
            "variant_id": variant_id,
            "prompt": prompt,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def plan_requests(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    query_id: str,
    variant_id: int,
    prompt: str,
    grader: str,
    reference: str,
) -> list[GenRequest]:
    """A pure request planner: the N requests of one variant."""
    return [
        GenRequest(
            query_id=query_id,
            variant_id=variant_id,
            sample_id=i,
            seed=sample_seed(
                base_seed=sample.seed,
                model=config.name,
                query_id=query_id,
                variant_id=variant_id,
                sample_id=i,
            ),
            prompt=prompt,
            stop=prompting.stops_for(grader, config.stop),
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            grader=grader,
            reference=reference,
        )
        for i in range(sample.n)
    ]


def _generate_with_retries(
    backend: Backend, requests: list[GenRequest], max_retries: int
) -> tuple[list[GenResult], list[int]]:
    """Run a variant; on engine failure, retry the failed samples one by one.

    A sample that still fails after `max_retries` retries becomes a status=error row.
    """
    try:
        results = backend.generate_variant(requests)
        return results, [_backend_attempts(r) for r in results]
    except BackendError as first:
        return _retry_one_by_one(backend, requests, max_retries, first)


def _backend_attempts(result: GenResult) -> int:
    """Attempts a backend made itself (the openai backend's HTTP retries), else 1."""
    return int(getattr(result, "attempts", 1))


def _retry_one_by_one(
    backend: Backend, requests: list[GenRequest], max_retries: int, first: BackendError
) -> tuple[list[GenResult], list[int]]:
    results: list[GenResult] = []
    attempts: list[int] = []
    for req in requests:
        err: BackendError = first
        for attempt in range(1, max_retries + 1):
            try:
                results.append(backend.generate_variant([req])[0])
                attempts.append(attempt + 1)
                break
            except BackendError as exc:
                err = exc
        else:
            results.append(
                GenResult(
                    completion=None,
                    prompt_tokens=0,
                    completion_tokens=0,
                    finish_reason="error",
                    latency_s=0.0,
                    status="error",
                    error=str(err),
                )
            )
            attempts.append(max_retries + 1)
    return results, attempts


def rows_for(
    *,
    config: ModelConfig,
    backend: Backend,
    requests: list[GenRequest],
    results: list[GenResult],
    attempts: list[int],
) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in schema.names(schema.GENERATIONS)}
    for req, res, att in zip(requests, results, attempts, strict=True):
        cost = (
            res.prompt_tokens * config.price_per_1k_prompt
            + res.completion_tokens * config.price_per_1k_completion
        ) / 1000.0
        row = {
            "query_id": req.query_id,
            "variant_id": req.variant_id,
            "model": config.name,
            "sample_id": req.sample_id,
            "seed": req.seed,
            "completion": res.completion,
            "prompt_tokens": res.prompt_tokens,
            "completion_tokens": res.completion_tokens,
            "finish_reason": res.finish_reason,
            "status": res.status,
            "error": res.error,
            "latency_s": float(res.latency_s),
            "backend": backend.name,
            "revision": backend.revision,
            "cost": cost,
            "attempts": att,
            "true_p": res.true_p,
        }
        for k, v in row.items():
            cols[k].append(v)
    return pa.Table.from_pydict(cols, schema=schema.GENERATIONS)


def load_shard(path: Path, *, n: int, query_id: str, variant_id: int) -> pa.Table | None:
    """A shard is used only if it is readable and holds exactly the expected keys."""
    try:
        table = pq.read_table(path, schema=schema.GENERATIONS)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        log.warning("corrupt checkpoint shard %s (%s): redoing it", path, exc)
        return None
    d = table.select(["query_id", "variant_id", "sample_id"]).to_pydict()
    if (
        d["sample_id"] != list(range(n))
        or set(d["query_id"]) != {query_id}
        or set(d["variant_id"]) != {variant_id}
    ):
        log.warning("checkpoint shard %s has unexpected keys: redoing it", path)
        return None
    return table


def _work_units(queries: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    acc = variants[variants["accepted"].astype(bool)]
    units = acc.merge(
        queries[["query_id", "grader", "reference"]],
        on="query_id",
        how="left",
        validate="many_to_one",
        indicator=True,
    )
    orphan = units[units["_merge"] != "both"]
    if len(orphan):
        raise InputDataError(
            f"{len(orphan)} variants reference unknown query_ids, e.g. "
            f"{orphan['query_id'].head(3).tolist()}; every variant's query_id must be in queries"
        )
    return units.drop(columns="_merge").sort_values(["query_id", "variant_id"], kind="stable")


@dataclass(frozen=True)
class WorkUnit:
    """One variant of one query for one model: N samples, one checkpoint shard."""

    query_id: str
    variant_id: int
    prompt: str  # the rendered text sent to the engine
    grader: str
    reference: str
    shard: Path

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "shard": str(self.shard)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WorkUnit:
        return cls(**{**row, "variant_id": int(row["variant_id"]), "shard": Path(row["shard"])})


def plan_units(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
) -> list[WorkUnit]:
    """Every work unit of one model, in the fixed output order (query_id, variant_id)."""
    from dars.stages.reformulate import few_shot_examples

    shard_dir = checkpoint_dir / config.name
    plan = []
    for u in _work_units(queries, variants).itertuples(index=False):
        text = prompting.render(
            message=u.prompt,
            grader=u.grader,
            prompting=config.prompting,
            examples=few_shot_examples(u.grader)[: config.shots or None],
        )
        key = shard_key(
            config=config,
            sample=sample,
            query_id=u.query_id,
            variant_id=int(u.variant_id),
            prompt=text,
        )
        plan.append(
            WorkUnit(
                query_id=u.query_id,
                variant_id=int(u.variant_id),
                prompt=text,
                grader=u.grader,
                reference=u.reference,
                shard=shard_dir / f"{key}.parquet",
            )
        )
    return plan


def load_done(units: list[WorkUnit], *, n: int) -> dict[Path, pa.Table]:
    """The complete, valid shards of `units`; torn or unexpected shards are deleted."""
    tables: dict[Path, pa.Table] = {}
    for u in units:
        if u.shard.exists():
            t = load_shard(u.shard, n=n, query_id=u.query_id, variant_id=u.variant_id)
            if t is None:
                u.shard.unlink()
            else:
                tables[u.shard] = t
    return tables


def sample_units(
    *, backend: Backend, config: ModelConfig, sample: SampleConfig, units: list[WorkUnit]
) -> list[pa.Table]:
    """The generation rows of each unit (one table per unit, in order).

    A backend with `generate_variants` (the openai backend) gets all units in one call,
    so its requests overlap across variants; the others run one variant at a time.
    """
    reqs = [
        plan_requests(
            config=config,
            sample=sample,
            query_id=u.query_id,
            variant_id=u.variant_id,
            prompt=u.prompt,
            grader=u.grader,
            reference=u.reference,
        )
        for u in units
    ]
    many = getattr(backend, "generate_variants", None)
    if many is not None and len(units) > 1:
        try:
            groups = many(reqs)
            outs = [(g, [_backend_attempts(r) for r in g]) for g in groups]
        except BackendError:
            outs = [_generate_with_retries(backend, r, sample.max_retries) for r in reqs]
    else:
        outs = [_generate_with_retries(backend, r, sample.max_retries) for r in reqs]
    return [
        rows_for(config=config, backend=backend, requests=r, results=res, attempts=att)
        for r, (res, att) in zip(reqs, outs, strict=True)
    ]


def units_per_call(backend: Backend, n: int) -> int:
    """How many variants to hand a backend at once (a crash loses at most this many)."""
    conc = getattr(backend, "max_concurrency", None)
    if conc is None or not hasattr(backend, "generate_variants"):
        return 1
    return max(1, -(-2 * int(conc) // n))  # keep ~2x the concurrency limit queued


def _local_executor(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: dict[str, Any],
    todo: list[WorkUnit],
    on_done: Callable[[WorkUnit, pa.Table], None],
) -> None:
    if not todo:
        return
    backend = build_backend(config, params)
    try:
        step = units_per_call(backend, sample.n)
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            tables = sample_units(backend=backend, config=config, sample=sample, units=chunk)
            for u, t in zip(chunk, tables, strict=True):
                on_done(u, t)
    finally:
        backend.close()


EXECUTORS = ("local", "ray")


def sample_model(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: dict[str, Any],
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
    progress: bool = True,
    executor: str = "local",
    ray_options: dict[str, Any] | None = None,
) -> pa.Table:
    """Sample every unit that has no valid checkpoint shard, then concatenate all shards.

    `executor="ray"` runs the missing units on a Ray cluster (see
    `pipeline/dars/sampling/ray_data.py`); the shards, their keys and the output are the same.
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
    (checkpoint_dir / config.name).mkdir(parents=True, exist_ok=True)
    tables = load_done(plan, n=sample.n)
    todo = [u for u in plan if u.shard not in tables]
    bar = tqdm(
        total=len(plan) * sample.n,
        initial=len(tables) * sample.n,
        unit="gen",
        desc=f"sample {config.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    tokens, t0 = 0, time.perf_counter()

    def on_done(unit: WorkUnit, table: pa.Table) -> None:
        nonlocal tokens
        write_table(table, unit.shard)  # atomic: a crash leaves no torn shard
        tables[unit.shard] = table
        tokens += int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        bar.update(table.num_rows)
        bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f}")

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
            _local_executor(config=config, sample=sample, params=params, todo=todo, on_done=on_done)
    finally:
        bar.close()
    if not plan:
        return schema.GENERATIONS.empty_table()
    return pa.concat_tables([tables[u.shard] for u in plan])


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
    from dars.sampling import adaptive  # `sampling.strategy: adaptive` (pipeline/dars/sampling/adaptive.py)

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
    path = write_table(table, out)
    n_err = pc_count(table, "error")
    print(f"sample {model}: {table.num_rows} generations ({n_err} errors) -> {path}")
    return path


def pc_count(table: pa.Table, status: str) -> int:
    return int(pc.sum(pc.equal(table.column("status"), status)).as_py() or 0)
