"""The field's metrics against hand-computed golden cases (tests/golden/field_metrics.json)."""

import json
from pathlib import Path

import numpy as np
import pytest

from dars.evaluation import field_metrics as F

GOLDEN = json.loads((Path(__file__).parent / "golden" / "field_metrics.json").read_text())


@pytest.mark.parametrize("case", GOLDEN["aiq"])
def test_aiq(case):
    got = F.aiq(case["costs"], case["qualities"], c_max=case["c_max"])
    assert got == pytest.approx(case["expected"])


def test_routellm_cpt_and_apgr():
    g = GOLDEN["routellm"]
    got = F.routellm_metrics(np.array(g["preference"]), np.array(g["strong"]), np.array(g["weak"]))
    for k, v in g["expected"].items():
        assert got[k] == pytest.approx(v), k


def test_routellm_ties_send_every_tied_query_together():
    t, share, q = F.routellm_curve(np.array([0.5, 0.5, 0.1]), np.ones(3), np.zeros(3))
    assert share.tolist() == pytest.approx([0, 2 / 3, 1]) and q.tolist() == pytest.approx(share)
    assert t[0] == np.inf


def test_thresholds_are_tuned_on_validation_and_applied_unchanged_on_test():
    g = GOLDEN["routellm"]
    val = (np.array(g["preference"]), np.array(g["strong"]), np.array(g["weak"]))
    # on validation PGR 0.5 needs the 0.9 query: threshold 0.9
    assert F.tune_threshold(*val, level=0.5) == 0.9
    test_pref = np.array([0.95, 0.2, 0.92])
    calls, g_test = F.apply_threshold(test_pref, np.ones(3), np.zeros(3), 0.9)
    assert calls == pytest.approx(2 / 3) and g_test == pytest.approx(2 / 3)
    out = F.routellm_metrics(test_pref, np.ones(3), np.zeros(3), validation=val)
    assert out["validated_cpt_50"] == {
        "strong_calls": pytest.approx(2 / 3),
        "pgr": pytest.approx(2 / 3),
    }


def test_imp_max_and_oracle_gap():
    for case in GOLDEN["imp_max"]:
        assert F.imp_max(case["quality"], best_single=case["best_single"]) == pytest.approx(
            case["expected"]
        )
    for case in GOLDEN["oracle_gap"]:
        assert F.oracle_gap(case["quality"], oracle=case["oracle"]) == pytest.approx(
            case["expected"]
        )
    assert np.isnan(F.imp_max(0.5, best_single=0.0))


@pytest.mark.parametrize("case", GOLDEN["arena_score"])
def test_arena_score(case):
    assert F.arena_score(case["accuracy"], case["cost_per_1k"]) == pytest.approx(case["expected"])


def test_arena_score_has_no_value_for_a_free_router():
    assert np.isnan(F.arena_score(0.9, 0.0))


def test_robustness_and_macro():
    for case in GOLDEN["robustness"]:
        assert F.robustness(np.array(case["choices"])) == pytest.approx(case["expected"])
    assert np.isnan(F.robustness(np.array([[0, 1]])))  # one rewrite: nothing to compare
    m = GOLDEN["macro"]
    assert F.macro(m["per_task"]) == m["expected"]


def test_scoring_reports_the_field_block_with_robustness_per_task_and_macro():
    from dars.evaluation import metrics as M
    from dars.evaluation import scoring
    from dars.evaluation.routing import EvalSettings

    lm = M.LabelMatrix(
        query_ids=["a", "b", "c", "d"],
        models=["big", "small"],
        mean=np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6], [0.5, 0.5]]),
        std=np.zeros((4, 2)),
        cost=np.array([[1.0, 0.1]] * 4),
        single_shot=np.array([[1.0, 0.0]] * 4),
        tasks=["x", "x", "y", "y"],
    )
    pred = np.array([[0.9, 0.1], [0.1, 0.7], [0.2, 0.6], [0.6, 0.5]])
    st = EvalSettings(
        lambda_cost=0.0, beta_risk=0.0, lambdas=(0.0, 1.0), n_boot=50, seed=0, ci=0.95
    )
    # rewrites: query a keeps its model, b changes, c has one rewrite only, d changes
    rw = [
        np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.6], [0.6, 0.5]]),
        np.array([[0.8, 0.1], [0.1, 0.9], [np.nan, np.nan], [0.1, 0.5]]),
    ]
    result, *_ = scoring.score(
        {"r": {"dars": [(pred, np.array([1.0, 0.1]))]}},
        lm=lm,
        settings=st,
        rewrite_predictions={"r": {"dars": [rw]}},
    )
    f = result["field"]
    assert f["strong_model"] == "big" and f["weak_model"] == "small"
    r = f["systems"]["r"]["dars"]
    # routed: a big, b small, c small, d big -> quality (0.9 + 0.7 + 0.6 + 0.5) / 4
    q = (0.9 + 0.7 + 0.6 + 0.5) / 4
    assert r["all"]["oracle_gap"] == pytest.approx((0.9 + 0.8 + 0.6 + 0.5) / 4 - q)
    assert r["all"]["imp_max"] == pytest.approx((q - 0.6) / 0.6)
    assert r["all"]["robustness"] == pytest.approx(2 / 3)
    assert r["per_task"]["x"]["robustness"] == pytest.approx(0.5)
    assert r["per_task"]["y"]["robustness"] == pytest.approx(1.0)
    assert r["macro"]["robustness"] == pytest.approx(0.75)
    assert "arena_score" not in r["all"]  # no raw $ without labels' mean_cost
