"""The request planner: the N seeded requests of one work unit (a variant of a query).

Seeds are a pure function of (sample.seed, model, query, variant, sample id), so a
sample's seed does not depend on the order, the executor, the batch, or what an earlier
run already finished. Uniform and adaptive builds draw the same (variant, sample id)
with the same seed. For vLLM a variant's seeds are consecutive, so it is one n=N request.
"""

from __future__ import annotations

import hashlib

from dars.backends.base import GenRequest
from dars.core.params import ModelConfig, SampleConfig
from dars.prompting import format as prompting


def sample_seed(
    *, base_seed: int, model: str, query_id: str, variant_id: int, sample_id: int
) -> int:
    """A distinct, order-independent seed per (model, query, variant, sample)."""
    key = f"{base_seed}|{model}|{query_id}|{variant_id}|{sample_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def variant_seeds(
    *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int
) -> list[int]:
    """The N sample seeds of a variant.

    vLLM: N consecutive seeds in the variant's own block (`spaced_sample_seeds`), so the
    planner sends ONE `SamplingParams(n=N, seed=first)` request per variant and vLLM's
    child seeds (seed + index) are exactly the recorded ones. Other backends: a hashed
    seed per sample (`sample_seed`). Either way sample i's seed does not depend on N, so
    an adaptive build draws a subset of the uniform build's samples.
    """
    if config.backend == "vllm":
        from dars.backends.vllm import spaced_sample_seeds

        return spaced_sample_seeds(
            base_seed=sample.seed,
            model=config.name,
            query_id=query_id,
            variant_id=variant_id,
            n=sample.n,
        )
    return [
        sample_seed(
            base_seed=sample.seed,
            model=config.name,
            query_id=query_id,
            variant_id=variant_id,
            sample_id=i,
        )
        for i in range(sample.n)
    ]


def plan_requests(
    *,
    config: ModelConfig,
    sample: SampleConfig,
    query_id: str,
    variant_id: int,
    prompt: str,
    grader: str,
    reference: str,
    task: str | None = None,
) -> list[GenRequest]:
    """A pure request planner: the N requests of one variant (`task` picks a per-task
    `max_tokens`)."""
    seeds = variant_seeds(config=config, sample=sample, query_id=query_id, variant_id=variant_id)
    return [
        GenRequest(
            query_id=query_id,
            variant_id=variant_id,
            sample_id=i,
            seed=seeds[i],
            prompt=prompt,
            stop=prompting.stops_for(grader, config.stop, prompting=config.prompting),
            max_tokens=config.max_tokens_for(task),
            temperature=config.temperature,
            top_p=config.top_p,
            grader=grader,
            reference=reference,
        )
        for i in range(sample.n)
    ]
