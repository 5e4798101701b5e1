"""Inference backends, one file each. Optional engines fail at build time with the
pip extra to install (datatrove style)."""

from __future__ import annotations

from typing import Any

from dars.backends.base import Backend, GenRequest, GenResult
from dars.core.errors import ParamsError
from dars.core.params import BACKENDS, ModelConfig

__all__ = ["Backend", "GenRequest", "GenResult", "build_backend"]


def build_backend(config: ModelConfig, params: dict[str, Any]) -> Backend:
    if config.backend == "llama_cpp":
        from dars.backends.llama_cpp import LlamaCppBackend

        return LlamaCppBackend(config)
    if config.backend == "openai":
        from dars.backends.openai import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "vllm":
        from dars.backends.vllm import VllmBackend

        return VllmBackend(config)
    if config.backend == "simulated":
        from dars.backends.simulated import SimulatedBackend, simulator_settings

        return SimulatedBackend(config, simulator_settings(params))
    if config.backend == "imported":
        raise ParamsError(
            f"Model {config.name!r} was imported by `dars import` (backend 'imported'): its "
            "rows come from another release and there is no engine to sample it with"
        )
    if config.backend in BACKENDS:
        raise ParamsError(
            f"Backend {config.backend!r} (model {config.name!r}) is planned but not implemented "
            "in this build; implemented backends: llama_cpp, simulated"
        )
    raise ParamsError(f"Unknown backend {config.backend!r}; allowed: {', '.join(BACKENDS)}")
