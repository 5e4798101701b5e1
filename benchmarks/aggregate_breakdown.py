"""Where `dars aggregate`'s time goes on the tables of `benchmarks/tables.py`.

In one process, on an existing tables workspace (`tables.py --keep` leaves one under
`<workdir>/<size>`), measured side by side:

* `import_s`: importing the stage module (pandas, pyarrow, scipy, DuckDB), in a fresh
  subprocess;
* per outcomes file, interleaved `--repeat` times: the stage's group-by (exact DECIMAL
  level-2 sums) and the same statement with plain double sums;
* the group-by over all files in one statement under the same memory cap (the stage's
  earlier design), once;
* the rest of the stage on the per-pair table: sort and join, labels (numpy and the
  intervals) and the labels file write.

    python benchmarks/aggregate_breakdown.py --tables /tmp/dars-tables/100M

Writes benchmarks/results/aggregate_breakdown.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipeline"))
from dars.core import duck  # noqa: E402
from dars.core.io import write_table  # noqa: E402
from dars.core.params import load_params, model_names  # noqa: E402
from dars.labels import aggregate as A  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "aggregate_breakdown.json"


def timed(fn):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", required=True, help="a tables.py workspace, e.g. /tmp/x/100M")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()
    root = Path(a.tables)
    params = load_params(root / "params.yaml")
    settings = A.aggregation_settings(params)
    files = A.outcome_files(root / "outcomes", model_names(params))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    load_before = os.getloadavg()
    imp = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import dars.stages.aggregate; "
            "print(time.perf_counter() - t)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "pipeline")},
    )
    con = duck.connect()
    exact: list[float] = []
    double: list[float] = []
    for _ in range(a.repeat):
        for f in files:
            sql = A.pair_sql(duck.read_parquet([f]), A.one_model(f))
            plain = sql.replace(f"::{A.EXACT}", "")
            assert plain != sql
            exact.append(timed(lambda sql=sql: duck.arrow_table(con, sql))[0])
            double.append(timed(lambda plain=plain: duck.arrow_table(con, plain))[0])
    per_file = len(files)
    exact_total = [sum(exact[i : i + per_file]) for i in range(0, len(exact), per_file)]
    double_total = [sum(double[i : i + per_file]) for i in range(0, len(double), per_file)]
    one_sql = A.pair_sql(duck.read_parquet(files))
    one_statement_s, _ = timed(lambda: duck.arrow_table(con, one_sql))
    con.close()

    q = pq.read_table(root / "queries.parquet", columns=["query_id", "task"])
    with A.Source(files) as src:
        pairs_s, pairs = timed(lambda: A.pair_table(src, q))
    labels_s, labels = timed(lambda: A.label_table(pairs, settings=settings))
    with tempfile.TemporaryDirectory() as tmp:
        write_s, _ = timed(lambda: write_table(labels, Path(tmp) / "labels.parquet"))
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    result = {
        "command": " ".join(["python", "benchmarks/aggregate_breakdown.py", *sys.argv[1:]]),
        "commit": git.stdout.strip() or None,
        "outcome_rows": rows,
        "pairs": labels.num_rows,
        "duckdb_memory_limit": os.environ.get("DARS_DUCKDB_MEMORY", duck.DEFAULT_MEMORY),
        "import_s": round(float(imp.stdout.strip()), 2),
        "group_by_per_file_exact_s": [round(x, 2) for x in exact_total],
        "group_by_per_file_double_s": [round(x, 2) for x in double_total],
        "exact_over_double": round(statistics.mean(exact) / statistics.mean(double), 3),
        "group_by_one_statement_exact_s": round(one_statement_s, 2),
        "pair_table_s": round(pairs_s, 2),
        "labels_s": round(labels_s, 2),
        "write_labels_s": round(write_s, 2),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    Path(a.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
