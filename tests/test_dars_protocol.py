"""`--protocol dars`: each step against hand-computed values and the authors' loop."""

import numpy as np
import pandas as pd
import pytest

from dars.core.errors import InputDataError
from dars.evaluation import dars_protocol as P
from tests import factories


@pytest.fixture(scope="module")
def tables():
    return factories.protocol_tables()


@pytest.fixture(scope="module")
def rows(tables):
    outcomes, splits, queries = tables
    out, _ = P.protocol_rows(outcomes, splits=splits, tasks=queries)
    return out


def _frame(records):
    return pd.DataFrame(
        records, columns=["query_id", "model", "variant_id", "sample_id", "score", "cost"]
    )


def test_cost_is_min_max_per_task_over_train_and_test_pooled():
    outcomes = _frame(
        [
            ("a", "m", 1, 0, 1.0, 2.0),  # task x, train
            ("b", "m", 1, 0, 0.0, 6.0),  # task x, test
            ("b", "m", 0, 0, 0.0, 4.0),
            ("c", "m", 1, 0, 1.0, 100.0),  # task y: one cost -> 0
        ]
    )
    splits = pd.DataFrame({"query_id": ["a", "b", "c"], "split": ["train", "test", "train"]})
    tasks = pd.DataFrame({"query_id": ["a", "b", "c"], "task": ["x", "x", "y"]})
    rows, counts = P.protocol_rows(outcomes, splits=splits, tasks=tasks)
    got = rows.set_index(["query_id", "variant_id"])["routing_cost"]
    assert got[("a", 1)] == 0.0 and got[("b", 1)] == 1.0 and got[("b", 0)] == 0.5
    assert got[("c", 1)] == 0.0
    # no observation_type: our views (sample 0 of each variant; every sample of variant 0)
    b = rows[rows["query_id"] == "b"].set_index("variant_id")
    assert b.loc[1, "in_rewrite"] and not b.loc[1, "in_decoding"] and b.loc[0, "in_decoding"]
    assert counts["failed_generations"] == 0


def test_failed_generations_are_left_out_and_counted_never_scored_as_zero():
    outcomes = _frame([("a", "m", 1, 0, None, 1.0), ("a", "m", 1, 1, 1.0, 1.0)])
    splits = pd.DataFrame({"query_id": ["a"], "split": ["validation"]})
    tasks = pd.DataFrame({"query_id": ["a"], "task": ["x"]})
    rows, counts = P.protocol_rows(outcomes, splits=splits, tasks=tasks)
    assert counts["failed_generations"] == 1 and len(rows) == 1
    assert rows["split"].tolist() == ["train"]  # validation is part of their train file
    assert P.pair_table(rows)["mean_score"].tolist() == [1.0]


def test_pair_std_has_ddof_1_and_a_single_row_gets_0():
    rows = pd.DataFrame(
        {
            "query_id": ["q", "q", "q", "r"],
            "model": ["m"] * 4,
            "score": [1.0, 0.0, 1.0, 1.0],
            "cost": [1.0] * 4,
            "routing_cost": [0.0, 0.5, 1.0, 0.2],
        }
    )
    p = P.pair_table(rows).set_index("query_id")
    assert p.loc["q", "score_std"] == pytest.approx(np.std([1, 0, 1], ddof=1))
    assert p.loc["r", "score_std"] == 0.0 and p.loc["q", "mean_cost"] == 0.5


def test_a_missing_cell_takes_the_models_mean():
    pairs = pd.DataFrame(
        {"query_id": ["a", "b", "a"], "model": ["m1", "m1", "m2"], "mean_score": [0.2, 0.6, 0.9]}
    )
    y = P.target_matrix(pairs, "mean_score", ["a", "b", "c"], ["m1", "m2", "m3"])
    mean_all = (0.2 + 0.6 + 0.9) / 3
    assert np.allclose(y, [[0.2, 0.9, mean_all], [0.6, 0.9, mean_all], [0.4, 0.9, mean_all]])


