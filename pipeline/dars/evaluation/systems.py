"""The routers `dars train` wrote, as scoring systems: read the index, predict, check.

`read_index` checks that the routers were trained on the labels' models; `predict_all`
loads every router file once and predicts every text set given (test, validation), so
each system is {supervision: [(predicted scores, cost estimate), ...]} per set, repeats
in order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError
from dars.evaluation import metrics as M
from dars.evaluation.routing import check_predictions, test_label_matrix
from dars.routers.io import load_router
from dars.routers.targets import split_queries

Runs = list[tuple[np.ndarray, np.ndarray]]


def read_index(
    models_dir: str | Path, *, models: Sequence[str], labels_path: str
) -> dict[str, Any]:
    path = Path(models_dir) / "index.json"
    if not path.exists():
        raise InputDataError(f"router index {str(path)!r} does not exist; run `dars train`")
    index = json.loads(path.read_text(encoding="utf-8"))
    if sorted(models) != sorted(index["models"]):
        raise InputDataError(
            f"labels file {labels_path!r} has models {sorted(models)} but the routers in "
            f"{str(path)!r} were trained on {list(index['models'])}; rerun `dars train`"
        )
    return index


def predict_all(
    models_dir: str | Path, index: Mapping[str, Any], texts: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, dict[str, Runs]]]:
    """{text set: {router: {supervision: [(scores, cost estimate), ...]}}}."""
    models = list(index["models"])
    found: dict[str, dict[str, dict[str, list[tuple[int, np.ndarray, np.ndarray]]]]] = {
        k: defaultdict(lambda: defaultdict(list)) for k in texts
    }
    for e in index["routers"]:
        obj = load_router(Path(models_dir) / e["path"])
        if list(obj["models"]) != models:
            raise InputDataError(f"router file {e['path']!r} has models {obj['models']}")
        cost = np.asarray(obj["cost_estimate"], dtype=np.float64)
        for key, xs in texts.items():
            if not len(xs):
                continue
            pred = check_predictions(
                obj["pipeline"].predict(list(xs)), n_queries=len(xs), models=models, who=e["path"]
            )
            found[key][e["router"]][e["supervision"]].append((int(e["repeat"]), pred, cost))
    return {
        key: {
            name: {
                sup: [(p, c) for _, p, c in sorted(rs, key=lambda t: t[0])] for sup, rs in s.items()
            }
            for name, s in per.items()
        }
        for key, per in found.items()
    }


def split_inputs(
    labels: pd.DataFrame,
    queries: pd.DataFrame,
    splits: pd.DataFrame,
    *,
    models: list[str],
    names: Sequence[str] = ("test", "validation"),
) -> tuple[dict[str, M.LabelMatrix], dict[str, list[str]], dict[str, int]]:
    """Per split: the label matrix of its queries with complete labels, their texts (in
    the same order), and how many queries were dropped for missing labels."""
    lms, texts, dropped = {}, {}, {}
    for split in names:
        part = split_queries(splits, queries, split)
        lms[split], ok = test_label_matrix(labels, part["query_id"].tolist(), models)
        texts[split] = [t for t, k in zip(part["prompt"], ok, strict=True) if k]
        dropped[split] = int((~ok).sum())
    return lms, texts, dropped
