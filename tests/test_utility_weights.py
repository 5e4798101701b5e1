"""Per-task utility weights (`aggregate.lambda_cost` / `beta_risk` as a number or task ->
number): parsing, aggregate, train targets and the routing metrics use the same values."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dars.core.errors import InputDataError, ParamsError
from dars.core.params import check_all, errors, section
from dars.evaluation import metrics as M
from dars.labels import utility as W
from dars.routers.targets import dars_targets
from dars.stages.aggregate import aggregate_labels, aggregation_settings

DARS_BETA = {"gpqa": 0.1, "math": 0.05, "drop": 0.15}


def test_parse_weight_accepts_a_number_or_a_mapping():
    assert W.parse_weight(0.2, "aggregate.beta_risk") == 0.2
    assert W.parse_weight(DARS_BETA, "aggregate.beta_risk") == DARS_BETA
    assert W.parse_weight(1, "aggregate.lambda_cost") == 1.0


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-0.1, r"'aggregate.beta_risk' = -0.1 is out of range"),
        (True, r"'aggregate.beta_risk' = True is not a number"),
        ("0.2", r"is not a number; allowed: a number >= 0, or a mapping"),
        ({}, r"'aggregate.beta_risk' is an empty mapping"),
        ({"gpqa": -1}, r"'aggregate.beta_risk.gpqa' = -1 is out of range"),
        ({"gpqa": float("nan")}, r"'aggregate.beta_risk.gpqa' = nan is not a number"),
    ],
)
def test_parse_weight_rejects_bad_values_naming_the_key(value, match):
    with pytest.raises(ParamsError, match=match):
        W.parse_weight(value, "aggregate.beta_risk")


def test_the_schema_checks_per_task_weights_against_prepare_tasks():
    params = {
        "prepare": {"tasks": {"gpqa": {"kind": "gpqa"}, "math": {"kind": "math"}}},
        "aggregate": {"lambda_cost": 0.05, "beta_risk": {"gpqa": 0.1, "maths": 0.05}},
    }
    errs = errors(params)
    assert any("'aggregate.beta_risk.maths'" in e and "Did you mean 'math'" in e for e in errs)
    assert any("'aggregate.beta_risk' has no value for tasks ['math']" in e for e in errs)
    params["aggregate"]["beta_risk"] = {"gpqa": 0.1, "math": -0.05}
    with pytest.raises(ParamsError, match=r"'aggregate.beta_risk.math' = -0.05 is out of range"):
        check_all(params)
    params["aggregate"]["beta_risk"] = {"gpqa": 0.1, "math": 0.05}
    check_all(params)
    assert section(params, "aggregate").beta_risk == {"gpqa": 0.1, "math": 0.05}


def test_per_row_resolves_each_rows_task_and_fails_on_a_task_without_a_value():
    got = W.per_row(DARS_BETA, ["math", "drop", "gpqa", "math"], key="aggregate.beta_risk")
    assert got.tolist() == [0.05, 0.15, 0.1, 0.05]
    assert W.per_row(0.2, ["a", "b"], key="k").tolist() == [0.2, 0.2]
    with pytest.raises(InputDataError, match=r"tasks \['humaneval'\] without one"):
        W.per_row(DARS_BETA, ["gpqa", "humaneval"], key="aggregate.beta_risk")
    with pytest.raises(InputDataError, match="no `task` column"):
        W.per_row(DARS_BETA, None, key="aggregate.beta_risk")
    assert W.describe(DARS_BETA) == "drop 0.15, gpqa 0.1, math 0.05"


def test_per_row_on_an_arrow_column_matches_the_list_and_rejects_null_tasks():
    tasks = ["math", "drop", "gpqa", "math", "drop"]
    column = pa.chunked_array([tasks[:2], tasks[2:]])
    got = W.per_row(DARS_BETA, column, key="aggregate.beta_risk")
    assert got.tolist() == W.per_row(DARS_BETA, tasks, key="aggregate.beta_risk").tolist()
    assert W.per_row(0.2, column, key="k").tolist() == [0.2] * 5
    with pytest.raises(InputDataError, match=r"tasks \['humaneval'\] without one"):
        W.per_row(DARS_BETA, pa.array(["gpqa", "humaneval"]), key="aggregate.beta_risk")
    with pytest.raises(InputDataError, match="some labels have no task"):
        W.per_row(DARS_BETA, pa.array(["gpqa", None]), key="aggregate.beta_risk")


def _outcomes() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two queries (gpqa, drop) x one model, scores with a known mean and std."""
    rows = []
    for qid, scores in (("qg", [1, 0, 1, 1]), ("qd", [1, 0, 0, 0])):
        for i, s in enumerate(scores):
            rows.append(
                {
                    "query_id": qid,
                    "model": "m",
                    "variant_id": i // 2,
                    "sample_id": i % 2,
                    "score": float(s),
                    "status": "ok",
                    "cost": 2.0 if qid == "qg" else 1.0,
                    "backend": "simulated",
                    "true_p": 0.5,
                }
            )
    queries = pd.DataFrame({"query_id": ["qg", "qd"], "task": ["gpqa", "drop"]})
    return pd.DataFrame(rows), queries


