"""The backend interface: a backend turns the N requests of one variant into N results.

Backends never raise for a per-sample engine failure: they raise `BackendError`, which
the sample stage retries (bounded by `sample.max_retries`) and then records as a row
with `status="error"`. Such a row is never scored as a wrong answer.

`BaseBackend` holds what the sampling layer asks a backend class before (or without)
building an engine: how it is built from the params, whether it decodes work units in
fixed groups, how it seeds a variant's samples, and what it adds to the progress line.
The sampling layer asks these of the class registered under `ModelConfig.backend`
(`dars.backends.backend_class`) and never compares backend names.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from dars.core.params import ModelConfig, ParamsSource, SampleConfig


@dataclass(frozen=True)
class GenRequest:
    query_id: str
    variant_id: int
    sample_id: int
    seed: int
    prompt: str  # the fully rendered text sent to the engine
    stop: tuple[str, ...]
    max_tokens: int
    temperature: float
    top_p: float
    grader: str = "exact"
    reference: str = ""  # only the simulated backend looks at it
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenResult:
    completion: str | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float
    status: str = "ok"
    error: str | None = None
    true_p: float | None = None


class Backend(Protocol):
    name: str
    revision: str

    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        """Generate all samples of one variant (same prompt, different seeds)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class UnitGroups:
    """Work units decoded together: `size` units per fixed group, checkpointed together
    when the group ends, on `slots` sequence slots (part of a grouped shard's name)."""

    size: int
    slots: int


def sample_seed(
    *, base_seed: int, model: str, query_id: str, variant_id: int, sample_id: int
) -> int:
    """A distinct, order-independent seed per (model, query, variant, sample)."""
    key = f"{base_seed}|{model}|{query_id}|{variant_id}|{sample_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


class BaseBackend(ABC):
    """The class-level defaults: built from its model config alone, each unit generated
    on its own, a hashed seed per sample, nothing added to the progress line."""

    name: str  # the registered name, also written to every row
    revision: str

    @abstractmethod
    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        """Generate all samples of one variant (same prompt, different seeds)."""

    @abstractmethod
    def close(self) -> None: ...

    @classmethod
    def from_params(cls, config: ModelConfig, params: ParamsSource) -> Self:
        """The engine for one model config (`params`: the whole params, for backends that
        read another section). A missing optional engine raises `MissingExtraError`
        naming the pip extra to install."""
        return cls(config)  # type: ignore[call-arg]

    @classmethod
    def unit_groups(cls, config: ModelConfig, n: int) -> UnitGroups | None:
        """How units are grouped when the backend decodes several together, else None."""
        return None

    @classmethod
    def variant_seeds(
        cls, *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int
    ) -> list[int]:
        """The N sample seeds of a variant: a hashed seed per sample (`sample_seed`), so
        sample i's seed does not depend on N (an adaptive build draws a subset of the
        uniform build's samples)."""
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

    @classmethod
    def progress_note(cls, config: ModelConfig) -> dict[str, str]:
        """Extra fields for the sampling progress line (e.g. CPU threads in use)."""
        return {}
