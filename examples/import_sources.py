"""Write small SYNTHETIC sources in the two layouts `dars import` reads, for the docs.

    python examples/import_sources.py OUTDIR

writes OUTDIR/dars_release/<dataset>/{train,test}_scored_generations.jsonl + metadata.json
(the DARS release layout) and OUTDIR/routerbench.pkl (the RouterBench layout). The
questions are templated and every score is a seeded Bernoulli draw with a per-model,
per-query success probability: the files exercise the importers end to end, they are
not the real releases (which need a download). docs/import.md runs on them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DARS_MODELS = {"google/gemma-3-12b-it": 0.0, "meta-llama/Llama-3.1-8B-Instruct": -0.6}
RB_MODELS = {
    "gpt-4-1106-preview": 1.0,
    "meta/llama-2-70b-chat": 0.0,
    "mistralai/mixtral-8x7b-chat": -0.4,
}
K, N = 5, 5  # the DARS release's train cells: 5 rewrites x 5 decodes
K_TEST, N_TEST = 3, 3  # its test views: 3 rewrites x 1 decode, the original x 3 decodes


def _p(ability: float, difficulty: float) -> float:
    return float(1 / (1 + np.exp(-(ability - difficulty))))


def dars_release(out: Path, *, n_train: int = 40, n_test: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    src = out / "dars_release"
    for dataset, topic in (("gpqa", "chemistry"), ("math", "algebra")):
        (src / dataset).mkdir(parents=True, exist_ok=True)
        for split, n_q in (("train", n_train), ("test", n_test)):
            lines = []
            for qi in range(n_q):
                difficulty = rng.normal(0, 1.5) + (0.8 if dataset == "gpqa" else 0.0)
                question = (
                    f"A {topic} problem ({dataset} #{split}-{qi}): solve for x when x = {qi} * 3."
                )
                for mi, (model, ability) in enumerate(DARS_MODELS.items()):
                    # numbered as the release numbers them: the original query is -1,
                    # rewrites 0..K-1; train holds rewrites only
                    if split == "train":
                        cells = [(None, v, d) for v in range(K) for d in range(N)]
                    else:
                        cells = [("prompt_variation", v, 0) for v in range(K_TEST)]
                        cells += [("decoding_variation", -1, d) for d in range(N_TEST)]
                    for obs_type, v, d in cells:
                        p = _p(ability, difficulty + 0.3 * rng.normal() * (v >= 0))
                        tokens = {
                            "prompt_tokens": 43 + 3 * v,
                            "completion_tokens": int(rng.integers(20, 200)),
                        }
                        cost = (
                            (tokens["prompt_tokens"] + tokens["completion_tokens"])
                            * 1e-6
                            * (1 + 2 * (mi == 0))
                        )
                        row = {
                            "dataset": dataset,
                            "split": split,
                            "query_id": f"{dataset}_{split}_{qi}",
                            "model": model,
                            "prompt_variant_id": v,
                            "decode_id": d,
                            "original_question": question,
                            "input_question": question if v < 0 else f"Rephrased ({v}): {question}",
                            "context": "",
                            "output_text": f"x = {qi * 3}" if rng.random() < p else "x = 0",
                            "usage": {**tokens, "cost": cost},
                            "score": None,
                            "finish_reason": "stop",
                        }
                        # the fields the authors' dataset/score_generations.py adds
                        row["score"] = float(row["output_text"] == f"x = {qi * 3}")
                        row["predicted_answer"] = row["output_text"].removeprefix("x = ")
                        row["gold_answer"] = str(qi * 3)
                        row["parse_success"] = True
                        row["score_type"] = "binary_math_exact_match"
                        if obs_type:
                            row["observation_type"] = obs_type
                        lines.append(json.dumps(row))
            (src / dataset / f"{split}_scored_generations.jsonl").write_text(
                "\n".join(lines) + "\n"
            )
    (src / "metadata.json").write_text(
        json.dumps(
            {"note": "synthetic stand-in in the DARS release layout", "lambda": 0.05, "beta": 0.2}
        )
    )
    return src


def routerbench(out: Path, *, n: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    evals = ["mmlu-college-biology", "gsm8k", "hellaswag", "mbpp"]
    tasks = [evals[i % len(evals)] for i in range(n)]
    df = pd.DataFrame(
        {
            "sample_id": [f"{t}.{i}" for i, t in enumerate(tasks)],
            "prompt": [f"[{t}] question {i}: choose the best answer." for i, t in enumerate(tasks)],
            "eval_name": tasks,
        }
    )
    difficulty = rng.normal(0, 1.5, n)
    for j, (m, ability) in enumerate(RB_MODELS.items()):
        p = 1 / (1 + np.exp(-(ability - difficulty)))
        df[m] = (rng.random(n) < p).astype(float)
        df[f"{m}|model_response"] = [f"answer {i} by {m}" for i in range(n)]
        df[f"{m}|total_cost"] = [3e-5 * (3 - j) ** 2 * (1 + rng.random()) for _ in range(n)]
    df["oracle_model_to_route_to"] = [
        min(
            (m for m in RB_MODELS if df.loc[i, m] == 1.0),
            key=lambda m: df.loc[i, f"{m}|total_cost"],
            default="",
        )
        for i in range(n)
    ]
    path = out / "routerbench.pkl"
    df.to_pickle(path)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "import_sources")
    target.mkdir(parents=True, exist_ok=True)
    print(dars_release(target))
    print(routerbench(target))
