"""Benchmark: throughput of the DARS graders as the `grade` stage runs them (a thread pool).

    .venv/bin/python benchmarks/graders.py            # about a minute on a busy 2-core box

For each grader and worker count, it grades the golden cases of tests/golden/ repeated to
`--n` completions, through `dars.stages.grade.grade_all` (the stage's own thread pool), and
records grades per second. For `math`, each run's time includes starting its helper
processes (one per grading thread, as in the stage); `math_helper_startup_s` is the
start-up of one helper measured on its own. The load average is recorded next to the
timings, because the machine is shared.

Output: benchmarks/results/graders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from dars.graders import GradeConfig
from dars.graders import math as math_grader
from dars.stages import grade

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
OUT = ROOT / "benchmarks" / "results" / "graders.json"


def cases(grader: str) -> list[dict]:
    rows = [json.loads(x) for x in (GOLDEN / f"{grader}.jsonl").read_text().splitlines() if x]
    return [r for r in rows if "completion" in r]


def frames(grader: str, n: int) -> tuple[pd.DataFrame, dict]:
    golden = cases(grader)
    by_id = {
        f"q{i}": {"query_id": f"q{i}", "prompt": "p", "reference": c["reference"], "grader": grader}
        for i, c in enumerate(golden)
    }
    gens = pd.DataFrame(
        [
            {
                "query_id": f"q{i % len(golden)}",
                "completion": golden[i % len(golden)]["completion"],
                "status": "ok",
            }
            for i in range(n)
        ]
    )
    return gens, by_id


def run(grader: str, *, n: int, workers: int) -> dict:
    gens, by_id = frames(grader, n)
    config = GradeConfig()
    start = time.perf_counter()
    results = grade.grade_all(gens, by_id, config=config, workers=workers)
    elapsed = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.grade_status] = statuses.get(r.grade_status, 0) + 1
    return {
        "grader": grader,
        "workers": workers,
        "n": n,
        "seconds": round(elapsed, 3),
        "grades_per_s": round(n / elapsed, 1),
        "grade_status": statuses,
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
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
