"""GPU check of the batching and seeding logic, for a lent CUDA machine without vLLM.

    python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json     (see gpu_check.sh)

vLLM is not installed there and nothing can be downloaded, so this builds a tiny
random-weight Llama with `transformers` from a config (no weights fetched) on CUDA and
checks, with the real planner of `pipeline/dars/backends/vllm.py`:

- `planner`: spaced seeds give every variant its own block, `plan_calls` makes one
  `n=N` request per variant, and no two samples of the plan share a seed;
- `seeded_reproducible`: multi-sequence sampling (the prompt prefilled once, its KV cache
  shared by the N sequences, one torch.Generator per sequence on CUDA) gives the same
  tokens when run twice, and different seeds give different samples;
- `child_seeds_match_rows`: a request fanned out as vLLM does (child i gets seed + i)
  gives each sample exactly the tokens of a lone run with the seed recorded in its row;
- `shared_prefix_equals_recompute` (measured): greedy tokens with the shared prompt cache
  equal greedy tokens recomputed without a cache;
- `batch_invariance` (measured): a sample's tokens at N=8 vs the same seed alone (N=1);
- `throughput` (measured): tokens/s of N=8 in one batch vs 8 sequential runs.

Every check is fail-soft: an exception is recorded for that check and the others run.
The JSON is rewritten after each check, so a timeout still leaves the finished ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipeline"))

N = 8
PROMPT_LEN = 48
NEW_TOKENS = 24


def build_model(torch: Any, device: str) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # peaky logits: fewer near-ties than the 0.02 default
    )
    model = LlamaForCausalLM(cfg)
    # transformers types `to` through a decorator that mypy reads as unbound
    return model.to(device=device, dtype=torch.float32).eval()  # type: ignore[call-arg]


def top_p_filter(torch: Any, logits: Any, top_p: float) -> Any:
    sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    drop = probs.cumsum(dim=-1) - probs > top_p  # keep the smallest set reaching top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)


def sample_batch(
    torch: Any,
    model: Any,
    prompt: list[int],
    seeds: list[int],
    *,
    temperature: float,
    top_p: float = 0.95,
    share_prefix: bool = True,
) -> list[list[int]]:
    """Decode len(seeds) sequences of one prompt together, one CUDA generator per sequence."""
    device = next(model.parameters()).device
    n = len(seeds)
    ids = torch.tensor([prompt], device=device)
    gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    out: list[list[int]] = [[] for _ in range(n)]
    with torch.no_grad():
        if share_prefix:
            res = model(input_ids=ids, use_cache=True)
            cache = res.past_key_values
            if hasattr(cache, "batch_repeat_interleave"):
                cache.batch_repeat_interleave(n)  # the prompt's KV cache shared by n sequences
                logits = res.logits[:, -1, :].expand(n, -1)
            else:  # older/newer cache API: prefill the n copies together instead
                res = model(input_ids=ids.expand(n, -1), use_cache=True)
                cache, logits = res.past_key_values, res.logits[:, -1, :]
        else:  # no cache: every step recomputes the whole sequence
            cache, logits = None, model(input_ids=ids.expand(n, -1)).logits[:, -1, :]
        seqs = ids.expand(n, -1)
        for _ in range(NEW_TOKENS):
            if temperature == 0.0:
                nxt = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(top_p_filter(torch, logits / temperature, top_p), dim=-1)
                nxt = torch.stack(
                    [torch.multinomial(probs[i], 1, generator=gens[i])[0] for i in range(n)]
                )
            for i in range(n):
                out[i].append(int(nxt[i]))
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            if share_prefix:
                res = model(input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
                cache, logits = res.past_key_values, res.logits[:, -1, :]
            else:
                logits = model(input_ids=seqs).logits[:, -1, :]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = Path(a.out)
    summary: dict[str, Any] = {"python": platform.python_version(), "checks": {}}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")

    def check(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        try:
            res = fn()
            res.setdefault("status", "ok" if res.get("passed", True) else "fail")
        except Exception as exc:  # fail-soft: record this check and run the next
            res = {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=4),
            }
        res["seconds"] = round(time.perf_counter() - t0, 2)
        summary["checks"][name] = res
        print(f"[{res['status']:5s}] {name} ({res['seconds']} s)", flush=True)
        save()

    import torch

    summary["torch"] = torch.__version__
    summary["cuda_available"] = bool(torch.cuda.is_available())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    summary["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    try:
        import transformers

        summary["transformers"] = transformers.__version__
    except ImportError as exc:
        summary["transformers"] = f"missing: {exc}"
    if device != "cuda":
        summary["note"] = "no CUDA device: the checks below ran on CPU"
    save()

    from dars.backends.base import GenRequest
    from dars.backends.vllm import check_disjoint_seeds, plan_calls, spaced_sample_seeds

    state: dict[str, Any] = {}

    def planner() -> dict[str, Any]:
        variants = []
        for q in range(200):
            for v in range(5):
                seeds = spaced_sample_seeds(
                    base_seed=1234, model="m", query_id=f"q{q}", variant_id=v, n=N
                )
                variants.append(
                    [
                        GenRequest(f"q{q}", v, i, s, f"prompt {q}/{v}", (), NEW_TOKENS, 0.8, 0.95)
                        for i, s in enumerate(seeds)
                    ]
                )
        calls = plan_calls(variants)
        check_disjoint_seeds(calls, what="plan")
        state["calls"] = calls[:16]
        ok = len(calls) == len(variants) and all(c.n == N for c in calls)
        return {"passed": ok, "variants": len(variants), "requests": len(calls)}

    check("planner", planner)

    def model_ready() -> dict[str, Any]:
        state["model"] = build_model(torch, device)
        g = torch.Generator().manual_seed(7)
        state["prompt"] = torch.randint(0, 512, (PROMPT_LEN,), generator=g).tolist()
        return {"params": sum(p.numel() for p in state["model"].parameters())}

    check("tiny_model", model_ready)

    def reproducible() -> dict[str, Any]:
        seeds = [c.seed for c in state["calls"][:N]]
        a = sample_batch(torch, state["model"], state["prompt"], seeds, temperature=0.8)
        b = sample_batch(torch, state["model"], state["prompt"], seeds, temperature=0.8)
        distinct = len({tuple(x) for x in a})
        return {
            "passed": a == b and distinct > 1,
            "identical_reruns": a == b,
            "distinct_samples": distinct,
            "n": len(seeds),
        }

    check("seeded_reproducible", reproducible)

    def child_seeds() -> dict[str, Any]:
        call = state["calls"][0]
        fanned = sample_batch(
            torch,
            state["model"],
            state["prompt"],
            [call.seed + i for i in range(call.n)],
            temperature=0.8,
        )
        row_seeds = [call.seed + k for k in range(call.n)]  # what the rows record
        alone = [
            sample_batch(torch, state["model"], state["prompt"], [s], temperature=0.8)[0]
            for s in row_seeds
        ]
        same = sum(x == y for x, y in zip(fanned, alone, strict=True))
        return {
            "passed": same == call.n,
            "samples_equal": same,
            "n": call.n,
            "note": "a mismatch here would be batch variance, see batch_invariance",
        }

    check("child_seeds_match_rows", child_seeds)

    def prefix_vs_recompute() -> dict[str, Any]:
        a = sample_batch(torch, state["model"], state["prompt"], [0, 1], temperature=0.0)
        b = sample_batch(
            torch, state["model"], state["prompt"], [0, 1], temperature=0.0, share_prefix=False
        )
        agree = sum(x == y for x, y in zip(a[0], b[0], strict=True))
        return {
            "status": "ok",
            "measured": True,
            "greedy_tokens_equal": agree,
            "of": NEW_TOKENS,
            "rows_equal": a[0] == a[1],
        }

    check("shared_prefix_equals_recompute", prefix_vs_recompute)

    def batch_invariance() -> dict[str, Any]:
        seeds = list(range(100, 100 + N))
        together = sample_batch(torch, state["model"], state["prompt"], seeds, temperature=0.8)
        alone = [
            sample_batch(torch, state["model"], state["prompt"], [s], temperature=0.8)[0]
            for s in seeds
        ]
        same = sum(x == y for x, y in zip(together, alone, strict=True))
        return {"status": "ok", "measured": True, "samples_equal": same, "of": N}

    check("batch_invariance", batch_invariance)

    def throughput() -> dict[str, Any]:
        seeds = list(range(N))
        sample_batch(torch, state["model"], state["prompt"], seeds, temperature=0.8)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sample_batch(torch, state["model"], state["prompt"], seeds, temperature=0.8)
        if device == "cuda":
            torch.cuda.synchronize()
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in seeds:
            sample_batch(torch, state["model"], state["prompt"], [s], temperature=0.8)
        if device == "cuda":
            torch.cuda.synchronize()
        seq = time.perf_counter() - t0
        toks = N * NEW_TOKENS
        return {
            "status": "ok",
            "measured": True,
            "batched_tok_s": round(toks / batched, 1),
            "sequential_tok_s": round(toks / seq, 1),
            "speedup": round(seq / batched, 2),
        }

    check("throughput", throughput)

    statuses = [c["status"] for c in summary["checks"].values()]
    summary["ok"] = all(s == "ok" for s in statuses)
    save()
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k != "checks"}
            | {
                "checks": {
                    k: {kk: vv for kk, vv in v.items() if kk != "traceback"}
                    for k, v in summary["checks"].items()
                }
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
