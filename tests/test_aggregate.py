import numpy as np
import pandas as pd
import pytest

from dars.core.errors import ErrorRateExceededError, InputDataError
from dars.stages.aggregate import aggregate_labels, check_error_rates

SETTINGS = {
    "prior_alpha": 0.5,
    "prior_beta": 0.5,
    "ci": 0.95,
    "lambda_cost": 0.05,
    "beta_risk": 0.2,
    "max_error_rate": 0.2,
}


def outcomes_frame(scores: dict[tuple[str, str], list[list[float | None]]]) -> pd.DataFrame:
    """scores[(query, model)] = per-variant lists of scores (None = failed generation)."""
    rows = []
    for (q, m), per_variant in scores.items():
        for v, samples in enumerate(per_variant):
            for s, score in enumerate(samples):
                rows.append(
                    {
                        "query_id": q,
                        "model": m,
                        "variant_id": v,
                        "sample_id": s,
                        "score": score,
                        "status": "error" if score is None else "ok",
                        "cost": 0.0 if score is None else 0.01 * (1 + (m == "big")),
                        "backend": "simulated",
                        "true_p": 0.5,
                    }
                )
    return pd.DataFrame(rows)


QUERIES = pd.DataFrame({"query_id": ["q1", "q2"], "task": ["arith", "code"]})


def test_labels_match_hand_computed_statistics():
    out = outcomes_frame(
        {
            ("q1", "small"): [[1, 0, 1], [0, 0, 0]],
            ("q1", "big"): [[1, 1, 1], [1, 1, 0]],
            ("q2", "small"): [[0, None, 1], [1, 1, None]],
            ("q2", "big"): [[0, 0, 0], [0, 0, 0]],
        }
    )
    lab = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS).set_index(
        ["query_id", "model"]
    )
    r = lab.loc[("q1", "small")]
    assert r["n"] == 6 and r["n_total"] == 6 and r["n_error"] == 0 and r["n_variants"] == 2
    assert r["mean"] == pytest.approx(2 / 6)
    all_s = np.array([1, 0, 1, 0, 0, 0], float)
    assert r["std"] == pytest.approx(all_s.std())
    assert r["var_within"] == pytest.approx((np.var([1, 0, 1]) * 3 + 0) / 6)
    assert r["var_between"] == pytest.approx(((2 / 3 - 1 / 3) ** 2 * 3 + (0 - 1 / 3) ** 2 * 3) / 6)
    assert r["var_within"] + r["var_between"] == pytest.approx(r["std"] ** 2)
    assert r["alpha"] == pytest.approx(2.5) and r["beta"] == pytest.approx(4.5)
    assert r["ci_low"] < r["mean"] < r["ci_high"]
    assert r["single_shot"] == 1.0 and r["task"] == "arith"


def test_failed_generations_are_excluded_not_scored_zero():
    out = outcomes_frame({("q2", "small"): [[0, None, 1], [1, 1, None]]})
    r = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS).iloc[0]
    assert r["n"] == 4 and r["n_total"] == 6 and r["n_error"] == 2
    assert r["mean"] == pytest.approx(3 / 4)  # a fillna(0) would give 0.5


def test_single_shot_is_null_when_sample_zero_failed():
    out = outcomes_frame({("q1", "small"): [[None, 1, 1], [1, 1, 1]]})
    r = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS).iloc[0]
    assert pd.isna(r["single_shot"]) and r["mean"] == 1.0


def test_all_failed_pair_keeps_row_with_null_stats():
    out = outcomes_frame({("q1", "small"): [[None, None]], ("q1", "big"): [[1, 1]]})
    lab = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS).set_index("model")
    assert lab.loc["small", "n"] == 0 and pd.isna(lab.loc["small", "mean"])
    assert lab.loc["big", "mean"] == 1.0


def test_utility_and_cost_normalisation():
    out = outcomes_frame({("q1", "small"): [[1, 0]], ("q1", "big"): [[1, 1]]})
    lab = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS).set_index("model")
    assert lab.loc["big", "cost_norm"] == pytest.approx(1.0)
    assert lab.loc["small", "cost_norm"] == pytest.approx(0.5)
    assert lab.loc["small", "utility"] == pytest.approx(0.5 - 0.05 * 0.5 - 0.2 * 0.5)
    assert lab.loc["big", "utility"] == pytest.approx(1.0 - 0.05)