def _their_draw(rows: pd.DataFrame, seed: int) -> dict[tuple[str, str], float]:
    """The authors' loop: groupby(sort=False) over rows in file order, one
    rng.integers(0, len(group)) per group."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, group in rows.groupby(["query_id", "model"], sort=False):
        out[key] = float(group.iloc[int(rng.integers(0, len(group)))]["score"])
    return out


def test_the_vectorised_draw_is_the_authors_loop_in_their_row_order():
    rng = np.random.default_rng(7)
    n = 400
    rows = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in rng.integers(0, 30, n)],
            "model": [f"m{i}" for i in rng.integers(0, 4, n)],
            "score": rng.random(n),
            "routing_cost": rng.random(n),
        }
    )
    rows["order"] = np.arange(n)  # the file order: pairs interleaved, uneven sizes
    ids, models = sorted(rows["query_id"].unique()), sorted(rows["model"].unique())
    plan = P.DrawPlan.build(rows.sample(frac=1, random_state=1), ids, models)
    for seed in (42, 43, 141):
        score, _ = plan.draw(seed)
        got = {
            (ids[q], models[m]): s
            for q, m, s in zip(plan.pair_query, plan.pair_model, score, strict=True)
        }
        assert got == _their_draw(rows, seed)


def test_routing_clips_heads_and_takes_the_first_best():
    q = np.array([[1.4, 0.9], [0.5, 0.5]])
    c = np.array([[1.0, -3.0], [0.0, 0.0]])
    s = np.array([[0.0, 0.0], [0.0, 0.0]])
    # q0: 1.0 - 0.05 vs 0.9 - 0 -> model 0; q1 tie -> the first
    assert P.route(q, c, s, lambda_cost=0.05, beta=0.2).tolist() == [0, 0]
    assert P.route(q, c, np.array([[1, 0], [0, 0]]), lambda_cost=0.05, beta=0.2).tolist() == [1, 0]


def test_a_query_counts_only_with_the_chosen_pair_in_both_views():
    nan = np.nan
    rw = P.ViewMatrices(
        score=np.array([[1.0, 0.0], [0.5, nan], [0.2, 0.4]]),
        cost=np.array([[0.5, 0.1], [0.3, nan], [0.2, 0.2]]),
        std=np.zeros((3, 2)),
        n=np.full((3, 2), 3.0),
    )
    dc = P.ViewMatrices(
        score=np.array([[0.5, 1.0], [1.0, 1.0], [nan, 0.0]]),
        cost=np.array([[0.4, 0.2], [0.2, 0.2], [nan, 0.1]]),
        std=np.array([[0.7, 0.0], [0.0, 0.0], [nan, 0.0]]),
        n=np.full((3, 2), 2.0),
    )
    got = P.score_choices(np.array([0, 1, 0]), rw, dc)  # q1: no rewrite pair; q2: no decoding
    assert got["n_eval"] == 1
    assert got["rewrite_score"] == 1.0 and got["decoding_score"] == 0.5
    assert got["decoding_score_std"] == 0.7 and got["rewrite_cost"] == 0.5
    got = P.score_choices(np.array([1, 0, 1]), rw, dc)
    assert got["n_eval"] == 3
    assert got["rewrite_score"] == pytest.approx((0.0 + 0.5 + 0.4) / 3)
    assert got["decoding_score"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_baselines_per_view():
    pairs = pd.DataFrame(
        {
            "query_id": ["a", "a", "b", "b"],
            "model": ["m1", "m2", "m1", "m2"],
            "mean_score": [1.0, 0.0, 0.2, 0.6],
        }
    )
    b = P.view_baselines(pairs, ["m1", "m2"])
    assert b == {"best_model": "m1", "best_model_score": 0.6, "oracle_score": 0.8}


def test_runs_report_mean_and_std_with_ddof_1():
    runs = [{"rewrite_score": v, "decoding_score_std": 0.1 * v} for v in (0.2, 0.4, 0.9)]
    s = P.summarize_runs(runs)
    assert s["rewrite_score"]["mean"] == pytest.approx(0.5)
    assert s["rewrite_score"]["std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert s["chosen_decoding_instability"] == pytest.approx(0.05)


def test_observation_type_picks_the_views(rows):
    test = rows[rows["split"] == "test"]
    assert test["in_rewrite"].sum() and test["in_decoding"].sum()
    assert not (test["in_rewrite"] & test["in_decoding"]).any()
    assert not rows.loc[rows["split"] == "train", ["in_rewrite", "in_decoding"]].any().any()


class TextOnlyRouter:
    """A user's router: fit(X, Y) / predict(X) on texts, one column per model."""

    def fit(self, X, Y):
        self.width_ = Y.shape[1]
        self.mean_ = np.asarray(Y).mean(axis=0)
        return self

    def predict(self, X):
        return np.tile(self.mean_, (len(X), 1))


