"""The DARS graders: `math` (math-verify), `f1` (the official DROP metric) and the final-
answer readings of `choice`. Golden files: tests/golden/math.jsonl, tests/golden/f1.jsonl
(each expected value worked out by hand, not recorded from the code)."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dars.core.schema import GENERATIONS
from dars.graders import GradeConfig, get_grader
from dars.graders import math as math_grader
from dars.graders.f1 import get_metrics, normalize_answer
from dars.stages import grade

GOLDEN = Path(__file__).parent / "golden"
CONFIG = GradeConfig()


def golden(name: str) -> list[dict]:
    return [json.loads(line) for line in (GOLDEN / name).read_text().splitlines() if line]


MATH_CASES = golden("math.jsonl")
F1_CASES = golden("f1.jsonl")


def test_golden_files_are_large_enough_and_ids_unique() -> None:
    for cases in (MATH_CASES, F1_CASES):
        assert len(cases) >= 30
        assert len({c["id"] for c in cases}) == len(cases)


# --- math ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MATH_CASES, ids=[c["id"] for c in MATH_CASES])
def test_math_golden(case: dict) -> None:
    result = get_grader("math").grade(case["completion"], case["reference"], {}, CONFIG)
    assert (result.score, result.grade_status) == (case["score"], case["grade_status"]), result


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("so \\boxed{\\frac{a}{b}} is it", "\\frac{a}{b}"),
        ("The answer is $5$.", "5"),
        ("**Final Answer:** \\(x+1\\)", "x+1"),
        ("Final answer: 7\nThe answer is 8", "8"),
        ("nothing here", None),
    ],
)
def test_math_final_answer_extraction(completion: str, answer: str | None) -> None:
    got = math_grader.final_answer(completion)
    assert (got[0] if got else None) == answer


def test_math_grades_on_a_thread_pool_without_signal_errors() -> None:
    """The grade stage grades on threads; math-verify's alarms only work in a main thread,
    so the grader must hand the work to its helper process."""

    def one(i: int) -> float | None:
        return (
            get_grader("math").grade(f"\\boxed{{\\frac{{{i}}}{{4}}}}", str(i / 4), {}, CONFIG).score
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(one, range(9))) == [1.0] * 9
    got: list = []
    worker = threading.Thread(target=lambda: got.append(one(2)))
    worker.start()
    worker.join()
    assert got == [1.0]


def test_math_timeout_is_a_timeout_and_the_next_call_works() -> None:
    quick = dataclasses.replace(CONFIG, math_timeout_s=0.5)
    slow = get_grader("math").grade("\\boxed{9^{9^{9}}}", "1", {}, quick)
    assert (slow.score, slow.grade_status) == (0.0, "timeout")
    after = get_grader("math").grade("\\boxed{3}", "3", {}, CONFIG)  # a fresh helper
    assert (after.score, after.grade_status) == (1.0, "ok")


def test_math_helper_failure_is_our_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "worker.py"
    broken.write_text("raise SystemExit('math-verify is not installed')\n")
    monkeypatch.setattr(math_grader, "WORKER", broken)
    monkeypatch.setattr(math_grader, "_LOCAL", threading.local())
    result = get_grader("math").grade("\\boxed{3}", "3", {}, CONFIG)
    assert (result.score, result.grade_status) == (None, "error")
    assert "not installed" in (result.detail or "")


def test_math_overlong_final_answer_is_unparsable() -> None:
    result = get_grader("math").grade("\\boxed{" + "1+" * 600 + "1}", "1201", {}, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "unparsable")


# --- f1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", F1_CASES, ids=[c["id"] for c in F1_CASES])
def test_f1_golden(case: dict) -> None:
    if "predicted" in case:
        assert get_metrics(case["predicted"], case["gold"]) == (case["em"], case["f1"])
    else:
        result = get_grader("f1").grade(case["completion"], case["reference"], {}, CONFIG)
        assert (result.score, result.grade_status) == (case["score"], case["grade_status"])


@pytest.mark.parametrize(
    ("a", "b"),
    [("12.0", "12.0  "), ("12.0", "12.000"), ("12.0", "12"), ("12.0", "  1.2e1  ")],
)
def test_f1_number_normalisation_official(a: str, b: str) -> None:
    assert normalize_answer(a) == normalize_answer(b)


def test_f1_punctuation_normalisation_official() -> None:
    assert normalize_answer("12.0 persons") == "12.0 persons"
    assert normalize_answer("S.K. Singh") == "sk singh"


@pytest.mark.parametrize("reference", ["", "{not json", "[]", '{"spans": ["", " "]}', "[[1, 2]]"])
def test_f1_bad_reference_is_our_error_and_quarantined(reference: str) -> None:
    f1 = get_grader("f1")
    if reference.strip():
        result = f1.grade("Answer: 3", reference, {}, CONFIG)
        assert (result.score, result.grade_status) == (None, "error")
    assert f1.check("prompt", reference or "[]") == ("bad_reference", "reference")


def test_f1_scores_are_fractions_in_the_unit_interval() -> None:
    ref = json.dumps({"spans": ["Green bay packers"], "types": ["span"]})
    for completion in ("Answer: packers", "Answer: Green bay", "Answer: Green bay packers"):
        score = get_grader("f1").grade(completion, ref, {}, CONFIG).score
        assert score is not None and 0.0 <= score <= 1.0
    assert get_grader("f1").grade("Answer: packers", ref, {}, CONFIG).score == 0.5


# --- choice ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "letter"),
    [
        ("(C)", "C"),
        ("C)", "C"),
        ("Answer: C", "C"),
        ("The answer is (C)", "C"),
        ("Reasoning...\nFinal Answer: C", "C"),
        ("Reasoning...\n**Final Answer: (C)**", "C"),
        ("Let me check each option.\nC. 42 kelvin", "C"),
        ("Option A looks right at first.\n(C) the third one", "C"),
        ("Answer: C. Option A is tempting but wrong.", "C"),
        ("The answer is C or rather, on reflection, C", "C"),
    ],
)
def test_choice_reads_final_answer_forms(completion: str, letter: str) -> None:
    result = get_grader("choice").grade(completion, "C", {}, CONFIG)
    assert (result.score, result.parsed, result.grade_status) == (1.0, letter, "ok"), result


@pytest.mark.parametrize(
    "completion",
    [
        "Answer: A or B",
        "Final Answer: (A) and (C)",
        "The answer is A, C",
        "Answer: B/D",
    ],
)
def test_choice_two_letters_in_the_final_answer_are_unparsable(completion: str) -> None:
    result = get_grader("choice").grade(completion, "A", {}, CONFIG)
    assert (result.score, result.grade_status) == (0.0, "unparsable"), result
    assert "several letters" in (result.detail or "")


# --- the grade stage with fractional and math rows ----------------------------------------


def _gen(sample_id: int, query_id: str, completion: str) -> dict:
    return {
        "query_id": query_id,
        "variant_id": 0,
        "model": "m",
        "sample_id": sample_id,
        "seed": 1,
        "completion": completion,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "finish_reason": "stop",
        "status": "ok",
        "error": None,
        "latency_s": 0.1,
        "backend": "simulated",
        "revision": "r1",
        "cost": 0.001,
        "attempts": 1,
        "true_p": None,
    }


def test_grade_stage_keeps_fractional_f1_scores_and_grades_math_on_threads(
    tmp_path: Path,
) -> None:
    queries = pd.DataFrame(
        [
            {
                "query_id": "q-drop",
                "task": "drop",
                "prompt": "passage\n\nQuestion: who?",
                "reference": json.dumps({"spans": ["Green bay packers"], "types": ["span"]}),
                "grader": "f1",
            },
            {
                "query_id": "q-math",
                "task": "math",
                "prompt": "1/2?",
                "reference": "\\frac{1}{2}",
                "grader": "math",
            },
        ]
    ).assign(source="test", license="MIT", metadata="{}")
    gens = [
        _gen(0, "q-drop", "Answer: packers"),
        _gen(1, "q-drop", "Answer: Green bay packers"),
        _gen(2, "q-math", "\\boxed{0.5}"),
        _gen(3, "q-math", "Final Answer: 1/3"),
        _gen(4, "q-math", "\\boxed{\\frac{2}{4}}"),
    ]
    queries.to_parquet(tmp_path / "queries.parquet", index=False)
    pq.write_table(pa.Table.from_pylist(gens, schema=GENERATIONS), tmp_path / "gens.parquet")
    (tmp_path / "params.yaml").write_text("grade:\n  workers: 2\n")
    grade.run(
        params_path=tmp_path / "params.yaml",
        generations=tmp_path / "gens.parquet",
        queries=tmp_path / "queries.parquet",
        out=tmp_path / "out.parquet",
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["score"].tolist() == [0.5, 1.0, 1.0, 0.0, 1.0]
    assert out["grade_status"].tolist() == ["ok"] * 5


def test_math_and_f1_generations_are_not_cut_at_a_blank_line() -> None:
    from dars.prompting.format import stops_for

    for grader in ("math", "f1"):
        assert "\n\n" not in stops_for(grader)


def test_choice_final_option_line_beats_a_bold_letter_in_the_reasoning() -> None:
    completion = "Option **B** is a trap.\nC. 42 kelvin"
    result = get_grader("choice").grade(completion, "C", {}, CONFIG)
    assert (result.score, result.parsed) == (1.0, "C")


@pytest.mark.parametrize(
    ("grader", "completion", "reference", "score"),
    [
        ("math", "<think>maybe \\boxed{4}</think>Final Answer: 5", "5", 1.0),
        ("choice", "<think>Answer: A</think>\nAnswer: C", "C", 1.0),
        ("f1", "<think>Answer: Denver</think>Answer: Green bay packers", "Green bay packers", 1.0),
    ],
)
def test_answers_inside_a_think_block_are_not_read(
    grader: str, completion: str, reference: str, score: float
) -> None:
    assert get_grader(grader).grade(completion, reference, {}, CONFIG).score == score


@pytest.mark.parametrize("grader", ["math", "f1", "choice"])
def test_few_shot_examples_exist_and_are_graded_right(grader: str) -> None:
    """Every grader has few-shot examples (sampling renders them for every prompt), and
    each example's answer is correct by its own grader."""
    from dars.prompting.few_shot import few_shot_examples

    references = {
        "math": "\\frac{3}{4}",
        "f1": json.dumps({"spans": ["Robbie Gould", "Matt Forte"], "types": ["span", "span"]}),
        "choice": "B",
    }
    examples = few_shot_examples(grader)
    assert examples
    for _, answer in examples:
        assert get_grader(grader).grade(answer, references[grader], {}, CONFIG).score == 1.0


