"""The `evaluate` stage: every trained router on the test split, both supervisions.

Our protocol (default; `dars.evaluation.scoring.score`, shared with `dars bench`):
`--metrics` JSON with every metric and its paired-bootstrap interval, DARS minus
single-shot, the oracle and the best single model, DARS's evaluation views (with
`--outcomes`) and the field's metrics; `--table` Markdown; `--plots-dir` the cost-quality
and label-noise plots (PNG and CSV) and `--headline` the flat metrics DVC shows.

`--protocol dars` (`dars.evaluation.dars_protocol`): what the DARS authors' code computes,
from the outcome rows (it fits the `routers.names` routers itself, per task, R runs);
writes `--metrics` and `--table` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dars.core.errors import InputDataError
from dars.core.io import write_json, write_text
from dars.core.params import load_params, section
from dars.evaluation import dars_protocol as P
from dars.evaluation import report, scoring, systems
from dars.evaluation import views as dvc_views
from dars.evaluation.report import view_table  # noqa: F401  (re-exported for callers)
from dars.evaluation.routing import eval_settings
from dars.labels import views as V
from dars.routers.io import read_routing_inputs


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
    protocol: str = "ours",
    runs: int | None = None,
    beta_per_task: Sequence[str] | None = None,
) -> Path:
    params = load_params(params_path)
    lab, q, spl = read_routing_inputs(labels=labels, queries=queries, splits=splits)
    models = sorted(lab["model"].unique())
    if protocol == "dars":
        if outcomes_dir is None:
            raise InputDataError("--protocol dars reads the outcome rows: pass --outcomes DIR")
        result = P.evaluate_files(
            outcomes_dir,
            queries=q,
            splits=spl,
            models=models,
            routers=section(params, "routers"),
            runs=runs,
            beta_per_task=beta_per_task,
        )
        write_json(result, metrics_out)
        write_text(table := P.markdown(result), table_out)
        print(table)
        return Path(metrics_out)
    st = eval_settings(params)
    index = systems.read_index(models_dir, models=models, labels_path=labels)
    lms, texts, dropped = systems.split_inputs(lab, q, spl, models=list(index["models"]))
    lm = lms["test"]
    if not len(lm.query_ids):
        raise InputDataError(f"no test query in {splits!r} has complete labels to score")
    preds = systems.predict_all(models_dir, index, texts)
    outcomes = None
    if outcomes_dir is not None:
        outcomes = V.read_outcomes(outcomes_dir, models=lm.models, query_ids=lm.query_ids)
    val = scoring.validation(lms["validation"], preds["validation"])
    test_lab = lab[lab["query_id"].isin(set(lm.query_ids))]
    result, scored, refs, ref = scoring.score(
        preds["test"], lm=lm, settings=st, outcomes=outcomes, labels=test_lab, validation=val
    )
    result["n_test_dropped"] = dropped["test"]
    result["single_shot_repeats"] = int(index.get("single_shot_repeats", 1))
    result["features"] = index.get("features")
    write_json(result, metrics_out)
    write_text(table := report.markdown_tables(result), table_out)
    plots = Path(plots_dir)
    report.plot_cost_quality(scored, refs, ref, plots / "cost_quality.png")
    report.plot_label_noise(lab, plots / "label_noise.png")
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
