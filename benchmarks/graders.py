"""Benchmark: throughput of the DARS graders as the `grade` stage runs them (a thread pool).

    .venv/bin/python benchmarks/graders.py            # about a minute on a busy 2-core box

For each grader and worker count, it grades the golden cases of tests/golden/ repeated to
`--n` completions, through `dars.graders.batch.grade_file` (what the `grade` stage runs: a
generations Parquet file in, an outcomes file out; a thread pool only for graders that
wait on a helper process), and records grades per second. For `math`, each run's time
includes starting its helper processes (one per grading thread, as in the stage);
`math_helper_startup_s` is the start-up of one helper measured on its own. The load
average is recorded next to the timings, because the machine is shared.

Output: benchmarks/results/graders.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dars.core.schema import GENERATIONS
from dars.graders import GradeConfig
from dars.graders import math as math_grader
from dars.graders.batch import grade_file

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
OUT = ROOT / "benchmarks" / "results" / "graders.json"


def cases(grader: str) -> list[dict]:
    rows = [json.loads(x) for x in (GOLDEN / f"{grader}.jsonl").read_text().splitlines() if x]
    return [r for r in rows if "completion" in r]


def frames(grader: str, n: int) -> tuple[pa.Table, pd.DataFrame]:
    """`n` generations cycling over the golden completions, and their queries."""
    golden = cases(grader)
    queries = pd.DataFrame(
        [
            {"query_id": f"q{i}", "prompt": "p", "reference": c["reference"], "grader": grader}
            for i, c in enumerate(golden)
        ]
    )
    gens = pa.Table.from_pylist(
        [
            {
                "query_id": f"q{i % len(golden)}",
                "variant_id": 0,
                "model": "golden",
                "sample_id": i,
                "seed": 0,
                "completion": golden[i % len(golden)]["completion"],
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "finish_reason": "stop",
                "status": "ok",
            }
            for i in range(n)
        ],
        schema=GENERATIONS,
    )
    return gens, queries


def run(grader: str, *, n: int, workers: int) -> dict:
    gens, queries = frames(grader, n)
    with tempfile.TemporaryDirectory(prefix="dars-bench-graders-") as tmp:
        pq.write_table(gens, Path(tmp) / "generations.parquet")
        start = time.perf_counter()
        statuses = grade_file(
            generations=Path(tmp) / "generations.parquet",
            queries=queries,
            queries_path="golden",
            out=Path(tmp) / "outcomes.parquet",
            config=GradeConfig(),
            workers=workers,
        )
        elapsed = time.perf_counter() - start
    return {
        "grader": grader,
        "workers": workers,
        "n": n,
        "seconds": round(elapsed, 3),
        "grades_per_s": round(n / elapsed, 1),
        "grade_status": dict(sorted(statuses.items())),
    }


def helper_startup_s() -> float:
    h = math_grader.Helper()
    start = time.perf_counter()
    h.call("parses", "1", timeout_s=60)
    elapsed = time.perf_counter() - start
    h.stop()
    return round(elapsed, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="completions per run")
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the results")
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows = [
        run(grader, n=args.n, workers=workers) for grader in ("math", "f1") for workers in (1, 2)
    ]
    result = {
        "benchmark": "benchmarks/graders.py",
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "math_helper_startup_s": helper_startup_s(),
        "runs": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