@pytest.mark.parametrize(
    ("grader", "reference"),
    [
        ("math", "\\frac{1}{2}"),
        ("math", "[0,1)"),
        ("math", "\\text{Evelyn}"),
        ("math", "x=5"),
        ("f1", json.dumps({"spans": ["Chaz Schilens", "JaMarcus Russell"], "types": ["span"] * 2})),
        ("f1", json.dumps({"spans": ["23"], "types": ["number"]})),
        ("f1", json.dumps([["four"], ["4"]])),
    ],
)
def test_simulated_backend_answers_are_graded_as_meant(grader: str, reference: str) -> None:
    """The simulated backend (tests, method studies) must produce answers that the real
    graders score 1 (its successes) and 0 (its failures)."""
    from dars.backends import simulated

    right = simulated._right_answer(grader, reference)
    wrong = simulated._wrong_answer(grader, reference)
    assert get_grader(grader).grade(right, reference, {}, CONFIG).score == 1.0
    assert get_grader(grader).grade(wrong, reference, {}, CONFIG).score == 0.0


def test_math_helper_that_logs_a_lot_does_not_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The helper's stderr is a file, not a pipe nobody reads: a chatty helper (warnings
    on every call) would otherwise fill the pipe and hang every math grade."""
    chatty = tmp_path / "worker.py"
    chatty.write_text(
        "import socket, sys\n"
        "from multiprocessing.connection import Connection\n"
        "conn = Connection(socket.socket(fileno=int(sys.argv[1])).detach())\n"
        "conn.send(('ready', None))\n"
        "while True:\n"
        "    try:\n"
        "        name, args = conn.recv()\n"
        "    except EOFError:\n"
        "        break\n"
        "    sys.stderr.write('warning: ' + 'x' * 100_000 + '\\n')\n"
        "    sys.stderr.flush()\n"
        "    conn.send(('ok', (True, '1', '1')))\n"
    )
    monkeypatch.setattr(math_grader, "WORKER", chatty)
    monkeypatch.setattr(math_grader, "_LOCAL", threading.local())
    quick = dataclasses.replace(CONFIG, math_timeout_s=5.0)
    for _ in range(5):  # 500 kB of stderr, far past a pipe's 64 kB buffer
        result = get_grader("math").grade("\\boxed{1}", "1", {}, quick)
        assert (result.score, result.grade_status) == (1.0, "ok")


def test_math_timeout_comes_from_params() -> None:
    from dars.core.errors import ParamsError
    from dars.graders.settings import grade_settings

    config, _ = grade_settings({"grade": {"math_verify_timeout_s": 2.5}})
    assert config.math_timeout_s == 2.5
    assert grade_settings({})[0].math_timeout_s == 10
    with pytest.raises(ParamsError, match="math_verify_timeout_s"):
        grade_settings({"grade": {"math_verify_timeout_s": 0}})
