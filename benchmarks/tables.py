"""Table stages at scale: aggregate, validate, grade and card on 1M-100M outcome rows.

Generates contract tables from a known true p (DuckDB, in chunks written straight to
Parquet under --workdir, never committed): 4 models x 5 variants x 5 samples per query;
half of the (query, model) pairs have p exactly 0 or 1, the rest a base p with a
per-variant effect on the logit scale; 1% of generations fail (status error, score null).

Each stage runs as its own subprocess (`python -m dars <stage> ...`) under a small
wrapper that reports wall seconds and the peak RSS of the stage process
(getrusage(RUSAGE_CHILDREN).ru_maxrss of the wrapper, which only ever runs that one
child). In the same run, the one-statement DuckDB reference for aggregate (the same
two-level group-by over the same Parquet files, materialised in DuckDB) is measured the
same way, --repeat times interleaved with the stage; `throughput_vs_reference` = the
median reference seconds / our median seconds.

The interval coverage of the true p is read from the aggregate stage's labels: overall,
at p in {0, 1}, and the share of intervals that contain the label's own mean.

    python benchmarks/tables.py --sizes 1M,20M --workdir /tmp/dars-tables
    python benchmarks/tables.py --sizes 100M --stages aggregate,validate,card --workdir ...

Results are merged by size and stage into benchmarks/results/tables.json (a later run of
some stages of one size replaces those stages' entries; `stages_from_earlier_run` names
the commit of the ones kept), with os.getloadavg() before and after every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from dars.core import duck  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "tables.json"
SIZES = {"1M": 1_000_000, "20M": 20_000_000, "100M": 100_000_000}
MODELS = 4
K = 5  # variants per query
N = 5  # samples per variant
FAIL_RATE = 0.01
BOUNDARY_SHARE = 0.5  # pairs with p exactly 0 or 1 (half each)
STAGES = ("aggregate", "validate", "grade", "card")
TARGETS = {
    "aggregate_peak_rss_gb": 4.0,
    "aggregate_throughput_vs_reference": 0.67,
    "validate_peak_rss_gb": 6.0,
    "grade_peak_rss_gb": 6.0,
    "coverage": [0.93, 0.99],
}

# The reference: one DuckDB statement, the same two-level group-by as the aggregate stage.
REFERENCE_SQL = """
CREATE TABLE pairs AS
SELECT query_id, model, sum(n_i) AS n, sum(s_i) / nullif(sum(n_i), 0) AS mean,
    sum(ss_i - s_i * s_i / n_i) FILTER (WHERE n_i > 0) AS sw,
    sum(s_i * s_i / n_i) FILTER (WHERE n_i > 0) AS sq, count(*) AS n_variants,
    sum(e_i) AS n_error, sum(c_i) / nullif(sum(cn_i), 0) AS mean_cost
