"""Benchmark: `--protocol dars` wall time per router on a release of the published size.

    flock -x /tmp/dars-cpu.lock .venv/bin/python benchmarks/dars_protocol.py
    .venv/bin/python benchmarks/dars_protocol.py --runs 5 --out /tmp/x.json   # quick

The release is synthetic, with the DARS release's shape (AIGNLAI/DARS, three tasks):
600 train queries and 1,148 test queries over 6 models; each train pair has 5 rewrites x
5 decodes (25 rows), each test pair 5 `prompt_variation` rows (5 rewrites x 1 decode)
and 3 `decoding_variation` rows (the original x 3 decodes): 145,104 outcome rows. Query
texts are random word sequences of DARS-like lengths (GPQA/MATH: 30-120 words; DROP: a
1,200-character passage and a question), so TF-IDF's vocabulary and sparsity are of the
real order. Scores are Bernoulli draws (GPQA, MATH) or F1-like fractions (DROP) from a
per-(query, model) rate; costs are per-model price x token counts.

Measured per router (any registry name: `knn`, `ridge`, `mlp`, or the seven DARS routers
`mlp3`, `knn16`, `embedllm`, `mirt`, `rm_softmax`, `graphrouter`, `avengers_pro`):
wall time of `run_protocol` with R = 100 single-shot runs (1 + R fits per task), on the
machine's 2 cores (BLAS threads = 2), after the shared steps (rows, costs, TF-IDF), which
are timed once. `cpu_s` is the CPU time of the process and its joblib workers (the work,
whoever else shares the cores). `NAME:R` runs one router with R runs and extrapolates its
time at --runs linearly in the number of fits (for routers whose R = 100 run takes
hours here). Results: benchmarks/results/dars_protocol.json (knn, ridge, mlp) and
dars_protocol_seven.json (the seven DARS routers):

    flock -x /tmp/dars-cpu.lock .venv/bin/python benchmarks/dars_protocol.py \
        --routers knn16,avengers_pro,embedllm:2,graphrouter:2,mirt:2,mlp3:2,rm_softmax:2 \
        --out benchmarks/results/dars_protocol_seven.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = {"gpqa": (198, 400), "math-500": (200, 300), "drop-800": (202, 448)}  # train, test
MODELS = (
    "google/gemma-3-12b-it",
    "mistralai/mistral-small-3.2-24b-instruct",
    "qwen/qwen3-32b",
    "meta-llama/llama-3.3-70b-instruct",
    "google/gemini-2.5-flash-lite",
    "deepseek/deepseek-chat-v3.1",
)
PRICE = np.array([0.04, 0.05, 0.1, 0.13, 0.1, 0.25]) * 1e-6  # $ per token
K, N_TRAIN, N_DECODING = 5, 5, 3
VOCAB = 6000


def synthetic_release(*, scale: float = 1.0, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """(outcomes, splits, queries) of the published shape (times `scale` queries)."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(VOCAB)])
    zipf = 1.0 / np.arange(1, VOCAB + 1)
    zipf /= zipf.sum()
    cols: dict[str, list] = {c: [] for c in ("query_id", "model", "variant_id", "sample_id")}
    cols |= {"score": [], "cost": [], "observation_type": []}
    splits, queries = [], []
    skill = rng.normal(0, 1, len(MODELS))
    for task, (n_tr, n_te) in TASKS.items():
        n_tr, n_te = max(2, int(n_tr * scale)), max(2, int(n_te * scale))
        for i in range(n_tr + n_te):
            qid = f"{task}-{i:04d}"
            split = "train" if i < n_tr else "test"
            n_words = rng.integers(30, 120) if task != "drop-800" else 220
            text = " ".join(rng.choice(words, size=n_words, p=zipf))
            splits.append({"query_id": qid, "task": task, "split": split})
            queries.append({"query_id": qid, "task": task, "prompt": text})
            cells = (
                [(v, d, None) for v in range(1, K + 1) for d in range(N_TRAIN)]
                if split == "train"
                else [(v, 0, "prompt_variation") for v in range(1, K + 1)]
                + [(0, d, "decoding_variation") for d in range(N_DECODING)]
            )
            difficulty = rng.normal(0, 1.5)
            rate = 1 / (1 + np.exp(-(skill - difficulty + rng.normal(0, 1, len(MODELS)))))
            n = len(cells)
            for j, model in enumerate(MODELS):
                if task == "drop-800":
                    score = np.clip(rng.beta(1 + 4 * rate[j], 1 + 4 * (1 - rate[j]), n), 0, 1)
                else:
                    score = (rng.random(n) < rate[j]).astype(float)
                tokens = rng.integers(100, 2000, n)
                cols["query_id"] += [qid] * n
                cols["model"] += [model] * n
                cols["variant_id"] += [c[0] for c in cells]
                cols["sample_id"] += [c[1] for c in cells]
                cols["observation_type"] += [c[2] for c in cells]
                cols["score"] += score.tolist()
                cols["cost"] += (tokens * PRICE[j]).tolist()
    return pd.DataFrame(cols), pd.DataFrame(splits), pd.DataFrame(queries)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live children (the joblib
    workers): the work done, whatever else shares the cores."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def measure(
    *, routers: list[str], runs: int, scale: float = 1.0, progress: bool = True
) -> dict[str, object]:
    from dars.evaluation import dars_protocol as P

    t0 = time.perf_counter()
    outcomes, splits, queries = synthetic_release(scale=scale)
    t_synth = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows, counts = P.protocol_rows(outcomes, splits=splits, tasks=queries)
    t_rows = time.perf_counter() - t0
    texts = dict(zip(queries["query_id"], queries["prompt"], strict=True))
    out: dict[str, object] = {
        "shape": {
            "train_queries": int((splits["split"] == "train").sum()),
            "test_queries": int((splits["split"] == "test").sum()),
            "models": len(MODELS),
            "outcome_rows": len(outcomes),
        },
        "runs": runs,
        "synthesise_s": round(t_synth, 2),
        "rows_and_costs_s": round(t_rows, 2),
    }
    per_router: dict[str, dict[str, float]] = {}
    out["routers"] = per_router
    for spec in routers:
        name, _, r = spec.partition(":")
        r_runs = int(r) if r else runs
        settings = P.ProtocolSettings(runs=r_runs)
        t0, c0 = time.perf_counter(), cpu_seconds()
        res = P.run_protocol(
            rows,
            texts=texts,
            models=list(MODELS),
            routers=[P.registry_router(name)],
            settings=settings,
            progress=progress,
        )
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        fits = len(res["tasks"]) * (1 + r_runs)
        macro = res["macro"][name]
        per_router[name] = {
            "runs": r_runs,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "fits": fits,
            "s_per_fit": round(wall / fits, 4),
            "distribution_rewrite_score": round(macro["distribution_rewrite_score"], 4),
            "single_shot_rewrite_score": round(macro.get("single_shot_rewrite_score", np.nan), 4),
        }
        if r_runs != runs:  # linear in the number of fits: R + 1 per task
            full = len(res["tasks"]) * (1 + runs)
            per_router[name][f"wall_s_at_R{runs}_extrapolated"] = round(wall / fits * full, 1)
            per_router[name][f"cpu_s_at_R{runs}_extrapolated"] = round(cpu / fits * full, 1)
        print(f"{name}: {wall:.1f} s for {fits} fits")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument(
        "--routers",
        default="knn,ridge,mlp",
        help="comma-separated router names; NAME:R runs that router with R single-shot "
        "runs (its time at --runs is then extrapolated linearly in the number of fits)",
    )
    ap.add_argument("--scale", type=float, default=1.0, help="share of the published queries")
    ap.add_argument("--note", default="", help="how it was run (lock, load), recorded as is")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dars_protocol.json"))
    a = ap.parse_args()
    res = measure(routers=a.routers.split(","), runs=a.runs, scale=a.scale)
    res["machine"] = {
        "cpus": os.cpu_count(),
        "blas_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }
    res["command"] = "python " + " ".join(sys.argv) + (f" ({a.note})" if a.note else "")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
