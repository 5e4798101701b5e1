"""Routing metrics against hand-computed values, and the bootstrap's coverage."""

import numpy as np
import pandas as pd
import pytest

from dars.core.errors import InputDataError
from dars.evaluation import metrics as M

LAM, BETA = 0.1, 0.5


@pytest.fixture(scope="module")
def lm() -> M.LabelMatrix:
    # 3 queries x 2 models; U = mean - 0.1 cost - 0.5 std by hand:
    #   q0: 0.75 0.33 | q1: 0.00 0.58 | q2: 0.60 0.48
    return M.LabelMatrix(
        query_ids=["q0", "q1", "q2"],
        models=["big", "small"],
        mean=np.array([[0.9, 0.5], [0.2, 0.6], [0.7, 0.7]]),
        std=np.array([[0.1, 0.3], [0.2, 0.0], [0.0, 0.4]]),
        cost=np.array([[1.0, 0.2], [1.0, 0.2], [1.0, 0.2]]),
        single_shot=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, np.nan]]),
    )


def test_utility_matches_hand_values(lm):
    u = M.utility(mean=lm.mean, cost=lm.cost, std=lm.std, lambda_cost=LAM, beta_risk=BETA)
    assert np.allclose(u, [[0.75, 0.33], [0.0, 0.58], [0.6, 0.48]])


def test_route_maximises_score_minus_cost_and_breaks_ties_to_cheaper():
    scores = np.array([[0.5, 0.5, 0.1], [0.9, 0.5, 0.5], [0.6, 0.55, 0.0]])
    cost = np.array([1.0, 0.2, 0.0])
    assert M.route(scores, cost=cost, lambda_cost=0.0).tolist() == [1, 0, 0]
    # lambda = 0.1: q2 becomes 0.5 vs 0.53 -> the cheaper model wins
    assert M.route(scores, cost=cost, lambda_cost=0.1).tolist() == [1, 0, 1]
    assert M.route(scores, cost=cost, lambda_cost=100.0).tolist() == [2, 2, 2]
    sweep = M.route_sweep(scores, cost=cost, lambdas=[0.0, 0.1])
    assert sweep.shape == (2, 3) and sweep[1].tolist() == [1, 0, 1]


def test_per_query_metrics_match_hand_values(lm):
    pq = M.per_query(np.array([1, 1, 0]), lm, lambda_cost=LAM, beta_risk=BETA)
    assert np.allclose(pq["quality"], [0.5, 0.6, 0.7])
    assert np.allclose(pq["cost"], [0.2, 0.2, 1.0])
    assert np.allclose(pq["utility"], [0.33, 0.58, 0.6])
    assert np.allclose(pq["regret"], [0.42, 0.0, 0.0])
    # verdicts: (0 >= .5) != (.5 >= .5) flips; the others agree
    assert np.allclose(pq["verdict_flip"], [1.0, 0.0, 0.0])
    # a failed single-shot generation is left out, not counted as wrong
    pq2 = M.per_query(np.array([1, 1, 1]), lm, lambda_cost=LAM, beta_risk=BETA)
    assert np.isnan(pq2["verdict_flip"][2]) and "quality_true" not in pq2


def test_apgr_is_zero_at_best_single_and_one_at_oracle():
    assert M.apgr(0.50333, u_best_single=0.46333, u_oracle=0.64333) == pytest.approx(0.2222, 1e-3)
    assert M.apgr(0.4, u_best_single=0.4, u_oracle=0.9) == 0.0
    assert M.apgr(0.9, u_best_single=0.4, u_oracle=0.9) == 1.0
    assert np.isnan(M.apgr(0.5, u_best_single=0.6, u_oracle=0.6))


def test_upper_envelope_and_nauc_hand_computed():
    c = np.array([0.2, 0.6, 1.0])
    q = np.array([0.5, 0.7, 0.8])
    # trapezoids: 0.4 * 0.6 + 0.4 * 0.75 = 0.54 over a range of 0.8
    assert M.nauc(c, q, c_lo=0.2, c_hi=1.0) == pytest.approx(0.675)
    # a dominated point and a duplicate change nothing
    c2, q2 = np.append(c, [0.5, 0.6]), np.append(q, [0.4, 0.65])
    assert M.nauc(c2, q2, c_lo=0.2, c_hi=1.0) == pytest.approx(0.675)
    # a point under the chord (not concave) is skipped by the mixing envelope
    xs, ys = M.upper_envelope(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.2, 1.0]))
    assert xs.tolist() == [0.0, 1.0] and ys.tolist() == [0.0, 1.0]
    # quality falling with cost: the envelope stops at the best point and stays flat
    xs, ys = M.upper_envelope(np.array([0.2, 0.6, 1.0]), np.array([0.5, 0.8, 0.6]))
    assert xs.tolist() == [0.2, 0.6]
    assert M.nauc(np.array([0.2, 0.6, 1.0]), np.array([0.5, 0.8, 0.6]), c_lo=0.2, c_hi=1.0) == (
        pytest.approx((0.4 * 0.65 + 0.4 * 0.8) / 0.8)
    )
    # flat extension left of the cheapest point; a degenerate range reads one value
    assert M.nauc(np.array([0.5]), np.array([0.3]), c_lo=0.0, c_hi=1.0) == pytest.approx(0.3)
    assert M.nauc(c, q, c_lo=0.6, c_hi=0.6) == pytest.approx(0.7)


