"""Adaptive sampling: stopping rules, caps, budget, rotation, resumption; and the
downstream stages (aggregate, validate) on unequal n."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dars.core.errors import ParamsError
from dars.core.params import model_config, sample_config
from dars.sampling import adaptive
from dars.sampling.adaptive import AdaptiveSettings, Journal, PairState, adaptive_rounds, interval
from dars.sampling.uniform import sample_model
from dars.stages import validate
from dars.stages.aggregate import aggregate_labels
from tests.factories import SAMPLE_K as K
from tests.factories import base_params
from tests.factories import sample_inputs as make_inputs

SETTINGS = AdaptiveSettings(
    min_per_pair=3, max_per_pair=12, round_size=3, target_ci_width=0.0, decision_margin=0.05
)


def constant_draw(values: dict):
    """A draw function returning a fixed score per (query, model) key."""

    def draw(r, plan):
        return {s.key: [values[s.key]] * len(d) for s, d in plan}

    return draw


def bernoulli_draw(p: dict, seed: int = 0):
    rng = np.random.default_rng(seed)

    def draw(r, plan):
        return {s.key: [float(rng.random() < p[s.key]) for _ in d] for s, d in plan}

    return draw


def test_decided_pairs_stop_at_the_minimum():
    # model a is always right and b always wrong. With 3 samples each the 95% Jeffreys
    # intervals still overlap (a: [0.46, 1], b: [0, 0.54]); with 6 they are apart by more
    # than the margin, so b cannot become the best model, a has no rival left, and both
    # stop as decided after the second round
    assert stats.beta.ppf(0.025, 3.5, 0.5) < stats.beta.ppf(0.975, 0.5, 3.5) + 0.05
    assert stats.beta.ppf(0.025, 6.5, 0.5) > stats.beta.ppf(0.975, 0.5, 6.5) + 0.05
    pairs = [("q1", "a", [0, 1, 2]), ("q1", "b", [0, 1, 2])]
    draw = constant_draw({("q1", "a"): 1.0, ("q1", "b"): 0.0})
    states = adaptive_rounds(pairs=pairs, settings=SETTINGS, draw=draw)
    assert [(s.spent, s.stop, s.stop_round) for s in states] == [(6, "decided", 1)] * 2


def test_undecided_pairs_keep_sampling_to_the_cap():
    # two models both at 0.5: neither can be ruled out, so both run to the cap
    pairs = [("q1", "a", [0, 1, 2]), ("q1", "b", [0, 1, 2])]
    draw = constant_draw({("q1", "a"): 0.5, ("q1", "b"): 0.5})
    states = adaptive_rounds(pairs=pairs, settings=SETTINGS, draw=draw)
    assert [(s.spent, s.stop) for s in states] == [(12, "max_per_pair")] * 2


def test_a_single_model_has_no_decision_to_change():
    draw = constant_draw({("q1", "a"): 1.0})
    (s,) = adaptive_rounds(pairs=[("q1", "a", [0, 1, 2])], settings=SETTINGS, draw=draw)
    assert (s.spent, s.stop) == (12, "max_per_pair")


def test_ci_width_rule_stops_when_the_interval_is_narrow():
    settings = AdaptiveSettings(min_per_pair=3, max_per_pair=30, round_size=3, target_ci_width=0.3)
    (s,) = adaptive_rounds(
        pairs=[("q1", "a", [0, 1, 2])], settings=settings, draw=constant_draw({("q1", "a"): 1.0})
    )
    assert s.stop == "ci_width"
    lo, hi = stats.beta.ppf([0.025, 0.975], 0.5 + s.spent, 0.5)
    assert hi - lo <= 0.3
    lo3, hi3 = stats.beta.ppf([0.025, 0.975], 0.5 + s.spent - 3, 0.5)
    assert hi3 - lo3 > 0.3  # one round earlier it was still too wide


def test_caps_budget_and_rotation_hold_on_random_pairs():
    rng = np.random.default_rng(1)
    models = ["a", "b", "c"]
    pairs = [(f"q{i}", m, [0, 1, 2, 3]) for i in range(40) for m in models]
    p = {(q, m): float(rng.choice([0.02, 0.5, 0.98])) for q, m, _ in pairs}
    settings = AdaptiveSettings(
        min_per_pair=4, max_per_pair=20, round_size=3, target_ci_width=0.2, budget=7.0
    )
    states = adaptive_rounds(pairs=pairs, settings=settings, draw=bernoulli_draw(p))
    spent = np.array([s.spent for s in states])
    assert spent.min() >= 4 and spent.max() <= 20
    assert spent.sum() <= 7.0 * len(pairs)
    assert spent.sum() > 4 * len(pairs)  # the budget above the minimum was used
    assert {s.stop for s in states} <= set(adaptive.STOP_REASONS) and all(s.stop for s in states)
    for s in states:  # rotated across variants: counts differ by at most one
        c = [s.counts.get(v, 0) for v in s.variants]
        assert max(c) - min(c) <= 1


def test_failed_generations_are_not_wrong_answers():
    # every generation fails: no posterior evidence, so the pair is never "decided"
    # or "narrow" and runs to its cap, with n_valid 0
    pairs = [("q1", "a", [0, 1]), ("q1", "b", [0, 1])]
    draw = constant_draw({("q1", "a"): None, ("q1", "b"): 1.0})
    a, b = adaptive_rounds(pairs=pairs, settings=SETTINGS, draw=draw)
    assert (a.spent, a.n_valid, a.stop) == (12, 0, "max_per_pair")
    assert b.n_valid == b.spent


def test_normal_approximation_for_fractional_scores():
    s = PairState("q", "m", (0,))
    s.add([0.2, 0.8] * 10)  # mean 0.5, population sd 0.3
    assert not s.binary
    mean, lo, hi = interval(s, ci=0.95)
    assert mean == pytest.approx(0.5)
    assert lo == pytest.approx(0.5 - 1.96 * 0.3 / np.sqrt(20), abs=1e-3)
    assert hi == pytest.approx(1 - lo)


def test_recorded_rounds_are_replayed_not_redrawn(tmp_path):
    pairs = [(f"q{i}", m, [0, 1, 2]) for i in range(6) for m in ("a", "b")]
    p = {(q, m): 0.5 if i % 2 else 0.95 for i, (q, m, _) in enumerate(pairs)}
    settings = AdaptiveSettings(min_per_pair=3, max_per_pair=15, round_size=3)
    first = adaptive_rounds(
        pairs=pairs, settings=settings, draw=bernoulli_draw(p), journal=Journal(tmp_path)
    )
    rounds = sorted(tmp_path.glob("round-*.json"))
    assert len(rounds) >= 2

    def must_not_draw(r, plan):
        raise AssertionError(f"round {r} was recorded and must be replayed")

    again = adaptive_rounds(
        pairs=pairs, settings=settings, draw=must_not_draw, journal=Journal(tmp_path)
    )
    assert [s.to_json() for s in again] == [s.to_json() for s in first]
    # a torn last journal is redone (with a different draw this time: the rest is kept)
    rounds[-1].write_text("{not json")
    third = adaptive_rounds(
        pairs=pairs, settings=settings, draw=bernoulli_draw(p, seed=9), journal=Journal(tmp_path)
    )
    assert sum(s.spent for s in third) >= sum(
        PairState.from_json(d).spent
        for d in json.loads((tmp_path / rounds[-2].name).read_text())["states"]
    )


def test_settings_are_validated():
    assert adaptive.sampling_strategy({}) == "uniform"
    with pytest.raises(ParamsError, match="sampling.strategy.*allowed: uniform, adaptive"):
        adaptive.sampling_strategy({"sampling": {"strategy": "smart"}})
    with pytest.raises(ParamsError, match="sampling.max_per_pair"):
        adaptive.adaptive_settings({"sampling": {"min_per_pair": 5, "max_per_pair": 2}})
    with pytest.raises(ParamsError, match="sampling.round_sise"):
        adaptive.adaptive_settings({"sampling": {"round_sise": 2}})
    with pytest.raises(ParamsError, match="sampling.budget"):
        adaptive.adaptive_settings({"sampling": {"min_per_pair": 3, "budget": 2}})
    repo = adaptive.adaptive_settings(base_params())
    assert repo.min_per_pair <= repo.max_per_pair


# --------------------------------------------------------------------------- the stage


def stage_params(**sampling) -> dict:
    return {
        "sample": {"n": 4, "seed": 7, "max_retries": 1},
        "models": {"sim": {"backend": "simulated", "sim_ability": 0.5}},
        "simulator": {"seed": 0, "query_sd": 3.0, "variant_sd": 0.5, "interaction_sd": 0.5},
        "sampling": {
            "strategy": "adaptive",
            "min_per_pair": 3,
            "max_per_pair": 12,
            "round_size": 3,
            "target_ci_width": 0.4,
            **sampling,
        },
    }


def run_stage(tmp: Path, params: dict, ckpt: str = "ckpt"):
    q, v = make_inputs(tmp)
    kw = dict(
        config=model_config(params, "sim"),
        sample=sample_config(params),
        params=params,
        queries=pd.read_parquet(q),
        variants=pd.read_parquet(v),
        checkpoint_dir=tmp / ckpt,
        progress=False,
    )
    return adaptive.sample_model_adaptive(**kw), kw


def test_stage_spends_less_and_draws_the_uniform_builds_samples(tmp_path):
    params = stage_params()
    table, kw = run_stage(tmp_path, params)
    df = table.to_pandas()
    per_pair = df.groupby("query_id").size()
    assert per_pair.between(3, 12).all() and per_pair.min() < per_pair.max()
    assert not df.duplicated(["query_id", "variant_id", "sample_id"]).any()
    # rotation: every variant of every query is sampled
    assert (df.groupby("query_id")["variant_id"].nunique() == K).all()
    # the same seeds and completions as a uniform build with enough samples per variant
    uni = sample_model(**{**kw, "checkpoint_dir": tmp_path / "uni"}).to_pandas()
    uni = uni.set_index(["query_id", "variant_id", "sample_id"])
    got = df.set_index(["query_id", "variant_id", "sample_id"])
    shared = got.index.intersection(uni.index)
    assert len(shared) > 0.8 * len(got)
    cols = ["seed", "completion", "true_p"]
    pd.testing.assert_frame_equal(got.loc[shared, cols], uni.loc[shared, cols])
    folder = next((tmp_path / "ckpt" / "sim").glob("adaptive-*"))
    dec = json.loads((folder / "decisions.json").read_text())
    assert dec["generations"] == len(df) < dec["uniform_equivalent"]
    assert set(dec["stopped"]) <= set(adaptive.STOP_REASONS)


def test_stage_resume_is_deterministic(tmp_path):
    params = stage_params()
    full, _ = run_stage(tmp_path, params)
    folder = next((tmp_path / "ckpt" / "sim").glob("adaptive-*"))
    journals = sorted(folder.glob("round-*.json"))
    assert len(journals) >= 2
    # a build killed mid-way: the last round's journal and some shards are gone, one
    # shard is torn
    journals[-1].unlink()
    shards = sorted(folder.glob("r*.parquet"))
    for s in shards[::3]:
        s.unlink()
    shards[1].write_bytes(b"torn")
    resumed, _ = run_stage(tmp_path, params)
    # redrawn shards differ only in their measured latency
    same = [c for c in full.column_names if c != "latency_s"]
    assert resumed.select(same).equals(full.select(same))
    # from scratch in a fresh checkpoint folder: the same table again
    fresh, _ = run_stage(tmp_path, params, ckpt="ckpt2")
    assert fresh.select(same).equals(full.select(same))


def test_sample_run_dispatches_on_the_strategy(tmp_path):
    import yaml

    from dars.stages import sample

    q, v = make_inputs(tmp_path)
    for strategy, rows in (("uniform", lambda n: n == 12 * K * 4), ("adaptive", lambda n: n < 144)):
        p = stage_params(strategy=strategy)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
        out = sample.run(
            params_path=str(tmp_path / "params.yaml"),
            model="sim",
            queries=str(q),
            variants=str(v),
            out=str(tmp_path / f"{strategy}.parquet"),
            checkpoint_dir=str(tmp_path / "ck"),
        )
        assert rows(pq.read_metadata(out).num_rows), strategy
    shutil.rmtree(tmp_path / "ck")


# --------------------------------------------------------------------------- downstream


def test_aggregate_handles_unequal_n():
    # variant 0: 1,1,1,0 (n=4); variant 1: 0,0 (n=2); one failed generation (not counted)
    scores = [1, 1, 1, 0, 0, 0, None]
    out = pd.DataFrame(
        {
            "query_id": "q",
            "model": "m",
            "variant_id": [0, 0, 0, 0, 1, 1, 1],
            "sample_id": [0, 1, 2, 3, 0, 1, 2],
            "score": pd.array(scores, dtype="Float64"),
            "status": ["ok"] * 6 + ["error"],
            "cost": 1.0,
            "backend": "simulated",
            "true_p": 0.5,
        }
    )
    settings = {
        "prior_alpha": 0.5,
        "prior_beta": 0.5,
        "ci": 0.95,
        "lambda_cost": 0.0,
        "beta_risk": 0.0,
        "max_error_rate": 1.0,
    }
    lab = aggregate_labels(
        outcomes=out, queries=pd.DataFrame({"query_id": ["q"], "task": ["t"]}), settings=settings
    ).iloc[0]
    valid = np.array([1, 1, 1, 0, 0, 0], dtype=float)
    assert (lab["n"], lab["n_total"], lab["n_error"]) == (6, 7, 1)
    assert lab["mean"] == pytest.approx(valid.mean())  # pooled: weights n_i / n
    # law of total variance with weights n_i/n: within = (4*0.1875 + 2*0)/6,
    # between = (4*(0.75-0.5)^2 + 2*(0-0.5)^2)/6
    assert lab["var_within"] == pytest.approx((4 * 0.1875) / 6)
    assert lab["var_between"] == pytest.approx((4 * 0.0625 + 2 * 0.25) / 6)
    assert lab["std"] ** 2 == pytest.approx(valid.var())
    assert (lab["alpha"], lab["beta"]) == (3.5, 3.5)
    assert lab["ci_low_fixed"] == pytest.approx(stats.beta.ppf(0.025, 3.5, 3.5))
    # the rewrite-population interval accounts for the variant effect: wider
    assert lab["ci_low"] < lab["ci_low_fixed"] and lab["ci_high"] > lab["ci_high_fixed"]


def adaptive_tables(counts: dict[tuple[str, int], int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    variants = pd.DataFrame([{"query_id": q, "variant_id": v, "accepted": True} for q, v in counts])
    gens = pd.DataFrame(
        [
            {"query_id": q, "variant_id": v, "sample_id": i}
            for (q, v), n in counts.items()
            for i in range(n)
        ]
    )
    return variants, gens


def test_validate_coverage_accepts_min_to_max_rows_per_pair():
    counts = {("q1", 0): 2, ("q1", 1): 1, ("q1", 2): 1, ("q2", 0): 4, ("q2", 1): 4, ("q2", 2): 3}
    variants, gens = adaptive_tables(counts)
    cov = validate.coverage_frame(
        variants=variants, tables={("generations", "m"): gens}, n=3, per_pair=(3, 12)
    )
    assert cov["chk_sample_ids_complete"].all()
    assert cov.groupby("query_id")["n_pair_rows"].first().to_dict() == {"q1": 4, "q2": 11}
    # uniform rules would reject the same table (n = 3 per variant)
    uni = validate.coverage_frame(variants=variants, tables={("generations", "m"): gens}, n=3)
    assert not uni["chk_sample_ids_complete"].all()
    # a gap in a variant's sample ids is caught
    gap = gens.drop(index=gens[(gens.query_id == "q2") & (gens.sample_id == 1)].index[:1])
    cov = validate.coverage_frame(
        variants=variants, tables={("generations", "m"): gap}, n=3, per_pair=(3, 12)
    )
    assert not cov["chk_sample_ids_complete"].all()


def test_validate_reads_the_sampling_params():
    p = base_params()
    assert validate.read_config(p).per_pair is None
    p["sampling"] = {**p["sampling"], "strategy": "adaptive", "min_per_pair": 2}
    cfg = validate.read_config(p)
    assert cfg.per_pair == (2, p["sampling"]["max_per_pair"])
    assert cfg.max_sample_id == p["sampling"]["max_per_pair"] - 1


@pytest.mark.slow
def test_dvc_repro_adaptive_build_validates_and_aggregates(dvc_repo_factory):
    p = base_params()
    p["prepare"]["tasks"] = {
        "arithmetic": {"kind": "arithmetic", "n": 30, "difficulty": 2, "seed": 3}
    }
    p["reformulate"]["k"] = 3
    p["sample"]["n"] = 4
    p["sampling"] = {
        **p["sampling"],
        "strategy": "adaptive",
        "min_per_pair": 3,
        "max_per_pair": 12,
        "target_ci_width": 0.4,
    }
    p["simulator"]["query_sd"] = 3.0
    p["models"] = {
        "sim-a": {"backend": "simulated", "sim_ability": 1.0},
        "sim-b": {"backend": "simulated", "sim_ability": -0.5},
    }
    repo = dvc_repo_factory(p)
    repo.dvc("repro", "aggregate")
    lab = pd.read_parquet(repo.root / "data" / "labels.parquet")
    report = json.loads((repo.root / "reports" / "validation.json").read_text())
    assert report["success"] and report["params"]["sampling.per_pair"] == [3, 12]
    assert report["variant_counts"]["accepted"] == 90
    assert lab["n_total"].between(3, 12).all() and lab["n_total"].nunique() > 1
    assert lab["n_total"].sum() < 30 * 2 * 3 * 4
    assert (lab["alpha"] + lab["beta"] == lab["n"] + 1.0).all()
    assert "changed" not in repo.dvc("status", "aggregate").stdout
