"""The `sample` stage: N generations per accepted variant for one model configuration.

Resumable: the work unit is one variant (its N samples). Each finished unit is written
atomically to a checkpoint shard whose name is a hash of everything that determines its
content (model fingerprint, query, variant, prompt, N, seeds). A killed run, restarted,
loads the shards that are complete and valid, redoes the missing or corrupt ones, and
writes the output in a fixed order, so nothing is lost or duplicated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from pipeline import prompting, schema
from pipeline.backends import Backend, GenRequest, GenResult, build_backend
from pipeline.errors import BackendError, InputDataError
from pipeline.io import read_frame, write_table
from pipeline.params import ModelConfig, SampleConfig, load_params, model_config, sample_config

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
        return backend.generate_variant(requests), [1] * len(requests)
    except BackendError as first:
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


def sample_model(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    params: dict[str, Any],
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    checkpoint_dir: Path,
    progress: bool = True,
) -> pa.Table:
    from pipeline.reformulate import few_shot_examples

    units = _work_units(queries, variants)
    shard_dir = checkpoint_dir / config.name
    shard_dir.mkdir(parents=True, exist_ok=True)
    plan = []
    for u in units.itertuples(index=False):
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
        plan.append((u, text, shard_dir / f"{key}.parquet"))

    tables: dict[Path, pa.Table] = {}
    for u, _, path in plan:
        if path.exists():
            t = load_shard(path, n=sample.n, query_id=u.query_id, variant_id=int(u.variant_id))
            if t is None:
                path.unlink()
            else:
                tables[path] = t
    todo = [p for p in plan if p[2] not in tables]
    backend: Backend | None = build_backend(config, params) if todo else None
    bar = tqdm(
        total=len(plan) * sample.n,
        initial=len(tables) * sample.n,
        unit="gen",
        desc=f"sample {config.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    tokens, t0 = 0, time.perf_counter()
    try:
        for u, text, path in todo:
            assert backend is not None
            reqs = plan_requests(
                config=config,
                sample=sample,
                query_id=u.query_id,
                variant_id=int(u.variant_id),
                prompt=text,
                grader=u.grader,
                reference=u.reference,
            )
            results, attempts = _generate_with_retries(backend, reqs, sample.max_retries)
            table = rows_for(
                config=config, backend=backend, requests=reqs, results=results, attempts=attempts
            )
            write_table(table, path)
            tables[path] = table
            tokens += sum(r.completion_tokens for r in results)
            bar.update(len(reqs))
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f}")
    finally:
        bar.close()
        if backend is not None:
            backend.close()
    if not plan:
        return schema.GENERATIONS.empty_table()
    return pa.concat_tables([tables[p] for _, _, p in plan])


def run(
    *, params_path: str, model: str, queries: str, variants: str, out: str, checkpoint_dir: str
) -> Path:
    params = load_params(params_path)
    config = model_config(params, model)
    sample = sample_config(params)
    q = read_frame(queries, schema.names(schema.QUERIES), what="queries")
    v = read_frame(variants, schema.names(schema.VARIANTS), what="variants")
    table = sample_model(
        config=config,
        sample=sample,
        params=params,
        queries=q,
        variants=v,
        checkpoint_dir=Path(checkpoint_dir),
    )
    path = write_table(table, out)
    n_err = pc_count(table, "error")
    print(f"sample {model}: {table.num_rows} generations ({n_err} errors) -> {path}")
    return path


def pc_count(table: pa.Table, status: str) -> int:
    return int(pc.sum(pc.equal(table.column("status"), status)).as_py() or 0)