def test_aggregate_applies_each_tasks_weight_to_the_utility():
    outcomes, queries = _outcomes()
    params = {"aggregate": {"lambda_cost": {"gpqa": 0.5, "drop": 0.0}, "beta_risk": DARS_BETA}}
    assert aggregation_settings(params)["beta_risk"] == DARS_BETA
    settings = aggregation_settings(params)
    lab = aggregate_labels(outcomes=outcomes, queries=queries, settings=settings)
    lab = lab.set_index("query_id")
    std = np.sqrt(0.75 * 0.25)  # both pairs: mean 0.75 / 0.25, population std
    # qg: cost_norm 1 (the largest), lambda 0.5, beta 0.1; qd: cost_norm 0.5, lambda 0, beta 0.15
    assert lab.loc["qg", "utility"] == pytest.approx(0.75 - 0.5 * 1.0 - 0.1 * std)
    assert lab.loc["qd", "utility"] == pytest.approx(0.25 - 0.0 * 0.5 - 0.15 * std)
    with pytest.raises(InputDataError, match=r"tasks \['drop'\] without one"):
        aggregate_labels(
            outcomes=outcomes,
            queries=queries,
            settings=aggregation_settings({"aggregate": {"beta_risk": {"gpqa": 0.1}}}),
        )


def test_train_targets_use_each_querys_beta():
    outcomes, queries = _outcomes()
    settings = aggregation_settings({"aggregate": {}})
    lab = aggregate_labels(outcomes=outcomes, queries=queries, settings=settings)
    y, _ = dars_targets(lab, query_ids=["qd", "qg"], models=["m"], beta_risk=DARS_BETA)
    std = np.sqrt(0.75 * 0.25)
    assert y[:, 0] == pytest.approx([0.25 - 0.15 * std, 0.75 - 0.1 * std])


def _lm(tasks):
    rng = np.random.default_rng(3)
    n, m = len(tasks), 3
    return M.LabelMatrix(
        query_ids=[f"q{i}" for i in range(n)],
        models=["a", "b", "c"],
        mean=rng.random((n, m)),
        std=rng.random((n, m)) * 0.3,
        cost=np.tile([0.1, 0.5, 1.0], (n, 1)),
        single_shot=(rng.random((n, m)) < 0.5).astype(float),
        tasks=tasks,
    )


def test_metrics_with_one_value_per_task_equal_the_scalar_metrics():
    tasks = ["gpqa", "math", "drop"] * 8
    lm = _lm(tasks)
    kw = {"lambdas": (0.0, 0.1, 1.0), "n_boot": 200, "seed": 0}
    same = {t: 0.2 for t in ("gpqa", "math", "drop")}
    r1 = M.reference(lm, lambda_cost=0.05, beta_risk=0.2, **kw)
    r2 = M.reference(lm, lambda_cost={t: 0.05 for t in same}, beta_risk=same, **kw)
    for choose in (M.oracle_choices, M.best_single_choices):
        s1, s2 = M.score(*choose(r1), r1), M.score(*choose(r2), r2)
        for k in s1.points:
            assert np.allclose(s1.points[k], s2.points[k], equal_nan=True), k
    assert M.oracle_flip_rate(r1) == M.oracle_flip_rate(r2)


def test_metrics_use_each_querys_task_weights():
    tasks = ["gpqa", "math", "drop"] * 8
    lm = _lm(tasks)
    ref = M.reference(
        lm, lambda_cost=0.05, beta_risk=DARS_BETA, lambdas=(0.0, 1.0), n_boot=200, seed=0
    )
    beta = np.array([DARS_BETA[t] for t in tasks])[:, None]
    u = lm.mean - 0.05 * lm.cost - beta * lm.std
    choices, sweep = M.oracle_choices(ref)
    assert (choices == u.argmax(axis=1)).all()  # the oracle maximises the per-task utility
    scored = M.score(choices, sweep, ref)
    assert scored.points["utility"][0] == pytest.approx(u.max(axis=1).mean())
    assert scored.points["regret"][0] == pytest.approx(0.0)
    one, _ = M.best_single_choices(ref)
    assert one.shape == (len(tasks),) and len(set(one)) == 1
    assert one[0] == int(u.mean(axis=0).argmax())
    assert 0.0 <= M.oracle_flip_rate(ref)["rate"] <= 1.0
    with pytest.raises(InputDataError, match="no `task` column"):
        M.reference(
            M.LabelMatrix(**{**lm.__dict__, "tasks": None}),
            lambda_cost=0.05,
            beta_risk=DARS_BETA,
            lambdas=(0.0,),
            n_boot=100,
            seed=0,
        )
