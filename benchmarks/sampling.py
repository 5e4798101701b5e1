"""Our llama_cpp backend against the naive loop a user would write, side by side.

    .venv/bin/python benchmarks/sampling.py --out benchmarks/results/sampling.json

Same prompts (real variants: arithmetic word problems and HumanEval, rendered as the
default model pool renders them), same N, max_tokens, temperature, top_p and seeds for
every arm:

- `batched`: `LlamaCppBackend.generate_variant` (the N samples of a variant as one
  multi-sequence batch, the prompt prefilled once and shared);
- `batched_reprefill`: the same backend with `share_prompt=False` (the prompt evaluated
  again for each sequence), to measure what sharing the prompt saves;
- `naive`: a bare llama-cpp-python `Llama.create_completion(seed=...)` per sample;
  llama-cpp-python keeps the evaluated prompt between calls, so its 2nd..Nth samples
  re-evaluate only one prompt token;
- `naive_reprefill`: the same loop with `Llama.reset()` before each sample (the prompt
  evaluated again each time).

Two workloads: `decode` (no stop strings: every sample runs to max_tokens unless the
model ends it, so tokens/s measures decoding) and `pipeline` (the graders' real stop
strings, as `dars sample` runs them: short answers, so the prompt weighs more).

tokens/s = completion tokens / wall time of the arm, prompt evaluation included. The
arms are interleaved variant by variant (for each variant every arm runs in turn, in a
rotating order), `--repeats` times; the speedup is the median over repeats of the
per-repeat ratio. Other processes on a shared 2-core machine move absolute numbers a lot
(ggml's worker threads wait for each other at every graph node, so a descheduled thread
stalls a step): compare the ratios, not the absolute tokens/s. The load average before
and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from dars.stages import prepare, reformulate
from dars.prompting import format as prompting
from dars.backends.base import GenRequest
from dars.core.params import ModelConfig

REPO = Path(__file__).resolve().parents[1]
ARMS = ("batched", "batched_reprefill", "naive", "naive_reprefill")


def real_prompts(*, arithmetic: int, humaneval: int, shots: int) -> list[tuple[str, str]]:
    """(grader, rendered prompt) of real variants, built with the pipeline's own stages."""
    from dars.prompting.few_shot import few_shot_examples

    params = {
        "prepare": {
            "tasks": {
                "arithmetic": {"kind": "arithmetic", "n": arithmetic, "difficulty": 1, "seed": 7},
                "humaneval": {"kind": "humaneval", "n": humaneval, "offset": 0},
            },
            "max_quarantine_fraction": 0.05,
            "max_prompt_chars": 20000,
        },
        "reformulate": {"k": 2, "method": "template"},  # variants 0 and 1
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        prepare.run(
            params_path=tmp / "params.yaml",
            out=tmp / "q.parquet",
            quarantine_out=tmp / "quarantine.parquet",
            stats_out=tmp / "prepare.json",
        )
        reformulate.run(
            params_path=tmp / "params.yaml", queries=tmp / "q.parquet", out=tmp / "v.parquet"
        )
        import pandas as pd

        q = pd.read_parquet(tmp / "q.parquet")
        v = pd.read_parquet(tmp / "v.parquet")
    v = v[v["accepted"]].merge(q[["query_id", "grader"]], on="query_id")
    return [
        (
            g,
            prompting.render(
                message=m,
                grader=g,
                prompting="few_shot",
                examples=few_shot_examples(g)[:shots],
            ),
        )
        for m, g in zip(v["prompt"], v["grader"], strict=True)
    ]


def requests_for(
    prompt: str, stop: tuple[str, ...], *, n: int, max_tokens: int, temperature: float, v: int
) -> list[GenRequest]:
    return [
        GenRequest(
            query_id=f"q{v}",
            variant_id=v,
            sample_id=i,
            seed=1000 * v + i,
            prompt=prompt,
            stop=stop,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=0.95,
        )
        for i in range(n)
    ]


def run_naive(llm: Any, reqs: list[GenRequest], *, reprefill: bool) -> list[tuple[str, int]]:
    out = []
    for r in reqs:
        if reprefill:
            llm.reset()
        res = llm.create_completion(
            r.prompt,
            max_tokens=r.max_tokens,
            temperature=r.temperature,
            top_p=r.top_p,
            stop=list(r.stop) or None,
            seed=r.seed,
        )
        out.append((res["choices"][0]["text"], int(res["usage"]["completion_tokens"])))
    return out


def run_variant(arm: str, engines: dict[str, Any], reqs: list[GenRequest]) -> list[tuple[str, int]]:
    """One variant's N samples through one arm: (text, completion tokens) per sample."""
    if arm.startswith("batched"):
        res = engines[arm].generate_variant(reqs)
        if any(r.status != "ok" for r in res):
            raise RuntimeError(f"{arm}: a sample failed: {[r.error for r in res]}")
        return [(str(r.completion), r.completion_tokens) for r in res]
    engines["naive"].reset()  # every variant starts cold, as in the backend
    return run_naive(engines["naive"], reqs, reprefill=arm == "naive_reprefill")


def run_repeat(
    engines: dict[str, Any], work: list[list[GenRequest]], rep: int
) -> dict[str, dict[str, Any]]:
    """All arms over all variants, interleaved variant by variant (the arm order rotates),
    so a burst of load from other processes hits every arm about equally."""
    acc: dict[str, dict[str, Any]] = {a: {"wall_s": 0.0, "tokens": 0, "texts": []} for a in ARMS}
    for v, reqs in enumerate(work):
        k = (v + rep) % len(ARMS)
        for arm in ARMS[k:] + ARMS[:k]:
            t0 = time.perf_counter()
            pairs = run_variant(arm, engines, reqs)
            acc[arm]["wall_s"] += time.perf_counter() - t0
            acc[arm]["tokens"] += sum(n for _, n in pairs)
            acc[arm]["texts"] += [t for t, _ in pairs]
    for a in acc.values():
        a["tok_s"] = a["tokens"] / a["wall_s"]
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arithmetic", type=int, default=2, help="arithmetic queries")
    ap.add_argument("--humaneval", type=int, default=1, help="HumanEval problems")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workloads", nargs="+", default=["decode", "pipeline"])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/sampling.json"))
    a = ap.parse_args()

    import llama_cpp

    from dars.backends.llama_cpp import LlamaCppBackend, resolve_model_path

    prompts = real_prompts(arithmetic=a.arithmetic, humaneval=a.humaneval, shots=3)
    path, revision = resolve_model_path("auto")
    config = ModelConfig(name="gemma", backend="llama_cpp", n_ctx=2048, n_threads=a.threads)
    engines = {
        "batched": LlamaCppBackend(config),
        "batched_reprefill": LlamaCppBackend(config, share_prompt=False),
        "naive": llama_cpp.Llama(
            model_path=str(path),
            n_ctx=2048,
            n_threads=a.threads,
            n_threads_batch=a.threads,  # as the backend: the same threads for the prompt
            seed=0,
            verbose=False,
        ),
    }
    n_prompt = [len(engines["batched"].tokenize(p)) for _, p in prompts]
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for workload in a.workloads:
        for n in a.n:
            work = [
                requests_for(
                    p,
                    prompting.stops_for(g) if workload == "pipeline" else (),
                    n=n,
                    max_tokens=a.max_tokens,
                    temperature=a.temperature,
                    v=v,
                )
                for v, (g, p) in enumerate(prompts)
            ]
            reps = [run_repeat(engines, work, rep) for rep in range(a.repeats)]
            row = summarize(workload=workload, n=n, reps=reps)
            rows.append(row)
            print(
                f"{workload:8s} N={n:<2d} batched {row['tok_s']['batched']:6.1f} tok/s  "
                f"naive {row['tok_s']['naive']:6.1f} tok/s  "
                f"speedup_vs_naive {row['speedup_vs_naive']:.2f}x  "
                f"prompt sharing {row['prompt_sharing_speedup']:.2f}x",
                flush=True,
            )
    for e in engines.values():
        e.close()
    result = {
        "benchmark": "llama_cpp backend (multi-sequence batch) vs naive create_completion loop",
        "model": revision,
        "prompts": {
            "count": len(prompts),
            "graders": sorted({g for g, _ in prompts}),
            "prompt_tokens": n_prompt,
        },
        "settings": {
            "max_tokens": a.max_tokens,
            "temperature": a.temperature,
            "top_p": 0.95,
            "n_threads": a.threads,
            "repeats": a.repeats,
            "llama_cpp_python": llama_cpp.__version__,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print_table(rows)
    print(f"-> {a.out}")


def summarize(*, workload: str, n: int, reps: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    def med(f: Any) -> float:
        return round(statistics.median(f(r) for r in reps), 3)

    first = reps[0]
    same = sum(
        x == y for x, y in zip(first["batched"]["texts"], first["naive"]["texts"], strict=True)
    )
    return {
        "workload": workload,
        "n": n,
        "completion_tokens": {arm: first[arm]["tokens"] for arm in ARMS},
        "tok_s": {arm: med(lambda r, arm=arm: r[arm]["tok_s"]) for arm in ARMS},
        "wall_s": {arm: med(lambda r, arm=arm: r[arm]["wall_s"]) for arm in ARMS},
        "speedup_vs_naive": med(lambda r: r["batched"]["tok_s"] / r["naive"]["tok_s"]),
        "speedup_vs_naive_per_repeat": [
            round(r["batched"]["tok_s"] / r["naive"]["tok_s"], 3) for r in reps
        ],
        "prompt_sharing_speedup": med(
            lambda r: r["batched_reprefill"]["wall_s"] / r["batched"]["wall_s"]
        ),
        "naive_prompt_reuse_speedup": med(
            lambda r: r["naive_reprefill"]["wall_s"] / r["naive"]["wall_s"]
        ),
        "samples": len(first["batched"]["texts"]),
        "identical_to_naive": same,
        "identical_to_naive_reprefill": sum(
            x == y
            for x, y in zip(
                first["batched"]["texts"], first["naive_reprefill"]["texts"], strict=True
            )
        ),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'workload':9s}{'N':>3s}{'batched':>10s}{'naive':>9s}{'speedup':>9s}"
        f"{'share':>8s}{'naive reuse':>13s}{'same text':>11s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['workload']:9s}{r['n']:>3d}{r['tok_s']['batched']:>10.1f}"
            f"{r['tok_s']['naive']:>9.1f}{r['speedup_vs_naive']:>8.2f}x"
            f"{r['prompt_sharing_speedup']:>7.2f}x{r['naive_prompt_reuse_speedup']:>12.2f}x"
            f"{r['identical_to_naive']:>6d}/{r['samples']}"
        )


if __name__ == "__main__":
    main()
