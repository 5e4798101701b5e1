"""The request planner: the N seeded requests of one work unit (a variant of a query).

Seeds are a pure function of (sample.seed, model, query, variant, sample id), so a
sample's seed does not depend on the order, the executor, the batch, or what an earlier
run already finished. Uniform and adaptive builds draw the same (variant, sample id)
with the same seed. The backend class plans a variant's seeds (`variant_seeds`): for vLLM
they are consecutive, so a variant is one n=N request.
"""

from __future__ import annotations

from dars.backends import backend_class
from dars.backends.base import GenRequest, sample_seed
from dars.core.params import ModelConfig, SampleConfig
from dars.prompting import format as prompting

__all__ = ["plan_requests", "sample_seed", "variant_seeds"]


def variant_seeds(
    *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int
) -> list[int]:
    """The N sample seeds of a variant, as its backend class plans them
    (`BaseBackend.variant_seeds`: a hashed seed per sample; vLLM: N consecutive seeds, one
    n=N request). Either way sample i's seed does not depend on N, so an adaptive build
    draws a subset of the uniform build's samples."""
    return backend_class(config.backend).variant_seeds(
        config=config, sample=sample, query_id=query_id, variant_id=variant_id
    )


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
