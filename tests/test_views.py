"""DARS's evaluation views (prompt_variation, decoding_variation) from the same outcomes,
and `evaluate` reporting every router under each view next to the full label."""

import numpy as np
import pandas as pd
import pytest

from dars.core.errors import InputDataError
from dars.core.io import write_frame
from dars.evaluation import metrics as M
from dars.evaluation.routing import EvalSettings, evaluate_views
from dars.labels import views as V
from dars.stages.aggregate import aggregate_labels, aggregation_settings
from dars.stages.evaluate import view_table

# one (query, model) pair, K = 3 variants x N = 2 decodes; scores[v][s], cost[v][s]
SCORES = [[1.0, 0.0], [0.0, None], [1.0, 1.0]]  # variant 1 sample 1 failed
COSTS = [[1.0, 3.0], [2.0, 9.0], [4.0, 5.0]]


def _pair(qid: str = "q0", model: str = "m") -> list[dict]:
    return [
        {
            "query_id": qid,
            "model": model,
            "variant_id": v,
            "sample_id": s,
            "score": SCORES[v][s],
            "cost": COSTS[v][s],
            "status": "error" if SCORES[v][s] is None else "ok",
            "backend": "simulated",
            "true_p": 0.1 * (v + 1),
        }
        for v in range(3)
        for s in range(2)
    ]


def test_prompt_variation_keeps_one_decode_per_variant():
    lab = V.view_labels(pd.DataFrame(_pair()), view="prompt_variation", cost_scale=10.0).iloc[0]
    # sample 0 of each variant: scores 1, 0, 1; costs 1, 2, 4
    assert lab["n"] == 3
    assert lab["mean"] == pytest.approx(2 / 3)
    assert lab["std"] == pytest.approx(np.std([1, 0, 1]))
    assert lab["mean_cost"] == pytest.approx(7 / 3)
    assert lab["cost_norm"] == pytest.approx(7 / 30)
    assert lab["single_shot"] == 1.0
    assert lab["true_p"] == pytest.approx(0.2)


def test_decoding_variation_keeps_the_original_prompts_decodes():
    lab = V.view_labels(pd.DataFrame(_pair()), view="decoding_variation", cost_scale=10.0).iloc[0]
    assert lab["n"] == 2 and lab["mean"] == pytest.approx(0.5) and lab["std"] == pytest.approx(0.5)
    assert lab["mean_cost"] == pytest.approx(2.0) and lab["true_p"] == pytest.approx(0.1)


def test_a_failed_generation_is_left_out_never_a_zero():
    rows = _pair()
    for r in rows:
        if r["variant_id"] == 0:
            r["score"], r["status"] = None, "error"
    lab = V.view_labels(pd.DataFrame(rows), view="decoding_variation", cost_scale=1.0).iloc[0]
    assert lab["n"] == 0 and np.isnan(lab["mean"]) and np.isnan(lab["single_shot"])
    lab = V.view_labels(pd.DataFrame(rows), view="prompt_variation", cost_scale=1.0).iloc[0]
    assert lab["n"] == 2 and lab["mean"] == pytest.approx(0.5)  # variants 1 and 2 only
    assert lab["mean_cost"] == pytest.approx(3.0)  # failed generations' cost left out too


def test_views_match_the_full_label_when_k_or_n_is_one():
    """With N = 1 prompt_variation is the full label; with K = 1 decoding_variation is."""
    rows = [r for r in _pair() if r["sample_id"] == 0]
    out = pd.DataFrame(rows)
    queries = pd.DataFrame({"query_id": ["q0"], "task": ["t"]})
    full = aggregate_labels(outcomes=out, queries=queries, settings=aggregation_settings({}))
    scale = V.cost_scale(full)
    pv = V.view_labels(out, view="prompt_variation", cost_scale=scale, tasks=queries)
    for col in ("mean", "std", "mean_cost", "cost_norm", "single_shot"):
        assert pv[col].iloc[0] == pytest.approx(full[col].iloc[0]), col
    assert pv["task"].tolist() == ["t"]


def test_cost_scale_is_recovered_from_any_subset_of_the_labels():
    lab = pd.DataFrame({"mean_cost": [2.0, 4.0, 0.0], "cost_norm": [0.25, 0.5, 0.0]})
    assert V.cost_scale(lab) == pytest.approx(8.0)
    assert V.cost_scale(lab.iloc[[2]]) == 0.0


def test_unknown_view_and_missing_columns_fail_clearly():
    with pytest.raises(InputDataError, match="unknown evaluation view 'both'"):
        V.view_labels(pd.DataFrame(_pair()), view="both", cost_scale=1.0)
    with pytest.raises(InputDataError, match=r"lack columns \['cost'\]"):
        V.view_labels(pd.DataFrame(_pair()).drop(columns="cost"), view=V.VIEWS[0], cost_scale=1)