FROM (
    SELECT query_id, model, variant_id, count(score) AS n_i, coalesce(sum(score), 0) AS s_i,
        coalesce(sum(score * score), 0) AS ss_i, count(*) FILTER (WHERE status = 'error') AS e_i,
        sum(cost) FILTER (WHERE score IS NOT NULL) AS c_i,
        count(cost) FILTER (WHERE score IS NOT NULL) AS cn_i
    FROM read_parquet({files})
    GROUP BY query_id, model, variant_id
)
GROUP BY query_id, model
"""

# Rows of one model's outcomes, queries [lo, hi); hash-based draws, so deterministic.
ROWS_SQL = """
WITH b AS (
    SELECT i // {kn} AS qi, (i % {kn}) // {n} AS v, i % {n} AS s
    FROM range({lo} * {kn}, {hi} * {kn}) t(i)
), u AS (
    SELECT *,
        (hash(qi, {m}, 1) % 1000000) / 1e6 AS u_kind,
        (hash(qi, {m}, 2) % 1000000) / 1e6 AS u_base,
        (hash(qi, {m}, v, 3) % 1000000) / 1e6 AS u_eff,
        (hash(qi, {m}, v, s, 4) % 1000000) / 1e6 AS u_draw,
        (hash(qi, {m}, v, s, 5) % 1000000) / 1e6 AS u_fail
    FROM b
), p AS (
    SELECT *,
        CASE WHEN u_kind < {half} THEN 0.0
             WHEN u_kind < {boundary} THEN 1.0
             ELSE 1 / (1 + exp(-(ln((0.02 + 0.96 * u_base) / (1 - (0.02 + 0.96 * u_base)))
                                  + 2 * (u_eff - 0.5))))
        END AS p_v,
        u_fail < {fail} AS failed
    FROM u
)
SELECT
    'q' || lpad(qi::VARCHAR, 8, '0') AS query_id,
    v::BIGINT AS variant_id,
    'm{m}' AS model,
    s::BIGINT AS sample_id,
    (hash(qi, {m}, v, s, 6) % 2147483647)::BIGINT AS seed,
    CASE WHEN failed THEN NULL
         ELSE '#### ' || ((qi % 997) + CASE WHEN u_draw < p_v THEN 0 ELSE 1 END)::VARCHAR
    END AS completion,
    20::BIGINT AS prompt_tokens,
    CASE WHEN failed THEN 0 ELSE 5 END::BIGINT AS completion_tokens,
    CASE WHEN failed THEN 'error' ELSE 'stop' END AS finish_reason,
    CASE WHEN failed THEN 'error' ELSE 'ok' END AS status,
    CASE WHEN failed THEN 'simulated engine timeout' END AS error,
    0.1::DOUBLE AS latency_s,
    'simulated' AS backend,
    'bench-1' AS revision,
    (0.001 * ({m} + 1))::DOUBLE AS cost,
    1::BIGINT AS attempts,
    p_v::DOUBLE AS true_p{grade}
