"""Generation rows (the contract's `generations` table) from requests and results."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dars.backends.base import Backend, GenRequest, GenResult
from dars.core import schema
from dars.core.params import ModelConfig


def rows_for(
    *,
    config: ModelConfig,
    backend: Backend,
    requests: list[GenRequest],
    results: list[GenResult],
    attempts: list[int],
) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in schema.names(schema.SAMPLED)}
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
    return pa.Table.from_pydict(cols, schema=schema.SAMPLED)