def test_the_protocol_end_to_end_with_reference_and_user_routers(tables, rows):
    _, _, queries = tables
    texts = dict(zip(queries["query_id"], queries["prompt"], strict=True))
    specs = [P.registry_router(n) for n in ("knn", "ridge", "mlp")]
    user = TextOnlyRouter()
    specs.append(P.RouterSpec("user", lambda seed, m: user, on_text=True))
    st = P.ProtocolSettings(runs=3, beta_per_task={"t2": 0.5})
    res = P.run_protocol(
        rows, texts=texts, models=["big", "small"], routers=specs, settings=st, progress=False
    )
    assert set(res["tasks"]) == {"t1", "t2"}
    t1 = res["tasks"]["t1"]
    assert t1["beta_risk"] == 0.2 and res["tasks"]["t2"]["beta_risk"] == 0.5
    assert t1["n_test_queries_with_both_views"] == 4
    for name in ("knn", "ridge", "mlp", "user"):
        r = t1["routers"][name]
        assert r["distribution"]["n_eval"] == 4
        assert r["single_shot"]["runs"] == 3
        assert 0 <= r["single_shot"]["rewrite_score"]["mean"] <= 1
    assert user.width_ == 2  # a plain user router keeps its one-head contract
    # the test queries alternate which model is good: the oracle beats the best single
    b = t1["baselines"]["prompt_variation"]
    assert b["oracle_score"] >= b["best_model_score"]
    assert "knn" in res["macro"] and "| t1 | knn | distribution |" in P.markdown(res)


def test_the_protocol_is_deterministic(tables, rows):
    _, _, queries = tables
    texts = dict(zip(queries["query_id"], queries["prompt"], strict=True))
    st = P.ProtocolSettings(runs=2)
    a, b = (
        P.run_protocol(
            rows,
            texts=texts,
            models=["big", "small"],
            routers=[P.registry_router("mlp")],
            settings=st,
            progress=False,
        )
        for _ in range(2)
    )
    assert a == b


def test_bad_beta_per_task_and_missing_columns_are_named():
    assert P.parse_beta_per_task(["gpqa=0.1", "math=0"]) == {"gpqa": 0.1, "math": 0.0}
    with pytest.raises(InputDataError, match="TASK=BETA"):
        P.parse_beta_per_task(["gpqa"])
    with pytest.raises(InputDataError, match="TASK=BETA"):
        P.parse_beta_per_task(["gpqa=-1"])
    with pytest.raises(InputDataError, match=r"lack columns \['cost'\]"):
        P.protocol_rows(
            pd.DataFrame(columns=["query_id", "model", "variant_id", "sample_id", "score"]),
            splits=pd.DataFrame(columns=["query_id", "split"]),
            tasks=pd.DataFrame(columns=["query_id", "task"]),
        )