FROM p
ORDER BY qi, v, s
"""

GRADE_COLUMNS = """,
    CASE WHEN failed THEN NULL WHEN u_draw < p_v THEN 1.0 ELSE 0.0 END::DOUBLE AS score,
    CASE WHEN failed THEN NULL
         ELSE ((qi % 997) + CASE WHEN u_draw < p_v THEN 0 ELSE 1 END)::VARCHAR END AS parsed,
    CASE WHEN failed THEN 'error' ELSE 'ok' END AS grade_status,
    CASE WHEN failed THEN 'generation failed; not graded' END AS grade_detail"""

GRADE_NAMES = ("score", "parsed", "grade_status", "grade_detail")

# Measure one subprocess: wall time and the peak RSS of that child only.
WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[2:])\n"
    "dt = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(json.dumps({'rc': r.returncode, 'seconds': dt, "
    "'peak_rss_kb': rss}))\n"
)


def parse_size(name: str) -> int:
    """'1M', '20M', '100M' or any '<number>k' / '<number>M' (smoke runs)."""
    if name in SIZES:
        return SIZES[name]
    scale = {"k": 1_000, "M": 1_000_000}[name[-1]]
    return int(float(name[:-1]) * scale)


def queries_for(rows: int) -> int:
    return rows // (MODELS * K * N)


def generate(root: Path, rows: int, *, chunk_queries: int = 200_000) -> dict[str, Any]:
    """Write the tables for `rows` outcome rows under `root` (DuckDB, chunked)."""
    nq = queries_for(rows)
    t0 = time.perf_counter()
    for sub in ("generations", "outcomes", "models"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET memory_limit = '2GB'")
    qid = "'q' || lpad(i::VARCHAR, 8, '0')"
    con.execute(
        f"""COPY (SELECT {qid} AS query_id, 'arith' AS task,
            'What is ' || (i % 997)::VARCHAR || '?' AS prompt, (i % 997)::VARCHAR AS reference,
            'numeric' AS grader, 'bench' AS source, 'mit' AS license, '{{}}' AS metadata
            FROM range({nq}) t(i) ORDER BY i) TO '{root / "queries.parquet"}' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (SELECT {qid} AS query_id, v::BIGINT AS variant_id,
            'What is ' || (i % 997)::VARCHAR || '? (' || v::VARCHAR || ')' AS prompt,
            CASE WHEN v = 0 THEN 'original' ELSE 'template' END AS method,
            true AS accepted, NULL::VARCHAR AS reject_reason
            FROM range({nq}) t(i), range({K}) r(v) ORDER BY i, v)
            TO '{root / "variants.parquet"}' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (SELECT {qid} AS query_id, 'arith' AS task,
            CASE WHEN hash(i, 7) % 10 < 6 THEN 'train'
                 WHEN hash(i, 7) % 10 < 8 THEN 'validation' ELSE 'test' END AS split
            FROM range({nq}) t(i) ORDER BY i) TO '{root / "splits.parquet"}' (FORMAT parquet)"""
    )
    fmt = dict(
        kn=K * N,
        n=N,
        half=BOUNDARY_SHARE / 2,
        boundary=BOUNDARY_SHARE,
        fail=FAIL_RATE,
    )
    for m in range(MODELS):
        target = root / "outcomes" / f"m{m}.parquet"
        writer = None
        for lo in range(0, nq, chunk_queries):
            hi = min(nq, lo + chunk_queries)
            sql = ROWS_SQL.format(m=m, lo=lo, hi=hi, grade=GRADE_COLUMNS, **fmt)
            for batch in duck.record_batches(con, sql, 1_000_000):
                if writer is None:
                    writer = pq.ParquetWriter(target, batch.schema)
                writer.write_batch(batch)
        if writer is None:
            raise RuntimeError(f"the outcomes query of model m{m} returned no rows")
        writer.close()
        # the generations are the outcomes without the grade columns
        gen_cols = ", ".join(c for c in writer.schema.names if c not in GRADE_NAMES)
        con.execute(
            f"COPY (SELECT {gen_cols} FROM read_parquet('{target}')) "
            f"TO '{root / 'generations' / f'm{m}.parquet'}' (FORMAT parquet)"
        )
    con.close()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = {
        f"m{m}": {"backend": "simulated", "price_per_1k_prompt": 0.0} for m in range(MODELS)
    }
    params["sample"]["n"] = N
    params["reformulate"]["k"] = K
    params["sampling"] = {**(params.get("sampling") or {}), "strategy": "uniform"}
    params["validate"] = {**(params.get("validate") or {}), "max_error_rate": 0.2}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _router(root / "models" / "ridge-dars.skops")
    shutil.copyfile(REPO / "metrics" / "routers.json", root / "routers.json")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return {"seconds": time.perf_counter() - t0, "queries": nq, "parquet_bytes": size}


def _router(path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import Ridge

    sio.dump(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]), path)


def measure(cmd: list[str], *, log: Path) -> dict[str, Any]:
    """Run `cmd` under the wrapper; wall seconds, peak RSS (GB), load before and after."""
    out = Path(tempfile.mkstemp(prefix="dars-measure-", suffix=".json")[1])
    load_before = os.getloadavg()
    with log.open("w") as fh:
        subprocess.run(
            [sys.executable, "-c", WRAPPER, str(out), *cmd],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO / "pipeline"), "TQDM_DISABLE": "1"},
            check=False,
        )
    res = json.loads(out.read_text())
    out.unlink()
    return {
        "rc": res["rc"],
        "seconds": round(res["seconds"], 2),
        "peak_rss_gb": round(res["peak_rss_kb"] / 1024**2, 3),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "log_tail": log.read_text()[-600:] if res["rc"] else "",
    }


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (its own RSS and load), with the largest peak RSS
    of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    mid["peak_rss_gb"] = max(r["peak_rss_gb"] for r in runs)
    mid["rc"] = max(r["rc"] for r in runs)
    return mid


def dars(root: Path, stage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "dars", stage, "--params", str(root / "params.yaml"), *args]


def coverage(labels: Path) -> dict[str, Any]:
    """Interval coverage of the true p (the mean of the drawn variants' p) per interval
    the labels carry: `ci_low/ci_high` and, where present, `ci_low_fixed/ci_high_fixed`."""
    names = pq.read_schema(labels).names
    out: dict[str, Any] = {}
    for suffix in ("", "_fixed"):
        lo, hi = f"ci_low{suffix}", f"ci_high{suffix}"
        if lo not in names:
            continue
        con = duckdb.connect()
        row = con.execute(
            f"""
            SELECT count(*) FILTER (WHERE {lo} IS NOT NULL),
                avg((true_p BETWEEN {lo} AND {hi})::DOUBLE) FILTER (WHERE {lo} IS NOT NULL),
                count(*) FILTER (WHERE {lo} IS NOT NULL AND true_p IN (0, 1)),
                avg((true_p BETWEEN {lo} AND {hi})::DOUBLE)
                    FILTER (WHERE {lo} IS NOT NULL AND true_p IN (0, 1)),
                avg((true_p BETWEEN {lo} AND {hi})::DOUBLE)
                    FILTER (WHERE {lo} IS NOT NULL AND true_p NOT IN (0, 1)),
                avg((mean BETWEEN {lo} AND {hi})::DOUBLE) FILTER (WHERE {lo} IS NOT NULL),
                count(*) FILTER (WHERE {lo} IS NULL)
            FROM read_parquet('{labels}')
            """
        ).fetchall()[0]
        con.close()
        key = "intervals" if not suffix else "intervals_fixed"
        out[key] = {
            "columns": [lo, hi],
            "labels_with_interval": row[0],
            "coverage": row[1],
            "labels_at_boundary": row[2],
            "coverage_at_boundary": row[3],
            "coverage_interior": row[4],
            "contains_mean": row[5],
            "labels_without_interval": row[6],
        }
    return out


def run_size(
    name: str,
    rows: int,
    *,
    workdir: Path,
    stages: list[str],
    grade_rows: int,
    keep: bool,
    repeat: int = 1,
) -> dict:
    root = workdir / name
    done = root / "generated.json"  # written last: the tables under root are complete
    out: dict[str, Any] = {"rows": queries_for(rows) * MODELS * K * N, "stages": {}}
    if keep and done.exists() and json.loads(done.read_text())["queries"] == queries_for(rows):
        print(f"[{name}] reusing the tables under {root}", flush=True)
        out["generate"] = json.loads(done.read_text()) | {"reused": True}
        for stale in ("labels.parquet", "graded.parquet", "grade_input.parquet"):
            (root / stale).unlink(missing_ok=True)
        shutil.rmtree(root / "reports", ignore_errors=True)
        shutil.rmtree(root / "publish", ignore_errors=True)
    else:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        print(f"[{name}] generating ...", flush=True)
        out["generate"] = generate(root, rows)
        done.write_text(json.dumps(out["generate"]))
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    p = {k: str(root / k) for k in ("queries.parquet", "variants.parquet", "splits.parquet")}
    files = [str(root / "outcomes" / f"m{m}.parquet") for m in range(MODELS)]
    report = root / "reports" / "validation.json"

    if "validate" in stages:
        print(f"[{name}] validate ...", flush=True)
        out["stages"]["validate"] = measure(
            dars(
                root,
                "validate",
                "--queries",
                p["queries.parquet"],
                "--variants",
                p["variants.parquet"],
                "--generations",
                str(root / "generations"),
                "--outcomes",
                str(root / "outcomes"),
                "--report",
                str(report),
                "--docs",
                str(root / "reports" / "docs"),
            ),
            log=logs / "validate.log",
        )
        if report.exists():
            out["stages"]["validate"]["success"] = json.loads(report.read_text())["success"]
    if not report.exists():  # aggregate and card need a passing report
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({"success": True, "tables": {}, "model_counts": {}}))

    labels = root / "labels.parquet"
    if "aggregate" in stages or "card" in stages:
        cmd = dars(
            root,
            "aggregate",
            "--outcomes",
            str(root / "outcomes"),
            "--queries",
            p["queries.parquet"],
            "--validation",
            str(report),
            "--out",
            str(labels),
        )
        ref_sql = REFERENCE_SQL.format(files="[" + ", ".join(f"'{f}'" for f in files) + "]")
        ref_cmd = [sys.executable, "-c", f"import duckdb; duckdb.connect().execute({ref_sql!r})"]
        # interleaved repeats: this machine's speed drifts by tens of percent between runs
        ours, refs = [], []
        for i in range(repeat):
            print(f"[{name}] aggregate and reference, run {i + 1}/{repeat} ...", flush=True)
            ours.append(measure(cmd, log=logs / "aggregate.log"))
            refs.append(measure(ref_cmd, log=logs / "reference.log"))
        agg, ref = _median_run(ours), _median_run(refs)
        agg["runs_seconds"] = [r["seconds"] for r in ours]
        ref["runs_seconds"] = [r["seconds"] for r in refs]
        agg["reference"] = ref
        agg["throughput_vs_reference"] = round(ref["seconds"] / agg["seconds"], 3)
        if labels.exists():
            agg |= coverage(labels)
        out["stages"]["aggregate"] = agg

    if "grade" in stages:
        gens = root / "generations" / "m0.parquet"
        n = pq.ParquetFile(gens).metadata.num_rows
        if grade_rows and n > grade_rows:  # the first grade_rows rows of model m0
            sub = root / "grade_input.parquet"
            con = duckdb.connect()
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{gens}') LIMIT {grade_rows}) TO '{sub}' "
                "(FORMAT parquet)"
            )
            con.close()
            gens, n = sub, grade_rows
        print(f"[{name}] grade ({n} rows) ...", flush=True)
        g = measure(
            dars(
                root,
                "grade",
                "--generations",
                str(gens),
                "--queries",
                p["queries.parquet"],
                "--out",
                str(root / "graded.parquet"),
            ),
            log=logs / "grade.log",
        )
        g["rows"] = n
        out["stages"]["grade"] = g

    if "card" in stages:
        print(f"[{name}] card ...", flush=True)
        out["stages"]["card"] = measure(
            dars(
                root,
                "card",
                "--template",
                str(REPO / "dataset_card.md"),
                "--queries",
                p["queries.parquet"],
                "--labels",
                str(labels),
                "--splits",
                p["splits.parquet"],
                "--variants",
                p["variants.parquet"],
                "--generations",
                str(root / "generations"),
                "--outcomes",
                str(root / "outcomes"),
                "--validation",
                str(report),
                "--models-dir",
                str(root / "models"),
                "--router-metrics",
                str(root / "routers.json"),
                "--lock",
                str(root / "dvc.lock"),
                "--out",
                str(root / "publish"),
            ),
            log=logs / "card.log",
        )
        pub = root / "publish"
        if pub.exists():
            shards = sorted(p.relative_to(pub).as_posix() for p in pub.rglob("*.parquet"))
            out["stages"]["card"]["shards"] = len(shards)
            out["stages"]["card"]["largest_shard_mb"] = round(
                max((pub / s).stat().st_size for s in shards) / 1e6, 1
            )
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return out


BEGIN, END = "<!-- tables.json:begin -->", "<!-- tables.json:end -->"


def _cell(stage: dict | None, key: str, fmt: str) -> str:
    if not stage or stage.get(key) is None:
        return "not run"
    if stage.get("rc"):
        return "failed"
    return format(stage[key], fmt)


def render_table(results: dict, *, short: bool = False) -> str:
    """The results as a markdown table, one row per size (from tables.json only)."""
    runs = sorted(results["runs"].items(), key=lambda kv: kv[1]["rows"])
    if short:
        lines = [
            "| rows | aggregate s (GB) | vs DuckDB | validate s (GB) | grade rows: s (GB) "
            "| card s (GB) |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            "| rows | aggregate s | GB | DuckDB ref s | GB | vs ref | validate s | GB "
            "| grade rows | s | GB | card s | GB | coverage ci / fixed | at p in {0,1} "
            "| contains mean |",
            "|---" * 16 + "|",
        ]
    for name, run in runs:
        st = run["stages"]
        agg, val, gr, cd = (st.get(k) for k in ("aggregate", "validate", "grade", "card"))
        ref = (agg or {}).get("reference")
        iv = (agg or {}).get("intervals") or {}
        fx = (agg or {}).get("intervals_fixed") or {}

        def both(key: str, iv: dict = iv, fx: dict = fx) -> str:
            a = format(iv[key], ".1%") if iv.get(key) is not None else "n/a"
            b = format(fx[key], ".1%") if fx.get(key) is not None else "n/a"
            return f"{a} / {b}"

        if short:
            lines.append(
                f"| {name} | {_cell(agg, 'seconds', '.1f')} ({_cell(agg, 'peak_rss_gb', '.2f')})"
                f" | {_cell(agg, 'throughput_vs_reference', '.2f')}"
                f" | {_cell(val, 'seconds', '.1f')} ({_cell(val, 'peak_rss_gb', '.2f')})"
                f" | {_cell(gr, 'rows', ',')}: {_cell(gr, 'seconds', '.0f')} "
                f"({_cell(gr, 'peak_rss_gb', '.2f')})"
                f" | {_cell(cd, 'seconds', '.1f')} ({_cell(cd, 'peak_rss_gb', '.2f')}) |"
            )
            continue
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _cell(agg, "seconds", ".1f"),
                    _cell(agg, "peak_rss_gb", ".2f"),
                    _cell(ref, "seconds", ".1f"),
                    _cell(ref, "peak_rss_gb", ".2f"),
                    _cell(agg, "throughput_vs_reference", ".2f"),
                    _cell(val, "seconds", ".1f"),
                    _cell(val, "peak_rss_gb", ".2f"),
                    _cell(gr, "rows", ","),
                    _cell(gr, "seconds", ".0f"),
                    _cell(gr, "peak_rss_gb", ".2f"),
                    _cell(cd, "seconds", ".1f"),
                    _cell(cd, "peak_rss_gb", ".2f"),
                    both("coverage"),
                    both("coverage_at_boundary"),
                    both("contains_mean"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def write_table(path: Path, table: str) -> None:
    """Replace the block between the markers in `path` with `table`."""
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1M,20M", help="comma list of " + ", ".join(SIZES))
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp folder)")
    ap.add_argument(
        "--grade-rows",
        type=int,
        default=0,
        help="grade at most this many rows (of model m0's generations); 0 = all of m0",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the generated tables under --workdir and reuse them on the next run",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="aggregate and its DuckDB reference run this many times, interleaved; the "
        "median of each is reported",
    )
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the tables in docs/scale.md and README.md from --out",
    )
    a = ap.parse_args()
    if a.render:
        results = json.loads(Path(a.out).read_text())
        write_table(REPO / "docs" / "scale.md", render_table(results))
        write_table(REPO / "README.md", render_table(results, short=True))
        return
    stages = [s for s in a.stages.split(",") if s]
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="dars-tables-"))
    results = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {"runs": {}}
    results["targets"] = TARGETS
    results["setup"] = {
        "models": MODELS,
        "variants": K,
        "samples": N,
        "boundary_share": BOUNDARY_SHARE,
        "fail_rate": FAIL_RATE,
        "duckdb_memory_limit": os.environ.get("DARS_DUCKDB_MEMORY", "2GB"),
    }
    for name in a.sizes.split(","):
        rows = parse_size(name)
        run = run_size(
            name,
            rows,
            workdir=workdir,
            stages=stages,
            grade_rows=a.grade_rows,
            keep=a.keep,
            repeat=a.repeat,
        )
        run["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        }
        run["command"] = " ".join(["python", "benchmarks/tables.py", *sys.argv[1:]])
        git = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        run["commit"] = git.stdout.strip() or None
        earlier = results["runs"].get(name)
        if earlier and earlier.get("rows") == run["rows"]:
            # a run of some stages replaces those stages' entries and keeps the others
            run["stages"] = {**earlier.get("stages", {}), **run["stages"]}
            kept = sorted(set(earlier.get("stages", {})) - set(stages))
            if kept:
                run["stages_from_earlier_run"] = {
                    k: earlier.get("stages_from_earlier_run", {}).get(k, earlier.get("commit"))
                    for k in kept
                }
        results["runs"][name] = run
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(run, indent=2), flush=True)


if __name__ == "__main__":
    main()
