"""Inference backends, one file each, registered by name (`BACKENDS`, with "Did you
mean ...?" for an unknown name).

Registration is lazy: each entry is a loader that imports its backend's module when the
backend is first asked for, so importing `dars.backends` imports no engine module. The
backend modules themselves import their optional engine (llama-cpp-python, vLLM,
aiohttp) only when an engine is built, and a missing one fails there with the pip extra
to install (datatrove style). The sampling layer asks the registered class what it needs
(`BaseBackend`: grouping, seeds, progress notes) and never compares backend names.
"""

from __future__ import annotations

from collections.abc import Callable

from dars.backends.base import Backend, BaseBackend, GenRequest, GenResult, UnitGroups
from dars.core.params import ModelConfig, ParamsSource
from dars.core.registry import Registry

__all__ = [
    "BACKENDS",
    "Backend",
    "BaseBackend",
    "GenRequest",
    "GenResult",
    "UnitGroups",
    "backend_class",
    "build_backend",
]

BACKENDS: Registry[Callable[[], type[BaseBackend]]] = Registry("backend")


@BACKENDS.register("llama_cpp")
def _llama_cpp() -> type[BaseBackend]:
    from dars.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend


@BACKENDS.register("openai")
def _openai() -> type[BaseBackend]:
    from dars.backends.openai import OpenAIBackend

    return OpenAIBackend


@BACKENDS.register("vllm")
def _vllm() -> type[BaseBackend]:
    from dars.backends.vllm import VllmBackend

    return VllmBackend


@BACKENDS.register("simulated")
def _simulated() -> type[BaseBackend]:
    from dars.backends.simulated import SimulatedBackend

    return SimulatedBackend


@BACKENDS.register("imported")
def _imported() -> type[BaseBackend]:
    from dars.backends.imported import ImportedBackend

    return ImportedBackend


def backend_class(name: str) -> type[BaseBackend]:
    """The class registered under `name` (an unknown name: `UnknownNameError`)."""
    return BACKENDS.get(name)()


def build_backend(config: ModelConfig, params: ParamsSource) -> Backend:
    """The engine of one model config (`config.backend` picks the registered class)."""
    return backend_class(config.backend).from_params(config, params)
