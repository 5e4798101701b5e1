"""The `evaluate` stage: every trained router on the test split, both supervisions.

Metrics and their definitions are in `dars.evaluation.metrics`. Outputs:

* `--metrics` JSON: per router and supervision every metric with its paired-bootstrap
  interval (single-shot: mean and std over the R draws), the DARS - single-shot
  difference per metric with its interval and p-value, the oracle and the best single
  model (in hindsight) as references, and how often single-shot test labels name another
  best model than the distributional labels.
* `--table` Markdown: the DARS-vs-single-shot table and the full metrics table.
* `views` (with `--outcomes`): every system again under DARS's evaluation views of the
  test split, `prompt_variation` and `decoding_variation` (`dars.labels.views`), derived
  from the same outcomes, next to the full K x N label; the table adds a per-view section.
* `--plots-dir`: `cost_quality.png` (lambda sweep per router, both supervisions, with the
  oracle and the single models) and `label_noise.png` (histogram of single_shot - mean
  over all labels).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dars.core.errors import InputDataError
from dars.core.io import write_json, write_text
from dars.core.params import load_params, section
from dars.evaluation import views as dvc_views
from dars.evaluation.report import markdown_tables, plot_cost_quality, plot_label_noise, view_table  # noqa: F401
from dars.evaluation.routing import (
    EvalSettings,
    check_predictions,
    evaluate_systems,
    evaluate_views,
    test_label_matrix,
)
from dars.labels import utility as W
from dars.labels import views as V
from dars.routers.io import load_router, read_routing_inputs
from dars.routers.targets import split_queries


def eval_settings(params: dict[str, Any]) -> EvalSettings:
    agg, ev = section(params, "aggregate"), section(params, "evaluate")
    return EvalSettings(
        lambda_cost=W.weight(agg.lambda_cost),
        beta_risk=W.weight(agg.beta_risk),
        lambdas=tuple(sorted(float(g) for g in ev.lambda_grid)),
        n_boot=int(ev.bootstrap),
        seed=int(ev.seed),
        ci=float(ev.ci),
    )


def run(
    *,
    params_path: str,
    labels: str,
    queries: str,
    splits: str,
    models_dir: str,
    metrics_out: str,
    table_out: str,
    plots_dir: str,
    outcomes_dir: str | None = None,
    headline_out: str | None = None,
) -> Path:
    params = load_params(params_path)
    st = eval_settings(params)
    lab, q, spl = read_routing_inputs(labels=labels, queries=queries, splits=splits)
    index_path = Path(models_dir) / "index.json"
    if not index_path.exists():
        raise InputDataError(f"router index {str(index_path)!r} does not exist; run `dars train`")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    models = list(index["models"])
    if sorted(lab["model"].unique()) != sorted(models):
        raise InputDataError(
            f"labels file {labels!r} has models {sorted(lab['model'].unique())} but the routers "
            f"in {str(index_path)!r} were trained on {models}; rerun `dars train`"
        )
    test = split_queries(spl, q, "test")
    lm, ok = test_label_matrix(lab, test["query_id"].tolist(), models)
    if not len(lm.query_ids):
        raise InputDataError(f"no test query in {splits!r} has complete labels to score")
    texts = [t for t, k in zip(test["prompt"], ok, strict=True) if k]

    runs: dict[str, dict[str, list[tuple[int, np.ndarray, np.ndarray]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for e in index["routers"]:
        obj = load_router(Path(models_dir) / e["path"])
        if list(obj["models"]) != models:
            raise InputDataError(f"router file {e['path']!r} has models {obj['models']}")
        pred = check_predictions(
            obj["pipeline"].predict(texts), n_queries=len(texts), models=models, who=e["path"]
        )
        runs[e["router"]][e["supervision"]].append(
            (int(e["repeat"]), pred, np.asarray(obj["cost_estimate"], dtype=np.float64))
        )
    systems = {
        name: {sup: [(p, c) for _, p, c in sorted(rs, key=lambda t: t[0])] for sup, rs in s.items()}
        for name, s in runs.items()
    }
    result, scored, refs, ref = evaluate_systems(systems, lm=lm, settings=st)
    result["n_test_dropped"] = int((~ok).sum())
    result["single_shot_repeats"] = int(index.get("single_shot_repeats", 1))
    result["features"] = index.get("features")
    if outcomes_dir is not None:
        outcomes = V.read_outcomes(outcomes_dir, models=models, query_ids=lm.query_ids)
        by_view = V.all_view_labels(
            outcomes,
            query_ids=lm.query_ids,
            cost_scale=V.cost_scale(lab),
            tasks=lab[["query_id", "task"]] if "task" in lab.columns else None,
        )
        result["views"] = evaluate_views(systems, lm=lm, labels_by_view=by_view, settings=st)
    write_json(result, metrics_out)
    table = markdown_tables(result)
    write_text(table, table_out)
    plots = Path(plots_dir)
    plot_cost_quality(scored, refs, ref, plots / "cost_quality.png")
    plot_label_noise(lab, plots / "label_noise.png")
    curves = {n: {s: sc.curve for s, sc in sups.items()} for n, sups in scored.items()}
    curves["oracle"] = {"reference": refs["oracle"].curve}
    dvc_views.write_router_views(
        result=result,
        curves=curves,
        lambdas=st.lambdas,
        labels=lab,
        metrics_path=headline_out or Path(metrics_out).with_name("routers_headline.json"),
        plots_dir=plots,
    )
    print(table)
    return Path(metrics_out)