def test_error_rate_threshold_fails_with_model_named():
    out = outcomes_frame({("q1", "small"): [[None, None, 1]], ("q1", "big"): [[1, 1, 1]]})
    with pytest.raises(ErrorRateExceededError, match=r"small: 2/3"):
        check_error_rates(out, 0.2)
    rates = check_error_rates(out, 0.9)
    assert rates.loc["small", "n_failed"] == 2


def test_labels_from_files_match_the_frame_one_file_per_model_or_not(tmp_path):
    """The stage groups one file at a time; files that share a model, or a file with two
    backends, must give the same labels as the rows in one frame."""
    out = outcomes_frame(
        {
            ("q1", "small"): [[1, 0, None], [1, 1, 0]],
            ("q2", "small"): [[0, 0, 0]],
            ("q1", "big"): [[1, 1, 1], [0, 1, 1]],
            ("q2", "big"): [[None, None, None]],
        }
    )
    out.loc[(out["model"] == "big") & (out["query_id"] == "q2"), "backend"] = "openai"
    want = aggregate_labels(outcomes=out, queries=QUERIES, settings=SETTINGS)
    assert want.set_index(["query_id", "model"])["backend"].to_dict() == {
        ("q1", "big"): "simulated",
        ("q1", "small"): "simulated",
        ("q2", "big"): "openai",
        ("q2", "small"): "simulated",
    }
    per_model = []
    for m in ("small", "big"):
        per_model.append(tmp_path / f"{m}.parquet")
        out[out["model"] == m].to_parquet(per_model[-1])
    split_pairs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]  # both hold every pair
    out.iloc[::2].to_parquet(split_pairs[0])
    out.iloc[1::2].to_parquet(split_pairs[1])
    for files in (per_model, split_pairs):
        got = aggregate_labels(outcomes=files, queries=QUERIES, settings=SETTINGS)
        pd.testing.assert_frame_equal(got, want)


def test_a_non_finite_score_is_one_clear_error(tmp_path):
    out = outcomes_frame({("q1", "small"): [[1, 0, 1]]})
    out["score"] = out["score"].astype(float)
    out.loc[1, "score"] = np.inf
    path = tmp_path / "small.parquet"
    out.to_parquet(path)
    with pytest.raises(InputDataError, match=r"must be finite numbers.*dars validate"):
        aggregate_labels(outcomes=[path], queries=QUERIES, settings=SETTINGS)


def test_labels_are_byte_identical_across_runs_of_a_parallel_aggregate(tmp_path, monkeypatch):
    """Fractional scores and costs, 30k pairs in small row groups, 4 DuckDB threads: the
    threads hold partial sums of the same pairs, and the labels must not change between
    runs (double addition is not associative; the level-2 sums are exact). Before that
    fix every run differed from the first in 14 columns."""
    monkeypatch.setenv("DARS_DUCKDB_THREADS", "4")
    rng = np.random.default_rng(7)
    n_q, k, n = 30000, 5, 2
    frame = pd.DataFrame(
        {
            "query_id": np.repeat([f"q{i:06d}" for i in range(n_q)], k * n),
            "model": "small",
            "variant_id": np.tile(np.repeat(np.arange(k), n), n_q),
            "sample_id": np.tile(np.arange(n), n_q * k),
            "score": rng.random(n_q * k * n),
            "status": "ok",
            "cost": rng.random(n_q * k * n) / 7,
            "backend": "simulated",
            "true_p": rng.random(n_q * k * n),
        }
    )
    path = tmp_path / "small.parquet"
    frame.to_parquet(path, row_group_size=2000)
    queries = pd.DataFrame({"query_id": frame["query_id"].unique(), "task": "f1"})
    runs = [aggregate_labels(outcomes=[path], queries=queries, settings=SETTINGS) for _ in range(3)]
    for other in runs[1:]:
        pd.testing.assert_frame_equal(other, runs[0], check_exact=True)
