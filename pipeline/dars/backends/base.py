"""The backend interface: a backend turns the N requests of one variant into N results.

Backends never raise for a per-sample engine failure: they raise `BackendError`, which
the sample stage retries (bounded by `sample.max_retries`) and then records as a row
with `status="error"`. Such a row is never scored as a wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