def test_read_outcomes_reads_only_the_requested_queries(tmp_path):
    rows = _pair("q0") + _pair("q1")
    write_frame(pd.DataFrame(rows), tmp_path / "m.parquet")
    got = V.read_outcomes(tmp_path, models=["m"], query_ids=["q1"])
    assert set(got["query_id"]) == {"q1"} and len(got) == 6 and "true_p" in got
    with pytest.raises(InputDataError, match="does not exist"):
        V.read_outcomes(tmp_path, models=["other"], query_ids=["q1"])


def _build(n_queries: int = 30):
    """K = 3 x N = 4 outcomes for 3 models whose quality depends on the variant."""
    rng = np.random.default_rng(0)
    rows = []
    for q in range(n_queries):
        for j, model in enumerate(("a", "b", "c")):
            for v in range(3):
                p = 0.2 + 0.3 * j * (q % 2) + 0.1 * v
                for s in range(4):
                    rows.append(
                        {
                            "query_id": f"q{q:02d}",
                            "model": model,
                            "variant_id": v,
                            "sample_id": s,
                            "score": float(rng.random() < p),
                            "cost": 1.0 + j,
                            "status": "ok",
                            "backend": "simulated",
                            "true_p": p,
                        }
                    )
    outcomes = pd.DataFrame(rows)
    queries = pd.DataFrame(
        {"query_id": [f"q{q:02d}" for q in range(n_queries)], "task": ["t"] * n_queries}
    )
    labels = aggregate_labels(outcomes=outcomes, queries=queries, settings=aggregation_settings({}))
    return outcomes, queries, labels


def test_evaluate_views_scores_every_system_under_each_view():
    outcomes, queries, labels = _build()
    ids = sorted(queries["query_id"])
    lm = M.label_matrix(labels, query_ids=ids, models=["a", "b", "c"])
    settings = EvalSettings(
        lambda_cost=0.05, beta_risk={"t": 0.2}, lambdas=(0.0, 1.0), n_boot=100, seed=0, ci=0.95
    )
    always_c = np.tile([0.0, 0.0, 1.0], (len(ids), 1))
    systems = {"always-c": {"dars": [(always_c, np.zeros(3))]}}
    by_view = V.all_view_labels(
        outcomes, query_ids=ids, cost_scale=V.cost_scale(labels), tasks=queries
    )
    views = evaluate_views(systems, lm=lm, labels_by_view=by_view, settings=settings)
    assert set(views) == set(V.VIEWS)
    for view, entry in views.items():
        assert entry["n_test_queries"] == len(ids) and entry["n_dropped"] == 0
        got = entry["routers"]["always-c"]["dars"]["quality"]["value"]
        vl = by_view[view].set_index(["query_id", "model"])
        want = vl.xs("c", level="model")["mean"].mean()
        assert got == pytest.approx(want), view
        assert "oracle" in entry["reference"]
    # decoding_variation sees only variant 0 (the lowest p): lower quality than the full label
    dv = views["decoding_variation"]["routers"]["always-c"]["dars"]["quality"]["value"]
    assert dv < lm.mean[:, 2].mean()
    # the Markdown table lists the full label and both views for the system and references
    result = {
        "n_test_queries": len(ids),
        "routers": {"always-c": {"dars": views["prompt_variation"]["routers"]["always-c"]["dars"]}},
        "reference": views["prompt_variation"]["reference"],
        "views": views,
    }
    table = "\n".join(view_table(result))
    assert "utility, prompt_variation" in table and "quality, decoding_variation" in table
    assert "| always-c | dars |" in table and "| oracle | – |" in table


def test_a_query_whose_view_labels_are_incomplete_is_left_out_of_that_view():
    outcomes, queries, labels = _build(10)
    dead = (outcomes["query_id"] == "q03") & (outcomes["variant_id"] == 0)
    outcomes.loc[dead, ["score", "status"]] = [None, "error"]
    ids = sorted(queries["query_id"])
    lm = M.label_matrix(labels, query_ids=ids, models=["a", "b", "c"])
    settings = EvalSettings(
        lambda_cost=0.05, beta_risk=0.2, lambdas=(0.0, 1.0), n_boot=100, seed=0, ci=0.95
    )
    systems = {"x": {"dars": [(np.ones((len(ids), 3)), np.zeros(3))]}}
    by_view = V.all_view_labels(outcomes, query_ids=ids, cost_scale=1.0)
    views = evaluate_views(systems, lm=lm, labels_by_view=by_view, settings=settings)
    assert views["decoding_variation"]["n_test_queries"] == 9
    assert views["decoding_variation"]["n_dropped"] == 1
    assert views["prompt_variation"]["n_test_queries"] == 10
