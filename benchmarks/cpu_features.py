"""What llama.cpp's weight repack is worth on this CPU, and which build this is
(docs/backends.md#amx, llama.cpp issue 20824).

    .venv/bin/python benchmarks/cpu_features.py --out benchmarks/results/cpu_features.json

The AMX crash has two workarounds: compile AMX out (our install step; the AVX-512/AVX2
repack, llama.cpp's "extra buffer types", is kept) or turn the extra buffer types off at
model load (`use_extra_bufts = False`, what `dars.core.cpu.engine_options` does when the
loaded build has AMX on an AMX CPU). The second costs whatever the repack is worth; this
measures it side by side on one build: a bare `Llama.create_completion` loop (the naive
loop a user writes), `--tokens` tokens per call, `--threads` threads, the two arms
interleaved call by call in a rotating order, `--rounds` rounds of `--calls` calls, the
median tok/s per round. Also recorded: the CPU's kernel flags, the build's
`llama_print_system_info()`, the install plan (CMAKE_ARGS and cache key) and the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

PROMPT = (
    "Question: A farmer has 17 sheep and buys 5 more, then sells 8. How many sheep does "
    "the farmer have now? Explain step by step.\nAnswer:"
)


def load(path: str, *, threads: int, extra_bufts: bool) -> Any:
    import llama_cpp
    import llama_cpp.llama_cpp as ll

    default = ll.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = extra_bufts
        return p

    ll.llama_model_default_params = params  # what Llama() reads when it loads the model
    try:
        return llama_cpp.Llama(
            model_path=path, n_ctx=512, n_threads=threads, n_threads_batch=threads,
            verbose=False,
        )  # fmt: skip
    finally:
        ll.llama_model_default_params = default


def one_call(llm: Any, *, tokens: int, seed: int) -> tuple[int, float]:
    llm.reset()
    t0 = time.perf_counter()
    out = llm.create_completion(PROMPT, max_tokens=tokens, temperature=0.7, seed=seed)
    return int(out["usage"]["completion_tokens"]), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--calls", type=int, default=6, help="calls per arm per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    import llama_cpp

    from dars.backends.llama_cpp import resolve_model_path
    from dars.core import cpu

    path, revision = resolve_model_path("auto")
    flags = cpu.read_cpu_flags()
    arms = {"repack_on": True, "repack_off": False}
    models = {name: load(str(path), threads=a.threads, extra_bufts=on) for name, on in arms.items()}
    load_before = os.getloadavg()
    rounds: list[dict[str, float]] = []
    for r in range(a.rounds):
        rates: dict[str, list[float]] = {name: [] for name in arms}
        for i in range(a.calls):
            order = list(arms) if (r + i) % 2 == 0 else list(reversed(arms))
            for name in order:
                n, dt = one_call(models[name], tokens=a.tokens, seed=1000 + i)
                rates[name].append(n / dt)
        rounds.append({name: round(statistics.median(v), 2) for name, v in rates.items()})
        print(f"round {r}: " + ", ".join(f"{k} {v} tok/s" for k, v in rounds[-1].items()))
    ratio = [round(x["repack_on"] / x["repack_off"], 3) for x in rounds]
    result = {
        "what": "bare Llama.create_completion loop, extra buffer types (weight repack) on vs "
        "off, same build, interleaved",
        "command": "benchmarks/cpu_features.py "
        f"--threads {a.threads} --tokens {a.tokens} --calls {a.calls} --rounds {a.rounds}",
        "machine": platform.machine(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        ),  # fmt: skip
        "cpu_kernel_flags": sorted(f for f in flags if f in cpu.KERNEL_FLAGS),
        "cpu_amx": cpu.has_amx(flags),
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": " ".join(llama_cpp.llama_print_system_info().decode().split()),
        "install_plan": asdict(cpu.build_plan(flags=flags, machine=platform.machine())),
        "model": revision,
        "rounds_median_tok_s": rounds,
        "repack_on_over_off": ratio,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps({k: result[k] for k in ("rounds_median_tok_s", "repack_on_over_off")}))
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
