"""The grade stage streams generations in record batches: the outcomes written batch by
batch (tiny batches here) equal the outcomes of one whole-file batch, row for row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dars.core.errors import InputDataError
from dars.core.schema import GENERATIONS, OUTCOMES
from dars.stages import grade

QUERIES = pd.DataFrame(
    [
        {"query_id": "q-num", "prompt": "6*7?", "reference": "42", "grader": "numeric"},
        {"query_id": "q-mc", "prompt": "pick", "reference": "B", "grader": "choice"},
        {"query_id": "q-ex", "prompt": "capital?", "reference": "Paris", "grader": "exact"},
    ]
).assign(task="t", source="test", license="MIT", metadata="{}")

ANSWERS = {
    "q-num": ["#### 42", "It is 41.", "no idea", "42.0"],
    "q-mc": ["Answer: (B)", "A", "none"],
    "q-ex": ["paris.", "Lyon"],
}


def _rows(n: int) -> list[dict]:
    rows = []
    qids = list(ANSWERS)
    for i in range(n):
        qid = qids[i % len(qids)]
        failed = i % 7 == 3
        rows.append(
            {
                "query_id": qid,
                "variant_id": i % 2,
                "model": "m",
                "sample_id": i,
                "seed": i,
                "completion": None if failed else ANSWERS[qid][i % len(ANSWERS[qid])],
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "finish_reason": "error" if failed else "stop",
                "status": "error" if failed else "ok",
                "error": "engine crashed" if failed else None,
                "latency_s": 0.1,
                "backend": "simulated",
                "revision": "r1",
                "cost": 0.001 * i,
                "attempts": 1,
                "true_p": None,
            }
        )
    return rows


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "queries": tmp_path / "queries.parquet",
        "generations": tmp_path / "gens.parquet",
        "params": tmp_path / "params.yaml",
    }
    QUERIES.to_parquet(paths["queries"], index=False)
    # several small row groups, so batches do not line up with row groups
    pq.write_table(
        pa.Table.from_pylist(_rows(53), schema=GENERATIONS), paths["generations"], row_group_size=10
    )
    paths["params"].write_text("grade:\n  workers: 2\n")
    return paths


def _grade(inputs: dict[str, Path], out: Path, batch_rows: int) -> dict[str, int]:
    return grade.run(
        params_path=inputs["params"],
        generations=inputs["generations"],
        queries=inputs["queries"],
        out=out,
        batch_rows=batch_rows,
    )


def test_tiny_batches_equal_one_batch(inputs: dict[str, Path], tmp_path: Path) -> None:
    whole = _grade(inputs, tmp_path / "whole.parquet", batch_rows=1_000_000)
    small = _grade(inputs, tmp_path / "small.parquet", batch_rows=3)
    assert whole == small
    a = pq.read_table(tmp_path / "whole.parquet")
    b = pq.read_table(tmp_path / "small.parquet")
    assert a.schema.equals(OUTCOMES) and b.schema.equals(OUTCOMES)
    assert b.num_rows == 53 and pq.ParquetFile(tmp_path / "small.parquet").num_row_groups == 18
    assert a.to_pylist() == b.to_pylist()
    rows = b.to_pylist()
    assert [r["sample_id"] for r in rows] == list(range(53))  # row order kept across batches
    assert all((r["score"] is None) == (r["status"] == "error") for r in rows)
    assert {r["grade_status"] for r in rows} == {"ok", "unparsable", "error"}
    assert whole["error"] == sum(1 for i in range(53) if i % 7 == 3)


def test_bad_row_in_a_late_batch_leaves_no_output(inputs: dict[str, Path], tmp_path: Path) -> None:
    rows = _rows(20)
    rows[16]["completion"] = None  # status ok but no text: an input error, found in batch 6
    pq.write_table(pa.Table.from_pylist(rows, schema=GENERATIONS), inputs["generations"])
    out = tmp_path / "o.parquet"
    with pytest.raises(InputDataError, match=r"null completion at row\(s\) \[16\]"):
        _grade(inputs, out, batch_rows=3)
    assert not out.exists()
    assert not list(tmp_path.glob(".o.parquet.*"))  # the temporary file is removed too
