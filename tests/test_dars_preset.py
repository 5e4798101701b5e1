"""The DARS preset `params/dars.yaml`: it passes `dars check-params` offline, holds the
DARS setup, and its pipeline runs on fixture rows in the three Hub schemas (GPQA, MATH-500,
DROP) with the simulated backend swapped in, from `prepare` to `evaluate`.

What needs the network is not run here: the Hub datasets (the loaders read local
`data_files` in the same schema instead), the OpenRouter models (the simulated backend
stands in, keeping the preset's prompting, sampling, per-task max_tokens and prices) and
the LLM rewriter (a scripted stand-in for the HTTP backend returns paraphrases that the
real equivalence checks judge, MiniLM similarity included)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from dars.backends.base import GenResult
from dars.cli import main
from dars.core import io, schema
from dars.core.params import (
    check_all,
    get,
    load_params,
    model_config,
    model_names,
    sample_config,
    section,
)
from dars.prompting import format as prompting
from dars.prompting.rewrite_checks import load_embedder
from dars.sampling.requests import plan_requests
from dars.sampling.units import plan_units
from dars.stages import (
    aggregate,
    evaluate,
    grade,
    prepare,
    reformulate,
    sample,
    split,
    train,
    validate,
)

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "params" / "dars.yaml"
POOL = {
    "google/gemma-3-12b-it",
    "mistralai/mistral-small-3.2-24b-instruct",
    "qwen/qwen3-32b",
    "meta-llama/llama-3.3-70b-instruct",
    "google/gemini-2.5-flash-lite",
    "deepseek/deepseek-chat-v3.1",
}
BETA = {"gpqa": 0.1, "math": 0.05, "drop": 0.15}
MAX_TOKENS = {"gpqa": 768, "math": 3072, "drop": 512}


def test_check_params_passes_on_the_preset_offline(capsys, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)  # no key is needed to check
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["check-params", "--params", str(PRESET)]) == 0
    assert "OK" in capsys.readouterr().out


def test_the_preset_holds_the_dars_setup():
    p = load_params(PRESET)
    tasks = get(p, "prepare.tasks")
    assert {t: c["kind"] for t, c in tasks.items()} == {
        "gpqa": "gpqa",
        "math": "math",
        "drop": "drop",
    }
    assert tasks["drop"]["n"] == 800 and tasks["math"]["n"] is None
    split, reform = section(p, "split"), section(p, "reformulate")
    assert split.train_per_task == 200 and split.fractions["test"] == 1.0
    assert reform.k == 5 and sample_config(p).n == 5
    assert reform.method == "llm"
    assert reform.instructions == "final_answer"
    assert "min_similarity" in yaml.safe_load(PRESET.read_text())["reformulate"]["llm"]["checks"]
    agg = section(p, "aggregate")
    assert agg.lambda_cost == 0.05 and agg.beta_risk == BETA
    served = set()
    for name in model_names(p):
        cfg = model_config(p, name)
        assert cfg.backend == "openai" and cfg.endpoint == "chat" and cfg.prompting == "chat"
        assert cfg.base_url == "https://openrouter.ai/api/v1"
        assert cfg.api_key_env == "OPENROUTER_API_KEY"  # the variable's NAME, never a key
        assert (cfg.temperature, cfg.top_p) == (0.7, 0.95)
        assert cfg.max_tokens == MAX_TOKENS
        assert {t: cfg.max_tokens_for(t) for t in MAX_TOKENS} == MAX_TOKENS
        assert 0 < cfg.price_per_1k_prompt < cfg.price_per_1k_completion
        served.add(cfg.served_model)
    assert served == POOL


def test_chat_prompting_sends_the_variant_as_is_with_the_tasks_token_budget(tmp_path):
    p = load_params(PRESET)
    cfg = model_config(p, "qwen3-32b")
    msg = "Q?\n\nA. x\nB. y\n\nThink step by step, then end ... 'Final Answer: <letter>'"
    assert prompting.render(message=msg, grader="choice", prompting="chat") == msg
    assert prompting.stops_for("choice", (), prompting="chat") == ()
    queries = pd.DataFrame(
        [
            {"query_id": f"q{t}", "task": t, "grader": "exact", "reference": "r", "prompt": "p"}
            for t in MAX_TOKENS
        ]
    )
    variants = pd.DataFrame(
        [
            {"query_id": f"q{t}", "variant_id": 0, "prompt": f"ask {t}", "accepted": True}
            for t in MAX_TOKENS
        ]
    )
    units = plan_units(
        config=cfg,
        sample=sample_config(p),
        queries=queries,
        variants=variants,
        checkpoint_dir=tmp_path,
    )
    for u in units:
        assert u.prompt == f"ask {u.task}"
        reqs = plan_requests(
            config=cfg,
            sample=sample_config(p),
            query_id=u.query_id,
            variant_id=0,
            prompt=u.prompt,
            grader=u.grader,
            reference=u.reference,
            task=u.task,
        )
        assert len(reqs) == 5 and {r.max_tokens for r in reqs} == {MAX_TOKENS[u.task]}
        assert all(r.stop == () and r.temperature == 0.7 for r in reqs)


def test_the_rewriter_does_not_stop_at_a_drop_passages_blank_line():
    seen = []

    class Recorder:
        def generate_variant(self, requests):
            seen.extend(requests)
            return [GenResult("x", 1, 1, "stop", 0.0) for _ in requests]

    p = load_params(PRESET)
    llm = section(p, "reformulate").llm
    para = reformulate.LLMParaphraser(
        config=llm.model_config(),
        backend=Recorder(),
        embed=None,
        checks=llm.checks,
    )
    for grader in ("f1", "math", "choice"):
        para.draw(query={"query_id": "q", "grader": grader, "prompt": "P.\n\nQ?"}, attempts=[0])
    stops = [r.stop for r in seen]
    assert "\n\n" not in stops[0] and "\n\n" not in stops[1] and "\n\n" in stops[2]


# ------------------------------------------------------------------ fixture rows per schema

GPQA_ROWS = [
    {
        "Record ID": f"rec{i}",
        "Question": f"Which particle mediates interaction number {i} in the model?",
        "Correct Answer": f"the photon {i}",
        "Incorrect Answer 1": f"the gluon {i}",
        "Incorrect Answer 2": f"the neutrino {i}",
        "Incorrect Answer 3": f"the muon {i}",
        "High-level domain": "Physics",
        "Subdomain": "Particle physics",
    }
    for i in range(7)
]
MATH_ROWS = [
    {
        "problem": f"What is ${i} + {i + 1}$?",
        "solution": f"We add: ${i} + {i + 1} = \\boxed{{{2 * i + 1}}}$.",
        "answer": str(2 * i + 1),
        "subject": "Prealgebra",
        "level": 1 + i % 5,
        "unique_id": f"test/prealgebra/{i}.json",
    }
    for i in range(7)
]
DROP_ROWS = [
    {
        "section_id": f"sec{i}",
        "query_id": f"drop{i}",
        "passage": f"the home team scored {i + 10} points in the first half and {i} points "
        "in the second half of the game.",
        "question": "how many points did the home team score in the first half?",
        "answers_spans": {"spans": [str(i + 10)], "types": ["number"]},
    }
    for i in range(7)
]


def _write_jsonl(rows: list[dict], path: Path) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


class ScriptedRewriter:
    """Stands in for the preset's HTTP rewriter: returns the problem with its first line
    reworded (a lowercase filler the checks accept), one wording per attempt."""

    name = "scripted"
    revision = "test"
    FILLERS = (" please", " exactly", " here", " now", " precisely", " overall", " then")

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems

    def generate_variant(self, requests):
        out = []
        for r in requests:
            head, _, rest = self.problems[r.query_id].partition("\n")
            text = (
                head.rstrip("?.")
                + self.FILLERS[r.sample_id % 7]
                + "?"
                + ("\n" + rest if rest else "")
            )
            out.append(
                GenResult(
                    completion=text,
                    prompt_tokens=1,
                    completion_tokens=1,
                    finish_reason="stop",
                    latency_s=0.0,
                )
            )
        return out

    def close(self) -> None:
        return None


def simulated_preset(sources: dict[str, str]) -> dict:
    """A copy of the preset with the simulated backend swapped in for every model."""
    p = yaml.safe_load(PRESET.read_text())
    for task, path in sources.items():
        p["prepare"]["tasks"][task].update(data_files=path, n=None)
    keep = ("prompting", "temperature", "top_p", "max_tokens", "price_per_1k_prompt")
    keep += ("price_per_1k_completion",)
    for (name, m), ability in zip(
        list(p["models"].items()), (-1.5, -0.5, 0.0, 0.5, 1.0, 2.0), strict=True
    ):
        p["models"][name] = {"backend": "simulated", "sim_ability": ability} | {
            k: m[k] for k in keep
        }
    p["split"]["train_per_task"] = 4  # 7 fixture rows per dataset: 4 train, 3 test
    p["routers"]["single_shot_repeats"] = 2
    p["evaluate"]["bootstrap"] = 100
    return p


@pytest.mark.slow
def test_the_preset_pipeline_runs_on_fixture_rows_with_the_simulated_backend(tmp_path):
    sources = {
        "gpqa": _write_jsonl(GPQA_ROWS, tmp_path / "gpqa.jsonl"),
        "math": _write_jsonl(MATH_ROWS, tmp_path / "math.jsonl"),
        "drop": _write_jsonl(DROP_ROWS, tmp_path / "drop.jsonl"),
    }
    params = simulated_preset(sources)
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    check_all(load_params(params_path))
    d = tmp_path / "data"
    q_path = d / "queries.parquet"

    prepare.run(
        params_path=params_path,
        out=q_path,
        quarantine_out=d / "quarantine.parquet",
        stats_out=tmp_path / "reports" / "prepare.json",
    )
    queries = pd.read_parquet(q_path)
    assert queries.groupby("task").size().to_dict() == {"drop": 7, "gpqa": 7, "math": 7}
    assert dict(zip(queries["task"], queries["grader"], strict=True)) == {
        "gpqa": "choice",
        "math": "math",
        "drop": "f1",
    }

    # reformulate: the preset's llm method, final_answer instructions and checks
    loaded = load_params(params_path)
    rows = queries[schema.names(schema.QUERIES)].to_dict("records")
    llm = section(loaded, "reformulate").llm
    paraphraser = reformulate.LLMParaphraser(
        config=llm.model_config(),
        backend=ScriptedRewriter({r["query_id"]: r["prompt"] for r in rows}),
        embed=load_embedder(),  # the real MiniLM check (the `embed` extra, local files)
        checks=llm.checks,
        seed=llm.seed,
        attempts=llm.attempts,
    )
    variants = reformulate.reformulate(
        rows, method="llm", k=5, params=loaded, paraphraser=paraphraser
    )
    v_path = d / "variants.parquet"
    io.write_table(pa.Table.from_pylist(variants, schema=schema.VARIANTS), v_path)
    var = pd.read_parquet(v_path)
    acc = var[var["accepted"]]
    assert (acc.groupby("query_id").size() == 5).all(), var["reject_reason"].dropna().tolist()
    assert acc["prompt"].str.contains("Final Answer: <").all()
    gpqa_ids = set(queries.loc[queries["task"] == "gpqa", "query_id"])
    for text in acc.loc[acc["query_id"].isin(gpqa_ids), "prompt"]:
        assert "\nA. " in text and "\nD. " in text and "(A)" not in text
    drop_ids = set(queries.loc[queries["task"] == "drop", "query_id"])
    for text in acc.loc[acc["query_id"].isin(drop_ids), "prompt"]:
        assert text.index("points in the first half") < text.index("Question:")

    models = list(params["models"])
    for m in models:
        sample.run(
            params_path=str(params_path),
            model=m,
            queries=str(q_path),
            variants=str(v_path),
            out=str(d / "generations" / f"{m}.parquet"),
            checkpoint_dir=str(tmp_path / ".dars"),
        )
        grade.run(
            params_path=params_path,
            generations=d / "generations" / f"{m}.parquet",
            queries=q_path,
            out=d / "outcomes" / f"{m}.parquet",
        )
    report = tmp_path / "reports" / "validation.json"
    validate.run(
        params_path=params_path,
        queries=q_path,
        variants=v_path,
        generations_dir=d / "generations",
        outcomes_dir=d / "outcomes",
        report=report,
        docs_dir=tmp_path / "reports" / "data_docs",
    )
    outcomes = pd.concat(pd.read_parquet(d / "outcomes" / f"{m}.parquet") for m in models)
    assert len(outcomes) == 21 * 5 * 5 * 6
    assert outcomes["score"].notna().all()  # no engine failures in this simulation
    assert set(outcomes["grade_status"]) <= {"ok", "unparsable"}
    # the simulated truth separates the models: the graders see it
    by_model = outcomes.groupby("model")["score"].mean()
    assert by_model[models[-1]] > by_model[models[0]] + 0.2

    labels_path = d / "labels.parquet"
    aggregate.run(
        params_path=str(params_path),
        outcomes_dir=str(d / "outcomes"),
        queries=str(q_path),
        validation_report=str(report),
        out=str(labels_path),
    )
    lab = pd.read_parquet(labels_path)
    beta = lab["task"].map(BETA)
    want = lab["mean"] - 0.05 * lab["cost_norm"] - beta * lab["std"]
    assert np.allclose(lab["utility"], want)

    splits_path = d / "splits.parquet"
    split.run(params_path=str(params_path), queries=str(q_path), out=str(splits_path))
    spl = pd.read_parquet(splits_path)
    assert spl.groupby(["task", "split"]).size().to_dict() == {
        (t, s): n for t in BETA for s, n in (("test", 3), ("train", 4))
    }

    train.run(
        params_path=str(params_path),
        labels=str(labels_path),
        queries=str(q_path),
        splits=str(splits_path),
        outcomes_dir=str(d / "outcomes"),
        out_dir=str(tmp_path / "models"),
    )
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert index["beta_risk"] == BETA and index["lambda_cost"] == 0.05

    metrics_path = tmp_path / "metrics" / "routers.json"
    evaluate.run(
        params_path=str(params_path),
        labels=str(labels_path),
        queries=str(q_path),
        splits=str(splits_path),
        models_dir=str(tmp_path / "models"),
        metrics_out=str(metrics_path),
        table_out=str(tmp_path / "metrics" / "routers.md"),
        plots_dir=str(tmp_path / "plots"),
        outcomes_dir=str(d / "outcomes"),
    )
    result = json.loads(metrics_path.read_text())
    assert result["settings"]["beta_risk"] == BETA and result["n_test_queries"] == 9
    assert set(result["views"]) == {"prompt_variation", "decoding_variation"}
    for entry in result["views"].values():
        assert entry["n_test_queries"] == 9
        assert set(entry["routers"]) == set(result["routers"])
        for r in entry["routers"].values():
            assert set(r) >= {"dars", "single_shot"}
    table = (tmp_path / "metrics" / "routers.md").read_text()
    assert "DARS evaluation views" in table and "utility, decoding_variation" in table
    assert "beta = drop 0.15, gpqa 0.1, math 0.05" in table
