"""The DARS task loaders (gpqa, math, drop) on local fixture rows in each Hub schema, and
the quarantine of bad rows one by one (every loader, old and new).

No network: every loader reads `data_files`. The Hub path (`datasets.load_dataset(<hub
id>, ...)`) is the same code with `data_files` left out."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dars.core.errors import InputDataError, ParamsError
from dars.stages import prepare
from dars.tasks import TASK_LOADERS, Candidate, files, gpqa, validate_rows

# --- helpers ---------------------------------------------------------------------------


def load(kind: str, config: dict, task: str = "t") -> list[Candidate]:
    return list(
        TASK_LOADERS.get(kind)(
            task=task, config={"kind": kind, **config}, key=f"prepare.tasks.{task}"
        )
    )


def build(kind: str, config: dict, task: str = "t") -> validate_rows.Result:
    return validate_rows.build({task: load(kind, config, task)}, max_prompt_chars=20_000)


def reasons(result: validate_rows.Result) -> list[tuple[int, str, str]]:
    return [(q["row_index"], q["reason"], q["field"]) for q in result.quarantine]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_prepare(tmp_path: Path, tasks: dict, **section) -> dict:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"prepare": {"tasks": tasks, **section}}))
    return prepare.run(
        params_path=params,
        out=tmp_path / "queries.parquet",
        quarantine_out=tmp_path / "quarantine.parquet",
        stats_out=tmp_path / "prepare.json",
    )


# --- GPQA ------------------------------------------------------------------------------


def gpqa_row(i: int, **change) -> dict:
    row = {
        "Question": f"Which particle is number {i}?",
        "Correct Answer": f" right {i} ",
        "Incorrect Answer 1": f"wrong one {i}",
        "Incorrect Answer 2": f"wrong two {i}\n",
        "Incorrect Answer 3": f"wrong three {i}",
        "Record ID": f"rec{i:03d}",
        "High-level domain": ["Physics", "Chemistry", "Biology"][i % 3],
        "Subdomain": "Quantum Mechanics",
        "Explanation": "because",
    }
    return {**row, **change}


@pytest.fixture
def gpqa_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "gpqa.jsonl", [gpqa_row(i) for i in range(40)])


def test_gpqa_lists_shuffled_options_and_references_the_correct_letter(gpqa_file: Path) -> None:
    rows = load("gpqa", {"data_files": str(gpqa_file)})
    assert len(rows) == 40
    for i, c in enumerate(rows):
        assert c.reject is None and c.grader == "choice" and c.source_id == f"rec{i:03d}"
        question, options = c.prompt.split("\n\n")
        assert question == f"Which particle is number {i}?"
        lines = options.split("\n")
        assert [ln[:4] for ln in lines] == ["(A) ", "(B) ", "(C) ", "(D) "]
        texts = [ln[4:] for ln in lines]
        assert sorted(texts) == sorted(
            [f"right {i}", f"wrong one {i}", f"wrong two {i}", f"wrong three {i}"]
        )
        assert texts["ABCD".index(c.reference)] == f"right {i}"
        assert c.metadata["source_id"] == f"rec{i:03d}"
        assert c.metadata["source"] == "Idavidrein/gpqa" and c.metadata["license"] == "CC-BY-4.0"
        assert c.metadata["domain"] == ["Physics", "Chemistry", "Biology"][i % 3]
    letters = Counter(c.reference for c in rows)
    assert set(letters) == set("ABCD") and min(letters.values()) >= 4, letters


def test_gpqa_shuffle_depends_on_seed_and_record_id_only(gpqa_file: Path, tmp_path: Path) -> None:
    first = {c.source_id: c.prompt for c in load("gpqa", {"data_files": str(gpqa_file)})}
    again = {c.source_id: c.prompt for c in load("gpqa", {"data_files": str(gpqa_file)})}
    assert first == again
    other = {c.source_id: c.prompt for c in load("gpqa", {"data_files": str(gpqa_file), "seed": 1})}
    assert sum(first[k] != other[k] for k in first) >= 20
    # the same record in another file, at another position, among other rows: same order
    reordered = write_jsonl(tmp_path / "rev.jsonl", [gpqa_row(i) for i in reversed(range(40))])
    sampled = load("gpqa", {"data_files": str(reordered), "n": 7, "seed": 0})
    assert len(sampled) == 7
    for c in sampled:
        assert c.prompt == first[c.source_id]


def test_gpqa_reads_parquet_in_the_hub_schema(gpqa_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "gpqa.parquet"
    pq.write_table(pa.Table.from_pylist([gpqa_row(i) for i in range(40)]), path)
    cache = str(tmp_path / "cache")
    from_parquet = load("gpqa", {"data_files": str(path), "cache_dir": cache})
    from_json = load("gpqa", {"data_files": str(gpqa_file)})
    assert [(c.prompt, c.reference) for c in from_parquet] == [
        (c.prompt, c.reference) for c in from_json
    ]


def test_gpqa_bad_rows_are_quarantined_one_by_one(tmp_path: Path) -> None:
    rows = [gpqa_row(i) for i in range(6)]
    rows[1] = gpqa_row(1, **{"Incorrect Answer 2": None})
    rows[2] = gpqa_row(2, **{"Incorrect Answer 3": "right 2"})  # same text as the correct one
    rows[3] = gpqa_row(3, **{"Record ID": ""})
    rows[4] = gpqa_row(4, Question="Which one?\x00")
    path = write_jsonl(tmp_path / "gpqa.jsonl", rows)
    result = build("gpqa", {"data_files": str(path)})
    assert reasons(result) == [
        (1, "missing_field", "Incorrect Answer 2"),
        (2, "duplicate_options", "answers"),
        (3, "missing_field", "Record ID"),
        (4, "nul_byte", "prompt"),
    ]
    assert [json.loads(q["metadata"])["source_id"] for q in result.queries] == ["rec000", "rec005"]


def test_gpqa_settings_are_checked() -> None:
    with pytest.raises(ParamsError, match="Did you mean 'seed'"):
        load("gpqa", {"sed": 1})
    with pytest.raises(ParamsError, match="n"):
        load("gpqa", {"n": 0, "data_files": "x.jsonl"})
    with pytest.raises(ParamsError, match="format is not known"):
        load("gpqa", {"data_files": "rows.csv"})
    with pytest.raises(InputDataError, match="does not exist"):
        load("gpqa", {"data_files": "/nonexistent/gpqa.jsonl"})


def test_gpqa_shuffle_is_pinned() -> None:
    # A change to the shuffle changes every published reference: it must be deliberate
    # (bump gpqa.SHUFFLE_VERSION and these values together).
    assert gpqa.shuffle(["c", "w1", "w2", "w3"], seed=0, record_id="recABC") == (
        ["w1", "w2", "c", "w3"],
        "C",
    )
    letters = [gpqa.shuffle(["c", "1", "2", "3"], seed=0, record_id=f"r{i}")[1] for i in range(8)]
    assert letters == ["B", "D", "B", "A", "C", "B", "A", "A"]
    # the order is a function of the position only, not of the option texts
    assert letters == [
        gpqa.shuffle(["c", "x", "y", "z"], seed=0, record_id=f"r{i}")[1] for i in range(8)
    ]


# --- MATH-500 --------------------------------------------------------------------------

MATH_ROWS = [
    {
        "problem": "What is $1/2 + 0$?",
        "solution": "It is $\\boxed{\\frac{1}{2}}$.",
        "answer": "\\frac{1}{2}",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "test/algebra/1.json",
    },
    {
        "problem": "Simplify $\\sqrt{12}$.",
        "solution": "First \\boxed{12}, no: $\\sqrt{12} = \\boxed{2\\sqrt{3}}$.",
        "answer": "",
        "subject": "Prealgebra",
        "level": 2,
        "unique_id": "test/prealgebra/2.json",
    },
    {
        "problem": "No answer anywhere.",
        "solution": "We are done.",
        "answer": None,
        "subject": "Geometry",
        "level": 3,
        "unique_id": "test/geometry/3.json",
    },
    {
        "problem": "Find the interval.",
        "solution": "\\boxed{[0,1)}",
        "answer": "[0,1)",
        "subject": "Intermediate Algebra",
        "level": 5,
        "unique_id": "test/intermediate_algebra/4.json",
    },
    {
        "problem": None,
        "solution": "\\boxed{1}",
        "answer": "1",
        "subject": "Algebra",
        "level": 1,
        "unique_id": "test/algebra/5.json",
    },
]


def test_math_reference_is_the_answer_or_the_last_boxed_of_the_solution(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
    rows = load("math", {"data_files": str(path)})
    assert [c.reference for c in rows[:2]] == ["\\frac{1}{2}", "2\\sqrt{3}"]
    assert rows[0].metadata["reference_from"] == "answer"
    assert rows[1].metadata["reference_from"] == "solution_boxed"
    assert rows[0].metadata["subject"] == "Algebra" and rows[0].metadata["level"] == 1
    assert rows[0].metadata["source_id"] == "test/algebra/1.json"
    assert rows[0].metadata["source"] == "HuggingFaceH4/MATH-500"
    assert rows[0].metadata["license"] == "MIT"
    assert all(c.grader == "math" for c in rows)
    result = validate_rows.build({"math": rows}, max_prompt_chars=20_000)
    assert reasons(result) == [(2, "missing_field", "answer"), (4, "missing_field", "problem")]
    assert [q["reference"] for q in result.queries] == ["\\frac{1}{2}", "2\\sqrt{3}", "[0,1)"]


def test_math_sample_is_seeded_and_stratified_by_subject(tmp_path: Path) -> None:
    rows = [
        {**MATH_ROWS[0], "unique_id": f"u{i}", "subject": "Algebra" if i < 30 else "Geometry"}
        for i in range(40)
    ]
    path = write_jsonl(tmp_path / "math.jsonl", rows)
    a = load("math", {"data_files": str(path), "n": 8, "seed": 3})
    b = load("math", {"data_files": str(path), "n": 8, "seed": 3})
    c = load("math", {"data_files": str(path), "n": 8, "seed": 4})
    assert [x.source_id for x in a] == [x.source_id for x in b]
    assert [x.source_id for x in a] != [x.source_id for x in c]
    assert Counter(x.metadata["subject"] for x in a) == {"Algebra": 6, "Geometry": 2}
    with pytest.raises(ParamsError, match="more than the 40 source rows"):
        load("math", {"data_files": str(path), "n": 41})


# --- DROP ------------------------------------------------------------------------------


def drop_row(i: int, kind: str) -> dict:
    spans, types = {
        "number": (["23"], ["number"]),
        "date": (["1 September 2012"], ["date"]),
        "span": (["Chaz Schilens"], ["span"]),
        "spans": (["Chaz Schilens", "JaMarcus Russell"], ["span", "span"]),
    }[kind]
    return {
        "section_id": f"nfl_{i // 4}",
        "query_id": f"q{i:03d}",
        "passage": f"Passage {i}. The Raiders scored.",
        "question": f"Question {i}?",
        "answers_spans": {"spans": spans, "types": types},
    }


@pytest.fixture
def drop_file(tmp_path: Path) -> Path:
    kinds = ["number"] * 20 + ["span"] * 10 + ["spans"] * 6 + ["date"] * 4
    return write_jsonl(tmp_path / "drop.jsonl", [drop_row(i, k) for i, k in enumerate(kinds)])


def test_drop_prompt_is_passage_then_question_and_reference_all_gold_spans(
    drop_file: Path,
) -> None:
    rows = load("drop", {"data_files": str(drop_file)})
    assert len(rows) == 40
    c = rows[30]
    assert c.prompt == "Passage 30. The Raiders scored.\n\nQuestion: Question 30?"
    assert json.loads(c.reference) == {
        "spans": ["Chaz Schilens", "JaMarcus Russell"],
        "types": ["span", "span"],
    }
    assert c.grader == "f1" and c.source_id == "q030"
    assert c.metadata["source_id"] == "q030" and c.metadata["section_id"] == "nfl_7"
    assert c.metadata["source"] == "ucinlp/drop" and c.metadata["license"] == "CC-BY-SA-4.0"
    assert c.metadata["answer_type"] == "spans"


def test_drop_n_draws_a_seeded_sample_stratified_by_answer_type(drop_file: Path) -> None:
    a = load("drop", {"data_files": str(drop_file), "n": 20, "seed": 0})
    assert Counter(c.metadata["answer_type"] for c in a) == {
        "number": 10,
        "span": 5,
        "spans": 3,
        "date": 2,
    }
    assert [c.row_index for c in a] == sorted(c.row_index for c in a)  # source order
    b = load("drop", {"data_files": str(drop_file), "n": 20, "seed": 0})
    other = load("drop", {"data_files": str(drop_file), "n": 20, "seed": 1})
    assert [c.source_id for c in a] == [c.source_id for c in b]
    assert [c.source_id for c in a] != [c.source_id for c in other]


def test_drop_bad_rows_are_quarantined_one_by_one(tmp_path: Path) -> None:
    rows = [drop_row(i, "number") for i in range(5)]
    rows[1]["answers_spans"] = {"spans": ["", " "], "types": ["span", "span"]}
    rows[2]["answers_spans"] = {"spans": "23", "types": ["number"]}
    rows[3]["passage"] = None
    path = write_jsonl(tmp_path / "drop.jsonl", rows)
    result = build("drop", {"data_files": str(path)})
    assert reasons(result) == [
        (1, "empty_reference", "answers_spans"),
        (2, "wrong_type", "answers_spans"),
        (3, "missing_field", "passage"),
    ]
    assert len(result.queries) == 2


def test_stratified_sample_allocates_by_largest_remainder() -> None:
    strata = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    got = files.sample_indices(strata, n=5, seed=0, salt="t", key="k")
    # quotas 2.5, 1.5, 1.0: the one seat left goes to the tied remainders' first name, a
    assert Counter(strata[i] for i in got) == {"a": 3, "b": 1, "c": 1}
    assert len(got) == 5 and got == sorted(got)
    assert files.sample_indices(strata, n=None, seed=0, salt="t", key="k") == list(range(10))


# --- quarantine gaps (every loader) ------------------------------------------------------


def numeric_task(path: Path, **extra) -> dict:
    return {
        "kind": "huggingface",
        "path": "json",
        "data_files": str(path),
        "source": "test/local",
        "fields": {"id": "uid", "prompt": "question", "reference": "answer"},
        "grader": "numeric",
        **extra,
    }


def fifty_two_rows() -> list[dict]:
    rows = [{"uid": f"r{i}", "question": f"What is {i} + 1?", "answer": i + 1} for i in range(52)]
    rows[17]["answer"] = [18, 19]  # one list-valued answer
    return rows


def test_one_list_valued_answer_in_jsonl_costs_one_row_not_all(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "src.jsonl", fifty_two_rows())
    stats = run_prepare(tmp_path, {"t": numeric_task(path)}, max_quarantine_fraction=0.05)
    assert stats["totals"] == {"dropped_wrong_type": 1, "kept": 51, "quarantined": 1}
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert list(
        zip(quarantine["row_index"], quarantine["reason"], quarantine["field"], strict=True)
    ) == [(17, "wrong_type", "reference")]
    queries = pd.read_parquet(tmp_path / "queries.parquet")
    assert queries["reference"].tolist()[:3] == ["1", "2", "3"]  # integers kept as their text


def test_one_list_valued_answer_in_a_json_array_file_costs_one_row(tmp_path: Path) -> None:
    path = tmp_path / "src.json"
    path.write_text(json.dumps(fifty_two_rows()))
    result = validate_rows.build(
        {"t": load("huggingface", numeric_task(path))}, max_prompt_chars=20_000
    )
    assert reasons(result) == [(17, "wrong_type", "reference")]
    assert len(result.queries) == 51


def test_lone_surrogate_bad_bytes_and_broken_json_cost_only_their_rows(tmp_path: Path) -> None:
    good = [
        json.dumps({"uid": f"r{i}", "question": f"{i} + 1?", "answer": str(i + 1)})
        for i in range(6)
    ]
    lines = [
        good[0],
        '{"uid": "s", "question": "lone \\ud800 surrogate", "answer": "1"}',  # JSON escape
        good[1],
        '{"uid": "b", "question": "caf\xe9 bytes", "answer": "1"}',  # replaced below
        good[2],
        '{"uid": "j", "question": "broken',  # not JSON
        good[3],
    ]
    data = "\n".join(lines).encode("utf-8").replace("caf\xe9".encode(), b"caf\xe9") + b"\n"
    path = tmp_path / "src.jsonl.gz"
    path.write_bytes(gzip.compress(data))
    result = validate_rows.build(
        {"t": load("huggingface", numeric_task(path))}, max_prompt_chars=20_000
    )
    assert reasons(result) == [
        (1, "invalid_utf8", "prompt"),
        (3, "invalid_utf8", "prompt"),
        (5, "invalid_json", "record"),
    ]
    assert [q["reference"] for q in result.queries] == ["1", "2", "3", "4"]
    raw = json.loads(result.quarantine[0]["raw"])
    assert raw["uid"] == "s"  # the quarantine names the row


def test_same_gaps_in_the_hub_schema_loaders(tmp_path: Path) -> None:
    rows = [gpqa_row(i) for i in range(3)]
    text = "\n".join(json.dumps(r) for r in rows)
    text = text.replace("Which particle is number 1?", "bad \\udc80 text")
    path = tmp_path / "gpqa.jsonl"
    path.write_text(text + "\n{not json\n")
    result = build("gpqa", {"data_files": str(path)})
    assert reasons(result) == [(1, "invalid_utf8", "prompt"), (3, "invalid_json", "record")]


def test_nul_byte_in_a_prompt_is_quarantined(tmp_path: Path) -> None:
    rows = [
        {"uid": "a", "question": "What is 1 + 1?", "answer": "2"},
        {"uid": "b", "question": "What is\x00 2 + 2?", "answer": "4"},
    ]
    result = build("huggingface", numeric_task(write_jsonl(tmp_path / "s.jsonl", rows)))
    assert reasons(result) == [(1, "nul_byte", "prompt")]


def test_non_numeric_reference_for_the_numeric_grader_is_quarantined(tmp_path: Path) -> None:
    rows = [
        {"uid": "a", "question": "What is 1 + 1?", "answer": "2"},
        {"uid": "b", "question": "What is 2 + 2?", "answer": "four"},
        {"uid": "c", "question": "What is 3 + 3?", "answer": "6 or 7"},
        {"uid": "d", "question": "What is 4 + 4?", "answer": 8.0},
    ]
    result = build("huggingface", numeric_task(write_jsonl(tmp_path / "s.jsonl", rows)))
    assert reasons(result) == [(1, "bad_reference", "reference"), (2, "bad_reference", "reference")]
    assert [q["reference"] for q in result.queries] == ["2", "8.0"]


def test_choice_row_without_options_is_quarantined(tmp_path: Path) -> None:
    rows = [
        {"uid": "a", "question": "Pick one.\n(A) red\n(B) blue", "answer": "B"},
        {"uid": "b", "question": "Pick the colour of the sky.", "answer": "B"},  # no options
        {"uid": "c", "question": "Pick one.\nA. red\nB. blue", "answer": "(A)"},
        {"uid": "d", "question": "Pick one.\n(A) red\n(B) blue", "answer": "D"},  # not listed
        {"uid": "e", "question": "Options: (A) 1 (B) 2 (C) 3", "answer": "C"},
    ]
    task = {**numeric_task(write_jsonl(tmp_path / "s.jsonl", rows)), "grader": "choice"}
    result = build("huggingface", task)
    assert reasons(result) == [(1, "no_options", "prompt"), (3, "bad_reference", "reference")]
    assert [q["reference"] for q in result.queries] == ["B", "(A)", "C"]


def test_humaneval_entry_point_not_defined_in_prompt_is_quarantined(tmp_path: Path) -> None:
    good = {
        "task_id": "ok/0",
        "prompt": "def add(a, b):\n    '''Add.'''\n",
        "entry_point": "add",
        "test": "def check(f):\n    assert f(1, 2) == 3\n",
        "canonical_solution": "    return a + b\n",
    }
    bad = {**good, "task_id": "bad/1", "entry_point": "plus"}
    nested = {
        **good,
        "task_id": "bad/2",
        "prompt": "class A:\n    def add(self, b):\n        pass\n",
    }
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in (good, bad, nested)))
    result = build("humaneval", {"problem_file": str(path)})
    assert reasons(result) == [
        (1, "entry_point_not_in_prompt", "entry_point"),
        (2, "entry_point_not_in_prompt", "entry_point"),
    ]
    assert [json.loads(q["metadata"])["task_id"] for q in result.queries] == ["ok/0"]


def test_json_split_without_a_mapping_is_train_only(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [{"uid": "a", "question": "1+1?", "answer": "2"}])
    with pytest.raises(InputDataError, match="split 'train' only"):
        load("huggingface", numeric_task(path, split="test"))
    rows = load("huggingface", numeric_task(path, split="test", data_files={"test": str(path)}))
    assert len(rows) == 1


def test_humaneval_broken_json_and_non_utf8_lines_cost_only_their_rows(tmp_path: Path) -> None:
    good = {
        "task_id": "ok/0",
        "prompt": "def add(a, b):\n    '''Add.'''\n",
        "entry_point": "add",
        "test": "def check(f):\n    assert f(1, 2) == 3\n",
    }
    lines = [
        json.dumps(good).encode(),
        b'{"task_id": "x", "prompt": ',  # broken JSON
        b"\xff\xfe not utf-8",  # neither UTF-8 nor JSON
        json.dumps({**good, "task_id": "bad/bytes", "prompt": "def add(a, b):\n    'PLACE'\n"})
        .encode()
        .replace(b"PLACE", b"caf\xe9"),  # JSON, but a non-UTF-8 byte in the prompt
        json.dumps({**good, "task_id": "ok/1"}).encode(),
    ]
    path = tmp_path / "he.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    result = build("humaneval", {"problem_file": str(path)})
    assert reasons(result) == [
        (1, "invalid_json", "record"),
        (2, "invalid_json", "record"),
        (3, "invalid_utf8", "prompt"),
    ]
    assert [json.loads(q["metadata"])["task_id"] for q in result.queries] == ["ok/0", "ok/1"]


def test_prepare_runs_all_three_dars_tasks_together(
    tmp_path: Path, gpqa_file: Path, drop_file: Path
) -> None:
    math_file = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
    stats = run_prepare(
        tmp_path,
        {
            "gpqa": {"kind": "gpqa", "data_files": str(gpqa_file), "n": 10},
            "math": {"kind": "math", "data_files": str(math_file)},
            "drop": {"kind": "drop", "data_files": str(drop_file), "n": 8, "seed": 0},
        },
        max_quarantine_fraction=0.2,
    )
    assert {t: c["kept"] for t, c in stats["tasks"].items()} == {"drop": 8, "gpqa": 10, "math": 3}
    queries = pd.read_parquet(tmp_path / "queries.parquet")
    assert queries["query_id"].is_unique
    assert dict(zip(queries["task"], queries["grader"], strict=False)) == {
        "gpqa": "choice",
        "math": "math",
        "drop": "f1",
    }
    for meta in map(json.loads, queries["metadata"]):
        assert {"source_id", "source", "license"} <= set(meta)


@pytest.mark.parametrize(
    ("kind", "row", "call"),
    [
        ("gpqa", gpqa_row(0), ("Idavidrein/gpqa", "gpqa_diamond", "train")),
        ("math", MATH_ROWS[0], ("HuggingFaceH4/MATH-500", None, "test")),
        ("drop", drop_row(0, "number"), ("ucinlp/drop", None, "validation")),
    ],
)
def test_without_data_files_the_hub_dataset_is_loaded(
    monkeypatch: pytest.MonkeyPatch, kind: str, row: dict, call: tuple
) -> None:
    """The network path, offline: `datasets.load_dataset` gets the Hub id, config and split
    (here it returns the fixture rows instead of downloading them)."""
    import datasets

    seen: list = []

    def fake_load_dataset(path, name=None, **kwargs):
        seen.append((path, name, kwargs))
        return datasets.Dataset.from_list([row])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows = load(kind, {"revision": "abc123"})
    assert len(rows) == 1 and rows[0].reject is None
    path, name, kwargs = seen[0]
    assert (path, name, kwargs["split"]) == call
    assert kwargs["revision"] == "abc123" and kwargs["data_files"] is None


def test_hub_errors_name_the_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'ucinlp/drop' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputDataError, match="Could not load Hugging Face dataset 'ucinlp/drop'"):
        load("drop", {})


@pytest.mark.parametrize("kind", ["gpqa", "math", "drop"])
def test_settings_are_checked_before_any_row_is_read(kind: str) -> None:
    # calling the loader checks its settings; the (missing) file is only read on iteration
    rows = TASK_LOADERS.get(kind)(
        task="t", config={"kind": kind, "data_files": "/nonexistent.jsonl"}, key="k"
    )
    with pytest.raises(InputDataError, match="does not exist"):
        list(rows)
    with pytest.raises(ParamsError, match="not a setting"):
        TASK_LOADERS.get(kind)(task="t", config={"kind": kind, "fields": {}}, key="k")


def test_gpqa_option_style_dot_lists_a_dot_options(gpqa_file: Path) -> None:
    paren = load("gpqa", {"data_files": str(gpqa_file), "n": 3})
    dot = load("gpqa", {"data_files": str(gpqa_file), "n": 3, "option_style": "dot"})
    for p, d in zip(paren, dot, strict=True):
        assert d.reference == p.reference
        assert [ln[:3] for ln in d.prompt.split("\n\n")[1].split("\n")] == [
            "A. ",
            "B. ",
            "C. ",
            "D. ",
        ]
    result = validate_rows.build({"g": dot}, max_prompt_chars=20_000)
    assert not result.quarantine  # the choice grader finds the A. options
    with pytest.raises(ParamsError, match="option_style"):
        load("gpqa", {"data_files": str(gpqa_file), "option_style": "roman"})