def test_bootstrap_ci_covers_a_known_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    true_mean, n, reps = 0.3, 60, 300
    covered = 0
    for r in range(reps):
        x = rng.binomial(1, true_mean, size=n).astype(float)
        idx = M.bootstrap_indices(n, n_boot=500, seed=r)
        lo, hi = M.percentile_ci(x[idx].mean(axis=1))
        covered += lo <= true_mean <= hi
    assert 0.89 <= covered / reps <= 0.99, covered / reps


def test_bootstrap_p_value():
    assert M.bootstrap_p_value(np.full(999, 0.1)) == pytest.approx(2 / 1000)
    assert M.bootstrap_p_value(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)
    assert np.isnan(M.bootstrap_p_value(np.array([np.nan])))


def _ref(lm, n_boot=300):
    return M.reference(
        lm, lambda_cost=LAM, beta_risk=BETA, lambdas=[0.0, 0.1, 1.0, 100.0], n_boot=n_boot, seed=0
    )


def test_score_oracle_best_single_and_a_router(lm):
    ref = _ref(lm)
    assert ref.u_oracle == pytest.approx(0.64333, abs=1e-4)
    assert ref.u_best == pytest.approx(0.46333, abs=1e-4)
    oracle = M.score(*M.oracle_choices(ref), ref).summary()
    assert oracle["regret"]["value"] == pytest.approx(0.0)
    assert oracle["apgr"]["value"] == pytest.approx(1.0)
    best = M.score(*M.best_single_choices(ref), ref).summary()
    assert best["apgr"]["value"] == pytest.approx(0.0)
    assert best["utility"]["value"] == pytest.approx(0.46333, abs=1e-4)

    # a router choosing [small, small, big] at lambda; a sweep from always-big to always-small
    choices = np.array([1, 1, 0])
    sweep = np.array([[0, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]])
    s = M.score(choices, sweep, ref)
    summ = s.summary()
    assert summ["utility"]["value"] == pytest.approx(0.50333, abs=1e-4)
    assert summ["apgr"]["value"] == pytest.approx(0.2222, abs=1e-3)
    assert summ["regret"]["value"] == pytest.approx(0.14)
    assert summ["verdict_flip"]["value"] == pytest.approx(1 / 3)
    # sweep points: (1.0, 0.6), (0.4667, 0.6), (0.2, 0.6) -> flat envelope at 0.6
    assert summ["nauc"]["value"] == pytest.approx(0.6)
    for k, v in summ.items():
        if k != "apgr":  # a ratio of resampled means can fall outside the point range
            assert v["ci_low"] <= v["value"] + 1e-9 <= v["ci_high"] + 2e-9, k
    assert summ["utility"]["repeats"] == 1 and summ["utility"]["std"] == 0.0

    # against itself the difference is exactly 0; against the oracle it is negative
    same = M.compare(s, s)
    assert same["utility"]["diff"] == 0.0 and same["utility"]["p_value"] == 1.0
    d = M.compare(s, M.score(*M.oracle_choices(ref), ref))
    assert d["utility"]["diff"] == pytest.approx(0.50333 - 0.64333, abs=1e-4)
    assert d["utility"]["ci_high"] <= 0


def test_repeats_are_averaged_and_their_spread_reported(lm):
    ref = _ref(lm)
    sweep = np.zeros((2, 4, 3), dtype=int)
    s = M.score(np.array([[0, 0, 0], [1, 1, 1]]), sweep, ref).summary()
    u_big, u_small = (0.75 + 0.0 + 0.6) / 3, (0.33 + 0.58 + 0.48) / 3
    assert s["utility"]["value"] == pytest.approx((u_big + u_small) / 2)
    assert s["utility"]["std"] == pytest.approx(np.std([u_big, u_small], ddof=1))
    assert s["utility"]["repeats"] == 2


def test_oracle_flip_rate_counts_only_queries_with_every_single_shot(lm):
    ref = _ref(lm)
    flip = M.oracle_flip_rate(ref)
    # q0: single-shot best = big (1 - 0.1) vs true best big -> same;
    # q1: single-shot best = small vs true best small -> same; q2 has a failed single shot
    assert flip == {"rate": 0.0, "n_queries": 2}


def test_label_matrix_pivots_and_marks_missing_pairs():
    labels = pd.DataFrame(
        {
            "query_id": ["a", "a", "b"],
            "model": ["m1", "m2", "m1"],
            "mean": [0.5, 0.7, 0.1],
            "std": [0.1, 0.2, 0.0],
            "cost_norm": [1.0, 0.5, 1.0],
            "single_shot": [1.0, 0.0, 0.0],
        }
    )
    lm = M.label_matrix(labels, query_ids=["b", "a"], models=["m1", "m2"])
    assert lm.mean[1].tolist() == [0.5, 0.7] and np.isnan(lm.mean[0, 1])
    assert lm.true_p is None
    assert M.complete_rows(lm).tolist() == [False, True]
    with pytest.raises(InputDataError, match="missing"):
        _ref(lm)