def _write_tables(root, tables):
    """The tables `dars evaluate --protocol dars` reads: outcomes/<model>.parquet,
    labels, queries, splits and params.yaml."""
    import yaml

    from dars.core.io import model_file, write_frame
    from tests.factories import base_params

    outcomes, splits, queries = tables
    for m, part in outcomes.groupby("model"):
        path = model_file(root / "outcomes", m)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_frame(part.reset_index(drop=True), path)
    pairs = outcomes.groupby(["query_id", "model"], as_index=False).agg(
        mean=("score", "mean"), std=("score", "std"), mean_cost=("cost", "mean")
    )
    pairs["cost_norm"] = pairs["mean_cost"] / pairs["mean_cost"].max()
    pairs["single_shot"] = pairs["mean"]
    write_frame(pairs, root / "labels.parquet")
    write_frame(queries, root / "queries.parquet")
    write_frame(splits, root / "splits.parquet")
    params = base_params()
    params["routers"]["names"] = ["knn", "ridge"]
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_evaluate_protocol_dars_from_the_cli(tables, tmp_path, capsys):
    from dars.cli import main

    _write_tables(tmp_path, tables)
    metrics, table = tmp_path / "dars.json", tmp_path / "dars.md"
    argv = ["evaluate", "--params", str(tmp_path / "params.yaml")]
    for flag, name in (
        ("--labels", "labels.parquet"),
        ("--queries", "queries.parquet"),
        ("--splits", "splits.parquet"),
        ("--outcomes", "outcomes"),
        ("--metrics", "dars.json"),
        ("--table", "dars.md"),
    ):
        argv += [flag, str(tmp_path / name)]
    argv += ["--models-dir", str(tmp_path / "none"), "--plots-dir", str(tmp_path / "plots")]
    rc = main(argv + ["--protocol", "dars", "--runs", "2", "--beta-per-task", "t1=0.1"])
    assert rc == 0
    import json

    res = json.loads(metrics.read_text())
    assert res["protocol"] == "dars" and res["settings"]["runs"] == 2
    assert res["tasks"]["t1"]["beta_risk"] == 0.1 and res["tasks"]["t2"]["beta_risk"] == 0.2
    assert set(res["tasks"]["t1"]["routers"]) == {"knn", "ridge"}
    assert "| t2 | ridge | single-shot |" in table.read_text()
    assert main(argv + ["--protocol", "dars", "--runs", "1", "--beta-per-task", "t1"]) == 1
    assert "TASK=BETA" in capsys.readouterr().err


def test_parallel_runs_give_the_same_result(tables, rows):
    _, _, queries = tables
    texts = dict(zip(queries["query_id"], queries["prompt"], strict=True))
    out = [
        P.run_protocol(
            rows,
            texts=texts,
            models=["big", "small"],
            routers=[P.registry_router("ridge")],
            settings=P.ProtocolSettings(runs=P.PARALLEL_FROM_RUNS, n_jobs=n_jobs),
            progress=False,
        )
        for n_jobs in (1, 2)
    ]
    assert out[0] == out[1]


