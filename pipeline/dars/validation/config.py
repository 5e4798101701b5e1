"""The `validate` stage's settings, read from params.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from dars.core import params as P


@dataclass(frozen=True)
class ValidateConfig:
    n: int
    max_error_rate: float
    max_unexpected_examples: int
    models: tuple[str, ...]
    # adaptive sampling: (min_per_pair, max_per_pair) rows per (query, model) instead of
    # exactly n per accepted variant; None for uniform builds
    per_pair: tuple[int, int] | None = None

    @property
    def max_sample_id(self) -> int:
        return (self.per_pair[1] if self.per_pair else self.n) - 1


def read_config(params: P.ParamsSource) -> ValidateConfig:
    n = P.sample_config(params).n
    v = P.section(params, "validate")
    s = P.section(params, "sampling")
    # adaptive: the sampler's per-pair counts; imported (`dars import`): the source's
    per_pair = (s.min_per_pair, s.max_per_pair) if s.strategy in ("adaptive", "imported") else None
    return ValidateConfig(
        n=n,
        max_error_rate=float(v.max_error_rate),
        max_unexpected_examples=v.max_unexpected_examples,
        models=tuple(P.model_names(params)),
        per_pair=per_pair,
    )
