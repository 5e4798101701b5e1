"""Our llama_cpp backend against the naive loop a user would write, side by side.

    .venv/bin/python benchmarks/sampling.py --out benchmarks/results/sampling.json

`--pool default` (results in benchmarks/results/sampling_scheduler.json) compares, on
the default params.yaml pool and its real prompts, the naive loop, the per-variant path
(`generate_variant`) and the scheduler (`generate_units`, continuous batching across a
fixed group of units) at each `--n`, interleaved group by group, with the load average
recorded around every measurement; `speedup_default_params` = scheduler / naive tok/s.
`--compare-slots 1` adds the scheduler with 1 slot on the same groups and counts the
samples whose text differs from B = max_num_seqs. The rest of this docstring is about
the per-variant comparison.

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
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from dars.backends.base import GenRequest
from dars.backends.smoke import unit_reqs
from dars.core.params import ModelConfig
from dars.prompting import format as prompting
from dars.stages import prepare, reformulate

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
    return unit_reqs(v, prompt, n, max_tokens=max_tokens, stop=stop, temperature=temperature)


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
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--pool",
        choices=["default"],
        default=None,
        help="compare naive / per-variant / scheduler on params.yaml's pool",
    )
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--units-per-model", type=int, default=16)
    ap.add_argument("--slots", type=int, default=None, help="max_num_seqs of the scheduler")
    ap.add_argument(
        "--compare-slots",
        type=int,
        nargs="*",
        default=[],
        help="also run the scheduler with these slot counts (same groups)",
    )
    ap.add_argument(
        "--compare-at",
        type=int,
        nargs="*",
        default=[3],
        help="the N at which --compare-slots arms run",
    )
    a = ap.parse_args()
    a.argv = sys.argv[1:]
    if a.pool:
        from dars.backends.llama_cpp import DEFAULT_MAX_NUM_SEQS

        a.slots = a.slots or DEFAULT_MAX_NUM_SEQS
        a.out = a.out or str(REPO / "benchmarks/results/sampling_scheduler.json")
        return main_pool(a)
    a.out = a.out or str(REPO / "benchmarks/results/sampling.json")

    import llama_cpp

    from dars.backends.llama_cpp import LlamaCppBackend, resolve_model_path

    prompts = real_prompts(arithmetic=a.arithmetic, humaneval=a.humaneval, shots=3)
    path, revision = resolve_model_path("auto")
    config = ModelConfig(name="gemma", backend="llama_cpp", n_ctx=2048, n_threads=a.threads)
    engines: dict[str, Any] = {
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


# ---------------------------------------------------------------------------------------
# `--pool default`: the scheduler on the default params.yaml pool (issue 13)

POOL_ARMS = ("naive", "per_variant", "scheduler")


def default_pool(params_path: Path, *, units_per_model: int) -> dict[str, Any]:
    """The default build's queries and variants (prepare + reformulate on params.yaml),
    rendered for every model configuration of the pool, as the sample stage renders them."""
    import pandas as pd

    from dars.core.params import load_params, model_config, model_names

    params = load_params(params_path)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        prepare.run(
            params_path=params_path,
            out=tmp / "q.parquet",
            quarantine_out=tmp / "quarantine.parquet",
            stats_out=tmp / "prepare.json",
        )
        reformulate.run(params_path=params_path, queries=tmp / "q.parquet", out=tmp / "v.parquet")
        q = pd.read_parquet(tmp / "q.parquet")
        v = pd.read_parquet(tmp / "v.parquet")
    models = {m: model_config(params, m) for m in model_names(params)}
    return {"params": params, "queries": q, "variants": v, "models": models,
            "units_per_model": units_per_model}  # fmt: skip


def pool_units(pool: dict[str, Any], *, n: int, slots: int) -> list[tuple[Any, list[Any]]]:
    """(model config, requests of each unit) per scheduler group, model by model: the
    first `units_per_model` units of each model in the stage's order, grouped as the
    sample stage groups them for `slots` slots."""
    from dars.backends.llama_cpp import units_per_group
    from dars.core.params import SampleConfig
    from dars.sampling.requests import plan_requests
    from dars.sampling.units import plan_units

    sample = SampleConfig(n=n, seed=int(pool["params"]["sample"]["seed"]), max_retries=0)
    out = []
    for config in pool["models"].values():
        config = dataclasses.replace(config, max_num_seqs=slots)
        with tempfile.TemporaryDirectory() as d:
            units = plan_units(config=config, sample=sample, queries=pool["queries"],
                               variants=pool["variants"], checkpoint_dir=Path(d))  # fmt: skip
        units = units[: pool["units_per_model"]]
        reqs = [
            plan_requests(
                config=config,
                sample=sample,
                query_id=u.query_id,
                variant_id=u.variant_id,
                prompt=u.prompt,
                grader=u.grader,
                reference=u.reference,
            )  # fmt: skip
            for u in units
        ]
        size = units_per_group(config, n)
        out += [(config, reqs[i : i + size]) for i in range(0, len(reqs), size)]
    return out


def run_pool_arm(arm: str, engines: dict[str, Any], group: list[list[GenRequest]]) -> list[Any]:
    """One group of units through one arm: (text, completion tokens) per sample."""
    if arm.startswith("scheduler"):
        res = [r for u in engines[arm].generate_units(group) for r in u]
    elif arm == "per_variant":
        res = [r for reqs in group for r in engines[arm].generate_variant(reqs)]
    else:
        out = []
        for reqs in group:
            engines["naive"].reset()  # every unit starts cold, as in the backend
            out += run_naive(engines["naive"], reqs, reprefill=False)
        return out
    bad = [r.error for r in res if r.status != "ok"]
    if bad:
        raise RuntimeError(f"{arm}: {len(bad)} samples failed, e.g. {bad[0]}")
    return [(str(r.completion), r.completion_tokens) for r in res]


def main_pool(a: argparse.Namespace) -> None:
    import llama_cpp

    from dars.backends.llama_cpp import LlamaCppBackend, effective_threads, resolve_model_path

    pool = default_pool(Path(a.params), units_per_model=a.units_per_model)
    path, revision = resolve_model_path("auto")
    threads, cpus = effective_threads(a.threads)

    def backend(slots: int | None) -> Any:
        cfg = ModelConfig(name="gemma", backend="llama_cpp", n_ctx=2048, n_threads=threads,
                          max_num_seqs=slots)  # fmt: skip
        return LlamaCppBackend(cfg, adapt_threads=False)  # like for like: fixed threads

    extra = [f"scheduler_b{k}" for k in a.compare_slots]
    arms = list(POOL_ARMS) + extra
    engines = {
        "naive": llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=threads,
                                 n_threads_batch=threads, seed=0, verbose=False),
        "per_variant": backend(None),
        "scheduler": backend(a.slots),
    }  # fmt: skip
    for k in a.compare_slots:
        engines[f"scheduler_b{k}"] = backend(k)
    rows = []
    load_start = os.getloadavg()
    for n in a.n:
        groups = pool_units(pool, n=n, slots=a.slots)
        use = [x for x in arms if x not in extra or n in a.compare_at]
        acc: dict[str, dict[str, Any]] = {x: {"wall_s": 0.0, "tokens": 0, "texts": []} for x in use}
        measurements = []
        for gi, (config, group) in enumerate(groups):
            k = gi % len(use)
            for arm in use[k:] + use[:k]:  # interleaved, the order rotating per group
                before = os.getloadavg()
                t0 = time.perf_counter()
                pairs = run_pool_arm(arm, engines, group)
                wall = time.perf_counter() - t0
                acc[arm]["wall_s"] += wall
                acc[arm]["tokens"] += sum(t for _, t in pairs)
                acc[arm]["texts"] += [t for t, _ in pairs]
                measurements.append({
                    "n": n, "group": gi, "model": config.name, "arm": arm,
                    "units": len(group), "samples": len(pairs),
                    "tokens": sum(t for _, t in pairs), "wall_s": round(wall, 3),
                    "loadavg_before": [round(x, 2) for x in before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                })  # fmt: skip
            print(f"N={n} group {gi + 1}/{len(groups)} ({config.name}, {len(group)} units): "
                  + "  ".join(f"{x} {acc[x]['tokens'] / max(acc[x]['wall_s'], 1e-9):.1f}"
                              for x in use) + f" tok/s  load {os.getloadavg()[0]:.1f}",
                  flush=True)  # fmt: skip
        tok_s = {x: round(acc[x]["tokens"] / acc[x]["wall_s"], 2) for x in use}
        texts = {x: acc[x]["texts"] for x in use}
        row = {
            "n": n,
            "units": sum(len(g) for _, g in groups),
            "groups": len(groups),
            "samples": len(texts["naive"]),
            "completion_tokens": {x: acc[x]["tokens"] for x in use},
            "wall_s": {x: round(acc[x]["wall_s"], 2) for x in use},
            "tok_s": tok_s,
            "speedup_default_params": round(tok_s["scheduler"] / tok_s["naive"], 3),
            "scheduler_vs_per_variant": round(tok_s["scheduler"] / tok_s["per_variant"], 3),
            "per_variant_vs_naive": round(tok_s["per_variant"] / tok_s["naive"], 3),
            "same_text_scheduler_vs_per_variant": _same(texts["scheduler"], texts["per_variant"]),
            "same_text_per_variant_vs_naive": _same(texts["per_variant"], texts["naive"]),
            "measurements": measurements,
        }
        if any(x in use for x in extra):
            row["other_slot_counts"] = {
                x: {
                    "slots": int(x.rsplit("b", 1)[1]),
                    "tok_s": tok_s[x],
                    "samples": len(texts[x]),
                    f"differ_from_{a.slots}_slots": len(texts[x])
                    - _same(texts[x], texts["scheduler"]),
                    "same_as_per_variant": _same(texts[x], texts["per_variant"]),
                }
                for x in extra
                if x in use
            }  # fmt: skip
        rows.append(row)
        write_result(a, pool, revision, threads, cpus, load_start, rows, llama_cpp.__version__)
        print(f"N={n}: " + "  ".join(f"{x} {tok_s[x]:.1f}" for x in use)
              + f" tok/s  speedup_default_params {row['speedup_default_params']:.2f}x",
              flush=True)  # fmt: skip
    for e in engines.values():
        e.close()
    print(f"-> {a.out}")


def write_result(a, pool, revision, threads, cpus, load_start, rows, version) -> None:
    result = {
        "benchmark": "llama_cpp scheduler (continuous batching across work units) vs the "
        "per-variant path vs the naive create_completion loop, default params.yaml pool",
        "command": "python benchmarks/sampling.py " + " ".join(a.argv),
        "model": revision,
        "pool": {
            "params": str(a.params),
            "models": {
                m: {
                    "prompting": c.prompting,
                    "shots": c.shots,
                    "temperature": c.temperature,
                    "top_p": c.top_p,
                    "max_tokens": c.max_tokens,
                }
                for m, c in pool["models"].items()
            },
            "units_per_model": a.units_per_model,
        },  # fmt: skip
        "settings": {
            "max_num_seqs": a.slots,
            "n_threads": threads,
            "cpus_allowed": cpus,
            "llama_cpp_python": version,
            "tok_s": "completion tokens / wall time of the arm, prompt evaluation included",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in load_start],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "note": "shared with other agents' jobs: see each measurement's load average",
        },
        "results": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


def _same(x: list[str], y: list[str]) -> int:
    return sum(a == b for a, b in zip(x, y, strict=True))


if __name__ == "__main__":
    main()
