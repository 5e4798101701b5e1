"""Does the scheduler's thread count change what is sampled, and what does a second
thread cost on a busy machine? One group of 5 units x 3 samples (max_tokens 12, B = 8)
decoded with 1 and with 2 threads; the completions are compared and the load recorded.

    PYTHONPATH=pipeline python benchmarks/scheduler_threads.py

Results: benchmarks/results/scheduler_threads.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from dars.backends.llama_cpp import LlamaCppBackend
from dars.backends.smoke import PROMPTS, unit_reqs
from dars.core.params import ModelConfig

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/scheduler_threads.json")
    args = ap.parse_args()
    group = [unit_reqs(v, p, 3, max_tokens=12) for v, p in enumerate(PROMPTS)]
    runs: dict[int, dict[str, Any]] = {}
    for threads in (1, 2):
        cfg = ModelConfig(name="gemma", backend="llama_cpp", n_ctx=512, max_num_seqs=8,
                          n_threads=threads)  # fmt: skip
        be = LlamaCppBackend(cfg, adapt_threads=False)
        before = os.getloadavg()
        t0 = time.perf_counter()
        out = be.generate_units(group)
        wall = time.perf_counter() - t0
        be.close()
        runs[threads] = {
            "wall_s": round(wall, 2),
            "loadavg_before": [round(x, 2) for x in before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "texts": [[r.completion for r in u] for u in out],
        }
        print(f"{threads} thread(s): {wall:.1f} s, load {before[0]:.1f}", flush=True)
    a = [t for u in runs[1]["texts"] for t in u]
    b = [t for u in runs[2]["texts"] for t in u]
    result = {
        "benchmark": "scheduler: 1 vs 2 llama.cpp threads, same group",
        "command": "PYTHONPATH=pipeline python benchmarks/scheduler_threads.py",
        "cpus": os.cpu_count(),
        "samples": len(a),
        "same_text": sum(x == y for x, y in zip(a, b, strict=True)),
        "slowdown_2_threads_vs_1": round(runs[2]["wall_s"] / runs[1]["wall_s"], 2),
        "runs": {
            str(k): {kk: vv for kk, vv in v.items() if kk != "texts"} for k, v in runs.items()
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("samples", "same_text", "slowdown_2_threads_vs_1")}))


if __name__ == "__main__":
    main()
