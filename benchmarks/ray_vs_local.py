"""The Ray executor on 2 workers against the local executor, on the same sampling work.

    .venv/bin/python benchmarks/ray_vs_local.py --out benchmarks/results/ray.json

Builds a small real workload with the pipeline's own stages (arithmetic word problems ->
`prepare` -> `reformulate`), then samples it with the llama.cpp backend (gemma-3-270m):

- `local_t2`: the local executor, one engine with 2 threads (the default on 2 cores);
- `local_t1`: the local executor, one engine with 1 thread;
- `ray_2x1`: `--executor ray`, 2 Ray workers (actors), one engine of 1 thread each.

Each arm starts from an empty checkpoint folder. The Ray arm's time includes starting the
actors and loading one model per actor; starting the local Ray cluster itself
(`ray.init`) is reported separately. Keys and seeds are checked to be identical across
the arms, and completions between the arms with the same thread count. The load average
is recorded: other processes on a shared 2-core machine change these numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dars.core.params import model_config, parse, sample_config
from dars.sampling.uniform import sample_model
from dars.stages import prepare, reformulate

REPO = Path(__file__).resolve().parents[1]


def workload_params(*, queries: int, k: int, n: int, max_tokens: int) -> dict[str, Any]:
    return {
        "prepare": {
            "tasks": {
                "arithmetic": {"kind": "arithmetic", "n": queries, "difficulty": 1, "seed": 7}
            },
            "max_quarantine_fraction": 0.05,
            "max_prompt_chars": 20000,
        },
        "reformulate": {"k": k, "method": "template"},
        "sample": {"n": n, "seed": 1234, "max_retries": 1},
        "models": {
            "gemma": {
                "backend": "llama_cpp",
                "model_path": "auto",
                "prompting": "few_shot",
                "shots": 1,
                "temperature": 0.7,
                "top_p": 0.95,
                "max_tokens": max_tokens,
                "n_threads": 2,
            }
        },
    }


def build_inputs(tmp: Path, params: dict[str, Any]) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    prepare.run(
        params_path=path,
        out=tmp / "queries.parquet",
        quarantine_out=tmp / "quarantine.parquet",
        stats_out=tmp / "prepare.json",
    )
    reformulate.run(params_path=path, queries=tmp / "queries.parquet", out=tmp / "variants.parquet")
    return path, pd.read_parquet(tmp / "queries.parquet"), pd.read_parquet(tmp / "variants.parquet")


def arm(
    *,
    params: dict[str, Any],
    q: pd.DataFrame,
    v: pd.DataFrame,
    ckpt: Path,
    threads: int,
    executor: str,
    workers: int = 2,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    gemma = {**params["models"]["gemma"], "n_threads": threads}
    parsed = parse({**params, "models": {"gemma": gemma}})
    t0 = time.perf_counter()
    df = sample_model(
        config=model_config(parsed, "gemma"),
        sample=sample_config(parsed),
        params=parsed,
        queries=q,
        variants=v,
        checkpoint_dir=ckpt,
        progress=False,
        executor=executor,
        ray_options={"workers": workers, "cpus_per_worker": 1.0},
    ).to_pandas()
    wall = time.perf_counter() - t0
    tokens = int(df["completion_tokens"].sum())
    return df, {
        "executor": executor,
        "workers": workers if executor == "ray" else 1,
        "threads_per_engine": threads,
        "generations": len(df),
        "errors": int((df["status"] == "error").sum()),
        "completion_tokens": tokens,
        "wall_s": round(wall, 2),
        "gen_per_s": round(len(df) / wall, 3),
        "tok_per_s": round(tokens / wall, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=6)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/ray.json"))
    a = ap.parse_args()

    import llama_cpp
    import ray

    params = workload_params(queries=a.queries, k=a.k, n=a.n, max_tokens=a.max_tokens)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path, q, v = build_inputs(tmp, params)
        results, frames = [], {}
        for name, threads in (("local_t2", 2), ("local_t1", 1)):
            frames[name], r = arm(
                params=params, q=q, v=v, ckpt=tmp / name, threads=threads, executor="local"
            )
            results.append({"arm": name, **r})
            print(json.dumps(results[-1]))
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        try:
            frames["ray_2x1"], r = arm(
                params=params, q=q, v=v, ckpt=tmp / "ray_2x1", threads=1, executor="ray"
            )
        finally:
            ray.shutdown()
        results.append({"arm": "ray_2x1", **r, "ray_init_s": round(ray_init_s, 2)})
        print(json.dumps(results[-1]))

    keys = ["query_id", "variant_id", "sample_id", "seed"]
    same_keys = all(frames[k][keys].equals(frames["local_t2"][keys]) for k in frames)
    same_text_t1 = frames["ray_2x1"]["completion"].equals(frames["local_t1"]["completion"])
    same_text_t2 = frames["ray_2x1"]["completion"].equals(frames["local_t2"]["completion"])
    by = {r["arm"]: r for r in results}
    backend_src = (REPO / "pipeline/dars/backends/llama_cpp.py").read_bytes()
    report = {
        "benchmark": "ray_vs_local",
        "workload": {
            "queries": len(q),
            "variants": int(v["accepted"].sum()),
            "n": a.n,
            "max_tokens": a.max_tokens,
            "generations": by["local_t2"]["generations"],
            "model": "gemma-3-270m Q4_K_M (llama.cpp)",
        },
        "arms": results,
        "ray_speedup_vs_local_t2": round(by["local_t2"]["wall_s"] / by["ray_2x1"]["wall_s"], 3),
        "ray_speedup_vs_local_t1": round(by["local_t1"]["wall_s"] / by["ray_2x1"]["wall_s"], 3),
        "ray_speedup_vs_local_t2_incl_cluster_start": round(
            by["local_t2"]["wall_s"] / (by["ray_2x1"]["wall_s"] + ray_init_s), 3
        ),
        "identical_keys_and_seeds": same_keys,
        "identical_completions_ray_vs_local_same_threads": same_text_t1,
        "identical_completions_ray_vs_local_t2": same_text_t2,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {
            "ray": ray.__version__,
            "llama_cpp_python": llama_cpp.__version__,
            "llama_cpp_backend_sha256": hashlib.sha256(backend_src).hexdigest()[:16],
        },
        "note": (
            "A 2-core machine: two 1-thread engines in two Ray actors use the same 2 cores "
            "as one 2-thread engine, so on a quiet machine Ray should at best match the "
            "local executor; it adds the cluster start, actor start-up and one model load "
            "per actor. Under load from other processes (see machine.loadavg_*), a multi-"
            "threaded llama.cpp engine stalls most, which favours 1-thread engines: compare"
            " ray_2x1 with local_t1 (same threads per engine). Ray scales out when each "
            "worker has its own cores, GPUs or nodes."
        ),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in report if k.startswith(("ray_", "identical"))}))


if __name__ == "__main__":
    main()