def test_the_timing_benchmark_runs_at_a_small_scale():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dars_protocol.py"
    spec = importlib.util.spec_from_file_location("bench_dars_protocol", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    full = mod.synthetic_release(scale=1.0, seed=0)[1]
    assert (full["split"] == "train").sum() == 600 and (full["split"] == "test").sum() == 1148
    res = mod.measure(routers=["knn"], runs=1, scale=0.03, progress=False)
    assert res["shape"]["models"] == 6 and res["routers"]["knn"]["fits"] == 3 * 2


def test_query_texts_are_the_authors_text_where_the_release_has_its_fields():
    queries = pd.DataFrame(
        {
            "query_id": ["a", "b", "c"],
            "prompt": ["P a", "P b", "P c"],
            "metadata": [
                '{"question": " Who won? ", "context": "' + "x" * 1500 + '"}',
                '{"question": "What is 2+2?", "context": ""}',
                '{"source_id": "c"}',
            ],
        }
    )
    texts, counts = P.query_texts(queries)
    assert texts["a"] == "x" * 1200 + "\nQuestion: Who won?"
    assert texts["b"] == "What is 2+2?" and texts["c"] == "P c"
    assert counts == {"dars_fields": 2, "prompt": 1}
    bad = queries.assign(metadata=["{", "{}", "{}"])
    with pytest.raises(InputDataError, match="query 'a' has metadata that is not valid JSON"):
        P.query_texts(bad)


@pytest.fixture(scope="module")
def imported_release(tmp_path_factory):
    """A tiny DARS release whose gpqa rows carry a long context and fractional scores, its
    train file shuffled (file order != sorted order), imported with `dars import`'s code."""
    import json

    from dars.importers import read_source
    from dars.importers.workspace import write_workspace

    root = tmp_path_factory.mktemp("release")
    src = factories.make_dars_release(root, n_train=6, n_test=3)
    rng = np.random.default_rng(3)
    for dataset in ("gpqa", "math"):
        for split in ("train", "test"):
            path = src / dataset / f"{split}_scored_generations.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            for r in rows:
                r["score"] = float(rng.integers(0, 1000)) / 1000  # tells the rows apart
                if dataset == "gpqa":
                    r["context"] = f"Passage for {r['query_id']}. " + "word " * 400
            if split == "train":
                rows = [rows[i] for i in rng.permutation(len(rows))]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / "out"
    write_workspace(read_source("dars-release", src), out)
    return src, out


def test_an_imported_release_routes_on_the_authors_text_in_their_row_order(imported_release):
    import json

    from dars.core.io import model_file

    src, out = imported_release
    data = out / "data"
    queries = pd.read_parquet(data / "queries.parquet")
    splits = pd.read_parquet(data / "splits.parquet")
    models = list(factories.DARS_MODELS)
    assert all(model_file(data / "outcomes", m).exists() for m in models)
    rows, _ = P.protocol_rows(P.read_rows(data / "outcomes", models), splits=splits, tasks=queries)
    source_of = {
        q: json.loads(m)["source_id"]
        for q, m in zip(queries["query_id"], queries["metadata"], strict=True)
    }
    texts, counts = P.query_texts(queries)
    assert counts == {"dars_fields": len(queries), "prompt": 0}
    for dataset in ("gpqa", "math"):
        path = src / dataset / "train_scored_generations.jsonl"
        train = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
        first = train.groupby("query_id", sort=False).head(1).set_index("query_id")
        tr = rows[(rows["task"] == dataset) & (rows["split"] == "train")]
        ids = P.first_appearance(tr)
        # their query order: first appearance in the train file
        assert [source_of[q] for q in ids] == list(first.index)
        for q in ids:
            rec = first.loc[source_of[q]]
            want = rec["original_question"].strip()
            if dataset == "gpqa":
                want = rec["context"].strip()[:1200] + "\nQuestion: " + want
            assert texts[q] == want
        # seed 42 + r draws the row the authors' loop draws from the file
        plan = P.DrawPlan.build(tr, ids, models)
        for seed in (42, 43):
            score, _ = plan.draw(seed)
            got = {
                (source_of[ids[q]], models[m]): s
                for q, m, s in zip(plan.pair_query, plan.pair_model, score, strict=True)
            }
            assert got == _their_draw(train, seed)


def test_the_supervision_study_runs_at_a_small_scale():
    """benchmarks/supervision_study.py: the truth's references are consistent with its
    utility, and the paired statistics come out for every router."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "supervision_study.py"
    spec = importlib.util.spec_from_file_location("bench_supervision_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    world = mod.make_world(30, 40, k=2)
    u = world.p_test - mod.LAMBDA * world.c_true[None, :]
    refs = mod.references(world)["utility"]
    assert mod.true_utility(world, u.argmax(1)) == pytest.approx(refs["oracle"])
    assert refs["oracle"] >= refs["best_single"]
    res = mod.run(
        routers=["knn16", "ridge"],
        repeats=3,
        slow_repeats=1,
        n_train=30,
        n_test=40,
        k=2,
        n=2,
        n_jobs=1,
        progress=False,
    )
    for name in ("knn16", "ridge"):
        d = res["routers"][name]["dars_minus_single_shot"]
        per = res["routers"][name]
        diffs = np.subtract(
            per["dars"]["per_repeat_utility"], per["single_shot"]["per_repeat_utility"]
        )
        assert d["repeats"] == 3 and d["mean_difference"] == pytest.approx(diffs.mean(), abs=1e-5)
        lo, hi = d["t_interval_95"]
        assert lo <= d["mean_difference"] <= hi and 0 <= d["p_ttest_rel"] <= 1
