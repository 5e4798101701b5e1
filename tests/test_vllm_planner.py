"""The vllm backend's pure request planner (no vLLM here: it is not installed on any
machine of this project), and its wiring into the sample stage through a stand-in engine
that reproduces vLLM's documented fan-out of `SamplingParams(n, seed)` into child
requests with seeds seed, seed+1, ... (vllm/v1/engine/parallel_sampling.py)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from dars.backends import build_backend
from dars.backends.base import GenRequest
from dars.backends.vllm import (
    SEED_STRIDE,
    VllmBackend,
    VllmCall,
    check_disjoint_seeds,
    engine_kwargs,
    plan_calls,
    results_from_outputs,
    sampling_kwargs,
    spaced_sample_seeds,
)
from dars.core.errors import BackendError, MissingExtraError, ParamsError
from dars.core.params import ModelConfig, SampleConfig, model_config
from dars.sampling.requests import plan_requests
from dars.sampling.uniform import sample_model

REV = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2"


def vllm_config(**kw) -> ModelConfig:
    base = dict(
        name="llama-8b",
        backend="vllm",
        model_path="meta-llama/Llama-3.1-8B-Instruct",
        revision=REV,
        max_tokens=32,
        temperature=0.7,
        top_p=0.9,
        stop=("\n\n",),
    )
    return ModelConfig(**{**base, **kw})


def variant(seeds, *, prompt="P", variant_id=0, **kw):
    return [
        GenRequest(
            query_id="q",
            variant_id=variant_id,
            sample_id=i,
            seed=s,
            prompt=prompt,
            stop=kw.get("stop", ("\n\n",)),
            max_tokens=kw.get("max_tokens", 32),
            temperature=kw.get("temperature", 0.7),
            top_p=kw.get("top_p", 0.9),
        )
        for i, s in enumerate(seeds)
    ]


# --- seeds -------------------------------------------------------------------------------


def test_spaced_seeds_are_aligned_blocks_disjoint_across_variants_and_order_free():
    seen: set[int] = set()
    for q in range(50):
        for v in range(4):
            seeds = spaced_sample_seeds(base_seed=1, model="m", query_id=f"q{q}", variant_id=v, n=8)
            assert seeds == list(range(seeds[0], seeds[0] + 8))
            assert seeds[0] % SEED_STRIDE == 0 and seeds[-1] < 2**62
            assert not seen & set(seeds)
            seen |= set(seeds)
    again = spaced_sample_seeds(base_seed=1, model="m", query_id="q3", variant_id=2, n=8)
    assert again == spaced_sample_seeds(base_seed=1, model="m", query_id="q3", variant_id=2, n=8)
    other = spaced_sample_seeds(base_seed=2, model="m", query_id="q3", variant_id=2, n=8)
    assert other != again
    with pytest.raises(ParamsError, match="1..4096"):
        spaced_sample_seeds(base_seed=1, model="m", query_id="q", variant_id=0, n=SEED_STRIDE + 1)


def test_a_variant_with_consecutive_seeds_is_one_request_with_n_samples():
    seeds = spaced_sample_seeds(base_seed=0, model="m", query_id="q", variant_id=0, n=5)
    calls = plan_calls([variant(seeds)])
    assert len(calls) == 1
    assert sampling_kwargs(calls[0]) == {
        "n": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 32,
        "stop": ["\n\n"],
        "seed": seeds[0],
    }
    assert calls[0].sample_ids == (0, 1, 2, 3, 4)


def test_the_sample_stage_plans_one_n_request_per_variant_for_vllm():
    """vLLM variants get spaced seeds: one SamplingParams(n=N, seed=first) per variant,
    whose child seeds (seed + index) are exactly the recorded per-sample seeds."""
    config = vllm_config()

    def plan(n, variant_id=2):
        return plan_requests(
            config=config,
            sample=SampleConfig(n=n, seed=7, max_retries=1),
            query_id="q1",
            variant_id=variant_id,
            prompt="Question: 2+2?\nAnswer:",
            grader="numeric",
            reference="4",
        )

    reqs = plan(4)
    calls = plan_calls([reqs, plan(4, variant_id=3)])
    assert [c.n for c in calls] == [4, 4]
    assert calls[0].seed == reqs[0].seed and calls[0].sample_ids == (0, 1, 2, 3)
    assert [calls[0].seed + k for k in range(4)] == [r.seed for r in reqs]
    check_disjoint_seeds(calls)
    # sample i's seed does not depend on N (adaptive builds draw a subset)
    assert [r.seed for r in plan(2)] == [r.seed for r in reqs[:2]]
    # other backends keep a hashed seed per sample
    other = plan_requests(
        config=ModelConfig(name="m", backend="llama_cpp"),
        sample=SampleConfig(n=4, seed=7, max_retries=1),
        query_id="q1",
        variant_id=2,
        prompt="Q",
        grader="numeric",
        reference="4",
    )
    assert [c.n for c in plan_calls([other])] == [1, 1, 1, 1]


def test_runs_split_where_seeds_or_settings_break():
    reqs = variant([10, 11, 12, 40, 41])
    calls = plan_calls([reqs, variant([7], prompt="Q")])
    assert [(c.variant, c.seed, c.n, c.sample_ids) for c in calls] == [
        (0, 10, 3, (0, 1, 2)),
        (0, 40, 2, (3, 4)),
        (1, 7, 1, (0,)),
    ]
    mixed = variant([1, 2])[:1] + variant([2], temperature=0.0)
    assert [c.n for c in plan_calls([mixed])] == [1, 1]


def test_two_variants_sharing_a_sample_seed_are_refused():
    calls = plan_calls([variant([100, 101, 102]), variant([102, 103])])
    with pytest.raises(BackendError, match="seed 102 would be used twice"):
        check_disjoint_seeds(calls)
    check_disjoint_seeds(plan_calls([variant([100, 101]), variant([102, 103])]))


# --- engine arguments and params ---------------------------------------------------------


def test_engine_kwargs_pin_the_model_enable_prefix_caching_and_pass_settings_through():
    kw = engine_kwargs(
        vllm_config(tensor_parallel_size=4, max_num_seqs=64, gpu_memory_utilization=0.8)
    )
    assert kw["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert kw["revision"] == REV and kw["tokenizer_revision"] == REV
    assert kw["enable_prefix_caching"] is True
    assert (kw["tensor_parallel_size"], kw["max_num_seqs"], kw["gpu_memory_utilization"]) == (
        4,
        64,
        0.8,
    )
    assert "max_num_seqs" not in engine_kwargs(vllm_config())  # engine default


def test_params_refuse_an_unpinned_vllm_model_and_bad_engine_settings():
    def params(**model):
        base = {"backend": "vllm", "model_path": "org/model", "revision": REV}
        return {"models": {"m": {**base, **model}}}

    assert model_config(params(), "m").revision == REV
    with pytest.raises(ParamsError, match="pinned revision"):
        model_config(params(revision="unknown"), "m")
    with pytest.raises(ParamsError, match="Hugging Face model id"):
        model_config(params(model_path="auto"), "m")
    with pytest.raises(ParamsError, match="gpu_memory_utilization"):
        model_config(params(gpu_memory_utilization=1.5), "m")
    with pytest.raises(ParamsError, match="tensor_parallel_size"):
        model_config(params(tensor_parallel_size=0), "m")
    with pytest.raises(ParamsError, match="max_num_seqs"):
        model_config(params(max_num_seqs=2.5), "m")
    with pytest.raises(ParamsError, match="timeout_s"):
        model_config(params(timeout_s=0), "m")


def test_missing_vllm_fails_at_build_time_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(MissingExtraError, match=r"dars\[vllm\]"):
        build_backend(vllm_config(), {})


# --- outputs -> rows ---------------------------------------------------------------------


def completion(index, text, n_tokens, reason):
    return SimpleNamespace(
        index=index, text=text, token_ids=list(range(n_tokens)), finish_reason=reason
    )


def test_outputs_map_back_by_completion_index_and_abort_is_an_error_row():
    variants = [variant([5, 6, 7]), variant([9], prompt="Q")]
    calls = plan_calls(variants)
    outputs = [
        SimpleNamespace(
            prompt_token_ids=[1, 2, 3],
            outputs=[
                completion(2, "c", 1, "length"),
                completion(0, "a", 4, "stop"),
                completion(1, "b", 2, "abort"),
            ],
        ),
        SimpleNamespace(prompt_token_ids=[1], outputs=[completion(0, "z", 3, "stop")]),
    ]
    res = results_from_outputs(variants=variants, calls=calls, outputs=outputs, latency_s=2.0)
    a, b, c = res[0]
    assert (a.completion, a.completion_tokens, a.finish_reason, a.prompt_tokens) == (
        "a",
        4,
        "stop",
        3,
    )
    assert (b.status, b.completion, b.finish_reason) == ("error", None, "error")
    assert "abort" in b.error
    assert (c.completion, c.finish_reason) == ("c", "length")
    assert res[1][0].completion == "z" and res[1][0].latency_s == pytest.approx(0.5)
    with pytest.raises(BackendError, match="2 outputs for 1 requests"):
        results_from_outputs(variants=variants[:1], calls=calls[:1], outputs=outputs, latency_s=0)


# --- wired into the sample stage with a stand-in engine ----------------------------------


class FakeLLM:
    """Stands in for vllm.LLM: child i of a request gets seed + i, as vLLM does."""

    calls: list[int] = []
    kwargs: dict = {}

    def __init__(self, **kwargs):
        FakeLLM.kwargs = kwargs

    def generate(self, prompts, params, *, use_tqdm):
        assert use_tqdm is False and len(prompts) == len(params)
        FakeLLM.calls.append(len(prompts))
        return [
            SimpleNamespace(
                prompt_token_ids=p.split(),
                outputs=[
                    completion(i, f"Answer: {(sp.seed + i) % 10}", 3, "stop") for i in range(sp.n)
                ],
            )
            for p, sp in zip(prompts, params, strict=True)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", mod)
    FakeLLM.calls = []
    return mod


def test_sample_stage_rows_carry_the_seeds_the_engine_used_and_the_pinned_model(
    fake_vllm, tmp_path: Path
):
    queries = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(4)],
            "task": "arith",
            "prompt": [f"What is {i} + 1?" for i in range(4)],
            "reference": [str(i + 1) for i in range(4)],
            "grader": "numeric",
            "source": "test",
            "license": "MIT",
            "metadata": "{}",
        }
    )
    variants = pd.DataFrame(
        [
            {
                "query_id": q,
                "variant_id": k,
                "prompt": f"[{k}] {p}",
                "method": "template",
                "accepted": True,
                "reject_reason": None,
            }
            for q, p in zip(queries["query_id"], queries["prompt"], strict=True)
            for k in range(2)
        ]
    )
    config = vllm_config(max_num_seqs=4)
    assert isinstance(build_backend(config, {}), VllmBackend)
    table = sample_model(
        config=config,
        sample=SampleConfig(n=3, seed=11, max_retries=0),
        params={},
        queries=queries,
        variants=variants,
        checkpoint_dir=tmp_path / "ckpt",
        progress=False,
    ).to_pandas()
    assert len(table) == 4 * 2 * 3
    assert (table["completion"] == [f"Answer: {s % 10}" for s in table["seed"]]).all()
    assert set(table["revision"]) == {f"meta-llama/Llama-3.1-8B-Instruct@{REV}"}
    assert set(table["backend"]) == {"vllm"} and set(table["status"]) == {"ok"}
    assert FakeLLM.kwargs["enable_prefix_caching"] is True
    # chunks of <= ceil(2 * max_num_seqs / n) = 3 variants: a crash loses at most one chunk
    assert max(FakeLLM.calls) <= 3 * 3 and len(FakeLLM.calls) >= 3
    assert len(list((tmp_path / "ckpt" / config.name).glob("*.parquet"))) == 8


def test_vllm_call_is_a_plain_value():
    c = VllmCall(0, "P", 2, 5, 0.7, 0.9, 8, (), (0, 1))
    assert sampling_kwargs(c)["stop"] is None and sampling_kwargs(c)["n"] == 2


# --- local folders: pinned by content hash -------------------------------------------------


def test_a_local_folder_is_pinned_by_its_content_hash(tmp_path: Path, monkeypatch):
    from dars.backends.hf_folder import content_revision

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    rev = content_revision(folder)
    assert rev.startswith("sha256-") and len(rev) == len("sha256-") + 16
    config = vllm_config(model_path=str(folder), revision=rev)
    kw = engine_kwargs(config)
    assert kw["model"] == str(folder) and kw["revision"] is None  # no Hub revision to ask
    assert kw["tokenizer_revision"] is None
    assert engine_kwargs(vllm_config())["revision"] == REV  # a Hub id keeps its commit
    (folder / "model.safetensors").write_bytes(b"other weights")
    monkeypatch.setitem(sys.modules, "vllm", None)  # refused before vLLM is even imported
    with pytest.raises(ParamsError, match=f"hashes to '{content_revision(folder)}'"):
        build_backend(config, {})
    assert content_revision(folder) != rev


def test_check_params_passes_on_the_vllm_cpu_preset_and_notes_reproducibility(capsys):
    from dars.cli import main

    preset = Path(__file__).resolve().parents[1] / "params" / "vllm-cpu.yaml"
    assert main(["check-params", "--params", str(preset)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "note: models gemma-vllm-fewshot, gemma-vllm-oneshot" in out
