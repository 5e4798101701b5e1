"""Benchmark: saving and loading a router file, by the TF-IDF class its features use.

    .venv/bin/python benchmarks/router_files.py        # about 3 minutes on 2 cores

scikit-learn's TfidfVectorizer, fitted with `max_features` (as both TF-IDF featurizers
are), keeps NumPy int64 indices in its `vocabulary_`, and skops writes every one of them
as its own .npy entry in the zip. `dars.routers.features.TfidfFeatures` stores the same
mapping with Python ints. For each query count, both are fitted on the same texts inside
the same router pipeline (features + Ridge on random targets), then written with
`dars.routers.io.save_router` (skops + canonical bytes, as `dars train` writes them) and
read back with `load_router` (type check + load, as `dars evaluate` and `dars bench` do),
side by side, `--repeats` times each (median kept). The texts are synthetic: each query
is 20 words drawn from a 3,000-word vocabulary, so the vocabulary grows with the query
count as a real task's does (its size is recorded).

Output: benchmarks/results/router_files.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from dars.routers.features import tfidf
from dars.routers.io import load_router, save_router

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "router_files.json"


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(3000)]
    return [" ".join(rng.choice(words, 20)) for _ in range(n)]


def featurizers() -> dict[str, object]:
    ours = tfidf()
    return {"sklearn TfidfVectorizer": TfidfVectorizer(**ours.get_params()), "TfidfFeatures": ours}


def measure(features: object, docs: list[str], folder: Path, repeats: int) -> dict:
    y = np.random.default_rng(1).random((len(docs), 2))
    pipe = Pipeline([("features", features), ("core", Ridge())]).fit(docs, y)
    obj = {"pipeline": pipe, "models": ["a", "b"], "cost_estimate": [1.0, 2.0]}
    path = folder / "router.skops"
    save, load = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        save_router(obj, path)
        save.append(time.perf_counter() - t)
        t = time.perf_counter()
        back = load_router(path)
        load.append(time.perf_counter() - t)
    same = np.allclose(back["pipeline"].predict(docs[:50]), pipe.predict(docs[:50]))
    vocab = pipe.named_steps["features"].vocabulary_
    return {
        "vocabulary": len(vocab),
        "index_type": type(next(iter(vocab.values()))).__name__,
        "save_s": round(statistics.median(save), 3),
        "load_s": round(statistics.median(load), 3),
        "file_mb": round(path.stat().st_size / 1e6, 3),
        "zip_entries": len(zipfile.ZipFile(path).namelist()),
        "same_predictions_after_load": bool(same),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.queries:
            docs = texts(n)
            for name, features in featurizers().items():
                row = {"queries": n, "featurizer": name}
                row.update(measure(features, docs, Path(tmp), args.repeats))
                print(json.dumps(row))
                rows.append(row)
    by = {(r["queries"], r["featurizer"]): r for r in rows}
    ratios = {
        str(n): {
            key: round(
                by[(n, "sklearn TfidfVectorizer")][key] / max(by[(n, "TfidfFeatures")][key], 1e-9),
                1,
            )
            for key in ("save_s", "load_s", "file_mb")
        }
        for n in args.queries
    }
    result = {
        "what": "save_router / load_router of a features + Ridge router, by TF-IDF class",
        "command": " ".join(["python", *sys.argv]),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "rows": rows,
        "sklearn_over_ours": ratios,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
