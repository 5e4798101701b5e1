"""Benchmark: fit and predict time of DARS's seven routers at the published size.

    .venv/bin/python benchmarks/dars_routers_fit.py                  # 600 x 20k x 6 models
    .venv/bin/python benchmarks/dars_routers_fit.py --queries 60 --out /tmp/x.json  # quick

Input: `--queries` synthetic query texts (200 words each from a 6,000-word vocabulary,
so word uni- and bigrams fill the `tfidf20k` featurizer's 20,000 columns), featurised
with `tfidf20k` (sparse), and three-head targets [quality | cost | std] for 6 models
(the DARS protocol's shape). Each router is fitted once on all queries (DARS
supervision) and once with an all-zero std head (a single-shot fit), then predicts
1,148 test queries (the published test size). Wall seconds per router; run it on an
otherwise idle machine (`flock -x /tmp/dars-cpu.lock ...`), as the timings in
docs/routers.md were.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dars.routers import DARS_ROUTERS, ROUTERS, heads
from dars.routers.features import make_featurizer

N_MODELS = 6


def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(6000)])
    return [" ".join(rng.choice(vocab, size=200)) for _ in range(n)]


def synthetic_targets(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.beta(2, 2, size=(n, N_MODELS))
    c = np.tile(np.linspace(0.05, 1.0, N_MODELS), (n, 1)) * rng.uniform(0.8, 1.2, (n, 1))
    s = np.sqrt(q * (1 - q)) * rng.uniform(0.5, 1.0, size=(n, N_MODELS))
    return heads.stack(q, np.clip(c, 0, 1), s)


def make(name: str, params: dict[str, Any] | None = None) -> Any:
    cls = ROUTERS.get(name)
    kw = {"n_models": N_MODELS} if "n_models" in cls().get_params() else {}
    return cls(**kw, **(params or {}))


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """`NAME:key=value,...` -> (label, router name, keyword arguments); values as JSON
    where they parse, else strings (e.g. `mlp3:dtype=float64`)."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return (f"{name}[{rest}]" if rest else name), name, params


def run(n_queries: int, n_test: int, routers: list[str]) -> dict:
    """`routers`: names, or `NAME:key=value,...` variants (`parse_variant`) so that two
    settings of one router are timed side by side in one run."""
    vec = make_featurizer("tfidf20k")
    X = vec.fit_transform(synthetic_texts(n_queries, 0))
    Xt = vec.transform(synthetic_texts(n_test, 1))
    Y = synthetic_targets(n_queries, 2)
    Y_ss = Y.copy()
    Y_ss[:, 2 * N_MODELS :] = 0.0
    out = {"queries": n_queries, "test": n_test, "features": X.shape[1], "nnz": X.nnz}
    out["cpus"] = os.cpu_count()
    out["routers"] = {}
    for label, name, params in map(parse_variant, routers):
        row: dict[str, Any] = {}
        for sup, y in (("dars", Y), ("single_shot", Y_ss)):
            t0 = time.perf_counter()
            r = make(name, params).fit(X, y)
            t1 = time.perf_counter()
            pred = r.predict(Xt)
            t2 = time.perf_counter()
            assert pred.shape == (n_test, 3 * N_MODELS) and np.isfinite(pred).all()
            row[f"fit_s_{sup}"] = round(t1 - t0, 3)
            row[f"predict_s_{sup}"] = round(t2 - t1, 3)
            if hasattr(r, "n_iter_"):
                row[f"n_iter_{sup}"] = int(r.n_iter_)
            row[f"choice_{sup}"] = np.argmax(pred[:, :N_MODELS], axis=1)
        out["routers"][label] = row
        print(label, {k: v for k, v in row.items() if not k.startswith("choice")}, flush=True)
    # how often two variants of one router pick the same model (faithfulness of a speed-up)
    labels = list(out["routers"])
    for label in labels:
        row = out["routers"][label]
        base = next(x for x in labels if x.split("[")[0] == label.split("[")[0])
        for sup in ("dars", "single_shot"):
            same = row[f"choice_{sup}"] == out["routers"][base][f"choice_{sup}"]
            if base != label:
                row[f"same_choice_as_{base}_{sup}"] = float(np.mean(same))
    for row in out["routers"].values():
        for sup in ("dars", "single_shot"):
            del row[f"choice_{sup}"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--test", type=int, default=1148)
    ap.add_argument(
        "--routers",
        default=";".join(DARS_ROUTERS),
        help="';'-separated names or NAME:key=value,... variants, e.g. "
        "'mlp3:dtype=float64;mlp3:dtype=float32'",
    )
    ap.add_argument("--out", default="benchmarks/results/dars_routers_fit.json")
    a = ap.parse_args()
    res = run(a.queries, a.test, [r for r in a.routers.split(";") if r])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
