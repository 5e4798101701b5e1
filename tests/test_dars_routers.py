"""DARS's seven routers (issue 23, section 1): scikit-learn's contract, the heads
contract, routing on a problem with a known answer, determinism, the authors' rules
(kNN weights, cluster tables, choice probabilities, soft labels) and the shared inputs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from dars.core.errors import MissingExtraError
from dars.routers import (
    DARS_ROUTERS,
    ROUTERS,
    AvengersProRouter,
    DarsKNNRouter,
    GraphRouter,
    RMSoftmaxRouter,
    features,
    heads,
    make_router,
)
from dars.routers import io as router_io

# --- scikit-learn's estimator contract -------------------------------------------------
# The suite fits each estimator ~40 times on tiny data. With the authors' budgets (mlp3
# max_iter 800, 20-50 epochs) it took 9 minutes on 2 shared cores; these smaller budgets
# run the same code paths. Skipped checks: none are expected to fail. Every router sets
# scikit-learn's `poor_score` tag, because it clips its targets and predictions to [0, 1]
# (the authors' rule; rm_softmax predicts choice probabilities), so the checks' R^2 bar on
# unbounded targets does not apply; routing quality is tested below instead.
SMALL_BUDGET = {
    "mlp3": {"max_iter": 30},
    "knn16": {},
    "embedllm": {"epochs": 3, "embed_dim": 16},
    "mirt": {"epochs": 3},
    "rm_softmax": {"epochs": 2, "hidden_layer_sizes": (32, 32)},
    "graphrouter": {"epochs": 3, "node_dim": 16, "hidden_layer_sizes": (32,)},
    "avengers_pro": {"n_init": 1},
}


@parametrize_with_checks([ROUTERS.get(n)(**SMALL_BUDGET[n]) for n in DARS_ROUTERS])
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_every_dars_router_is_registered_and_tagged():
    assert set(DARS_ROUTERS) <= set(ROUTERS.names()) and len(DARS_ROUTERS) == 7
    assert set(SMALL_BUDGET) == set(DARS_ROUTERS)
    for n in DARS_ROUTERS:
        tags = ROUTERS.get(n)().__sklearn_tags__()
        assert tags.regressor_tags.poor_score and tags.input_tags.sparse


# --- a routing problem with a known answer ---------------------------------------------
# "algebra" queries: model A is right 90% of the time, B 15%; "poetry": the reverse; C is
# cheap and mediocre everywhere. Under U = q - 0.05 c - 0.2 s the best model is A on
# algebra and B on poetry.
WORDS = {
    "algebra": ["equation", "solve", "variable", "integer", "sum", "factor", "root"],
    "poetry": ["rhyme", "verse", "sonnet", "stanza", "metaphor", "meter", "ode"],
}
FILLER = ["the", "what", "is", "find", "write", "about", "please", "given", "short", "long"]
QUALITY = {"algebra": (0.9, 0.15, 0.5), "poetry": (0.15, 0.9, 0.5)}
COST = np.array([0.9, 0.9, 0.1])
M = 3


def topic_texts(n, seed):
    rng = np.random.default_rng(seed)
    topics = [("algebra", "poetry")[i % 2] for i in range(n)]
    texts = [
        f"{t} question {' '.join(rng.choice(WORDS[t], size=4))} {' '.join(rng.choice(FILLER, 3))}"
        for t in topics
    ]
    return texts, topics


def topic_targets(topics, seed, single_shot=False):
    rng = np.random.default_rng(seed)
    p = np.array([QUALITY[t] for t in topics])
    if single_shot:  # one Bernoulli draw per pair, std 0: a one-sample dataset
        q = (rng.random(p.shape) < p).astype(float)
        s = np.zeros_like(p)
    else:  # the mean of 25 draws, its std (ddof 1)
        draws = rng.random((25, *p.shape)) < p
        q, s = draws.mean(axis=0), draws.std(axis=0, ddof=1)
    c = np.clip(COST * rng.uniform(0.9, 1.1, size=p.shape), 0, 1)
    return heads.stack(q, c, s)


def route(pred):
    q, c, s = heads.split(pred, M)
    return np.argmax(q - 0.05 * c - 0.2 * s, axis=1)


@pytest.fixture(scope="module")
def topic_problem():
    texts, topics = topic_texts(200, 0)
    test_texts, test_topics = topic_texts(100, 1)
    right = np.array([0 if t == "algebra" else 1 for t in test_topics])
    return texts, topic_targets(topics, 2), test_texts, right


def fitted(name, texts, Y, **params):
    cls = ROUTERS.get(name)
    if "n_models" in cls().get_params():
        params.setdefault("n_models", M)
    return make_router(name, features="tfidf20k", params=params).fit(texts, Y)


@pytest.fixture(scope="module")
def fitted_routers(topic_problem):
    texts, Y, _, _ = topic_problem
    return {name: fitted(name, texts, Y) for name in DARS_ROUTERS}


def blobs(n, seed):
    """Two Gaussian clusters in 20 dimensions: cluster 0 "algebra", cluster 1 "poetry"."""
    rng = np.random.default_rng(seed)
    topic = np.arange(n) % 2
    centre = np.zeros((2, 20))
    centre[0, :3], centre[1, 3:6] = 3.0, 3.0
    return centre[topic] + rng.normal(size=(n, 20)), topic


@pytest.mark.parametrize("name", DARS_ROUTERS)
def test_routes_each_cluster_to_its_best_model(name):
    """The routers' cores with the authors' hyper-parameters, on numeric clusters."""
    X, topic = blobs(200, 0)
    Y = topic_targets([("algebra", "poetry")[t] for t in topic], 2)
    Xt, right = blobs(100, 1)
    cls = ROUTERS.get(name)
    r = cls(n_models=M) if "n_models" in cls().get_params() else cls()
    pred = r.fit(X, Y).predict(Xt)
    assert pred.shape == (len(Xt), 3 * M)
    assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all()
    assert (route(pred) == right).mean() >= 0.9


#: held-out routing accuracy on TF-IDF text, measured. mlp3 standardises the sparse
#: TF-IDF columns (the authors' StandardScaler), which turns every rare bigram into a
#: large input: it routes its 200 train queries 100% right but held-out ones only 59%
#: (kept: that is the authors' router on TF-IDF; their default features are MiniLM).
TEXT_ACCURACY = dict.fromkeys(DARS_ROUTERS, 0.8) | {"mlp3": 0.5}


@pytest.mark.parametrize("name", DARS_ROUTERS)
def test_routes_held_out_text_through_tfidf20k(fitted_routers, topic_problem, name):
    _, _, test_texts, right = topic_problem
    pred = fitted_routers[name].predict(test_texts)
    assert pred.shape == (len(test_texts), 3 * M)
    assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all()
    assert (route(pred) == right).mean() >= TEXT_ACCURACY[name]


@pytest.mark.parametrize("name", DARS_ROUTERS)
def test_single_shot_fit_with_an_all_zero_std_head(topic_problem, name):
    """A single-shot fit: one draw per pair and a std head of zeros. No NaN; the routers
    whose authors predict std from averaged targets or not at all predict exactly 0."""
    texts, _, test_texts, _ = topic_problem
    _, topics = topic_texts(200, 0)
    Y = topic_targets(topics, 3, single_shot=True)
    assert not Y[:, 2 * M :].any()
    pred = fitted(name, texts, Y).predict(test_texts)
    assert pred.shape == (len(test_texts), 3 * M) and np.isfinite(pred).all()
    _, _, s = heads.split(pred, M)
    if name in ("mlp3", "knn16", "embedllm", "rm_softmax", "avengers_pro"):
        assert not s.any()
    else:  # mirt and graphrouter learn their std output (towards 0) as the authors do
        assert (s >= 0).all() and (s <= 1).all()


@pytest.mark.parametrize("name", DARS_ROUTERS)
def test_one_head_predicts_one_column_per_model(topic_problem, name):
    texts, Y, test_texts, right = topic_problem
    q = Y[:, :M]
    pipe = make_router(name, features="tfidf20k").fit(texts, q)  # n_models left at None
    pred = pipe.predict(test_texts)
    assert pred.shape == (len(test_texts), M) and np.isfinite(pred).all()
    # a 1-D target (one model) keeps its shape
    one = make_router(name, features="tfidf20k").fit(texts, q[:, 0]).predict(test_texts[:3])
    assert one.shape == (3,)


@pytest.mark.parametrize("name", ["mlp3", "embedllm", "mirt", "rm_softmax", "graphrouter"])
def test_same_seed_same_router_other_seed_other_router(topic_problem, name):
    texts, Y, test_texts, _ = topic_problem
    texts, Y = texts[:80], Y[:80]
    small = {k: v for k, v in SMALL_BUDGET[name].items() if k != "max_iter"}
    a = fitted(name, texts, Y, random_state=5, **small).predict(test_texts)
    b = fitted(name, texts, Y, random_state=5, **small).predict(test_texts)
    c = fitted(name, texts, Y, random_state=6, **small).predict(test_texts)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_avengers_pro_seed_moves_the_clusters():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(120, 5)), rng.random((120, 2))
    a = AvengersProRouter(n_init=1, random_state=1).fit(X, Y)
    b = AvengersProRouter(n_init=1, random_state=1).fit(X, Y)
    c = AvengersProRouter(n_init=1, random_state=2).fit(X, Y)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.predict(X), c.predict(X))


# --- the authors' rules, by hand -------------------------------------------------------
def test_knn16_inverse_distance_weights_and_exact_duplicates():
    X = np.array([[0.0], [1.0], [3.0]])
    Y = np.array([[1.0], [0.5], [0.0]])
    r = DarsKNNRouter(n_neighbors=2).fit(X, Y)
    # query at 0.5: neighbours 0 and 1 at distance 0.5 each -> equal weights
    # query at 2.0: neighbours 1 (d 1) and 2 (d 1) -> 0.25; query at 1.0: an exact
    # duplicate of row 1 takes all the weight
    pred = r.predict(np.array([[0.5], [2.0], [1.0], [0.25]]))
    w = np.array([1 / (0.25 + 1e-8), 1 / (0.75 + 1e-8)])
    by_hand = (w @ np.array([1.0, 0.5])) / w.sum()
    assert np.allclose(pred.ravel(), [0.75, 0.25, 0.5, by_hand])
    # k = 16 by default, clipped to the training size; targets outside [0, 1] are clipped
    big = DarsKNNRouter().fit(X, np.array([[2.0], [-1.0], [0.5]]))
    assert big.k_ == 3 and 0 <= big.predict(np.array([[7.0]]))[0] <= 1


def test_knn16_reads_sparse_tfidf_like_dense():
    texts, topics = topic_texts(60, 0)
    Y = topic_targets(topics, 1)
    vec = features.make_featurizer("tfidf20k").fit(texts)
    Xs = vec.transform(texts)
    dense = DarsKNNRouter().fit(Xs.toarray(), Y).predict(Xs[:10].toarray())
    assert np.allclose(DarsKNNRouter().fit(Xs, Y).predict(Xs[:10]), dense)


def test_avengers_pro_averages_the_three_nearest_cluster_tables():
    # four tight, far-apart groups; KMeans(4) finds them; each table is its group's mean
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    rng = np.random.default_rng(0)
    X = np.repeat(centres, 5, axis=0) + rng.normal(scale=0.01, size=(20, 2))
    Y = np.repeat(np.array([[0.1], [0.2], [0.4], [0.8]]), 5, axis=0)
    r = AvengersProRouter(n_clusters=4).fit(X, Y)
    # a query at (1, 1): nearest groups (0,0), (10,0), (0,10) -> (0.1 + 0.2 + 0.4) / 3
    assert np.allclose(r.predict(np.array([[1.0, 1.0]])), (0.1 + 0.2 + 0.4) / 3)
    assert np.allclose(r.predict(np.array([[9.0, 9.0]])), (0.8 + 0.2 + 0.4) / 3)
    assert sorted(r.cluster_sizes_) == [5, 5, 5, 5]


def test_rm_softmax_predicts_choice_probabilities_and_reads_lambda():
    """Model 0: quality 0.9, cost 1; model 1: quality 0.85, cost 0. Below lambda = 0.05
    model 0 has the higher utility, above it model 1: lambda is an input."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    q = np.tile([0.9, 0.85], (200, 1))
    c = np.tile([1.0, 0.0], (200, 1))
    r = RMSoftmaxRouter(n_models=2).fit(X, heads.stack(q, c, np.zeros_like(q)))
    pred = r.predict(X)
    p, cost, std = heads.split(pred, 2)
    assert np.allclose(p.sum(axis=1), 1) and not cost.any() and not std.any()
    assert (r.choice_probabilities(X, lambda_cost=0.0).argmax(axis=1) == 0).mean() > 0.9
    assert (r.choice_probabilities(X, lambda_cost=0.1).argmax(axis=1) == 1).mean() > 0.9
    assert np.allclose(r.choice_probabilities(X), p)


def test_embedllm_and_rm_softmax_learn_the_risk_adjusted_label():
    """Two models with the same mean quality 0.6; model 1 has std 0.5. With beta = 0.2 the
    soft label of model 1 is 0.5, so both routers prefer model 0; with beta = 0, they see
    a tie broken by nothing but noise (no preference asserted)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    q = np.full((200, 2), 0.6)
    s = np.tile([0.0, 0.5], (200, 1))
    Y = heads.stack(q, np.full_like(q, 0.5), s)
    emb = ROUTERS.get("embedllm")(n_models=2, epochs=200, batch_size=64).fit(X, Y)
    qe, _, se = heads.split(emb.predict(X), 2)
    assert (qe[:, 0] > qe[:, 1]).mean() > 0.9 and not se.any()
    rm = RMSoftmaxRouter(n_models=2).fit(X, Y)
    assert (rm.predict(X)[:, :2].argmax(axis=1) == 0).mean() > 0.9


def test_graphrouter_model_descriptions():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 3)), rng.random((40, 2))
    with pytest.raises(ValueError, match="model_descriptions has 3 texts.*2 models"):
        GraphRouter(model_descriptions=["a", "b", "c"], epochs=1).fit(X, Y)
    names = GraphRouter(model_descriptions=["qwen/qwen3-32b", "google/gemma-3-12b-it"])
    assert names.fit(X, Y).model_nodes_.shape == (2, 128)
    default = GraphRouter().fit(X, Y).predict(X)
    assert not np.allclose(names.predict(X), default)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("knn16", {"n_neighbors": 0}, "knn16: n_neighbors=0 must be an integer >= 1"),
        ("mlp3", {"hidden_layer_sizes": ()}, "mlp3: hidden_layer_sizes=()"),
        ("mirt", {"epochs": 2.5}, "mirt: epochs=2.5 must be an integer >= 1"),
        ("avengers_pro", {"n_clusters": -1}, "avengers_pro: n_clusters=-1"),
        ("rm_softmax", {"temperature": 0}, "rm_softmax: temperature=0 must be > 0"),
        ("embedllm", {"n_models": 4}, "neither one head nor three heads of n_models=4"),
    ],
)
def test_bad_router_params_fail_in_fit_with_one_line(name, params, message):
    r = ROUTERS.get(name)(**params)  # __init__ only stores them
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        r.fit(np.eye(6), np.full((6, 3), 0.5))


def test_torch_routers_without_torch_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"mirt.*\.\[embed\]"):
        ROUTERS.get("mirt")().fit(np.eye(4), np.full((4, 2), 0.5))


def test_routers_import_without_torch():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from dars.routers import ROUTERS; import numpy as np\n"
        "r = ROUTERS.get('knn16')().fit(np.eye(4), np.eye(4)); print(r.predict(np.eye(4)).shape)\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(4,", "4)", "False"]


def test_fitted_dars_routers_round_trip_through_skops(fitted_routers, topic_problem, tmp_path):
    """Learned weights are numpy arrays: a saved router loads under the trust check and
    predicts without torch."""
    _, _, test_texts, _ = topic_problem
    for name, pipe in fitted_routers.items():
        path = tmp_path / f"{name}.skops"
        router_io.save_router({"pipeline": pipe, "models": list("abc"), "cost_estimate": 0}, path)
        back = router_io.load_router(path)["pipeline"]
        assert np.allclose(back.predict(test_texts), pipe.predict(test_texts)), name


# --- shared inputs ---------------------------------------------------------------------
def test_dars_query_text():
    assert features.dars_query_text("What is 2+2?") == "What is 2+2?"
    assert features.dars_query_text(" Q ", "") == "Q"
    long = "x" * 1500
    text = features.dars_query_text("Who won?", long)
    assert text == "x" * 1200 + "\nQuestion: Who won?"


def test_tfidf20k_is_the_authors_tfidf_and_tfidf_is_unchanged():
    v = features.make_featurizer("tfidf20k")
    assert (v.max_features, v.ngram_range, v.sublinear_tf, v.min_df) == (20_000, (1, 2), False, 1)
    d = features.make_featurizer("tfidf")
    assert (d.max_features, d.ngram_range, d.sublinear_tf) == (50_000, (1, 2), True)
    texts, _ = topic_texts(10, 0)
    X = v.fit_transform(texts * 2)
    assert X.shape[0] == 20 and X.shape[1] <= 20_000


def test_fit_timing_benchmark_runs():
    """benchmarks/dars_routers_fit.py at a small size (the published size is measured by
    hand; docs/routers.md has the numbers)."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, folder)
    try:
        import dars_routers_fit as bench
    finally:
        sys.path.remove(folder)
    res = bench.run(40, 20, ["knn16", "avengers_pro"])
    assert set(res["routers"]) == {"knn16", "avengers_pro"}
    assert all(v >= 0 for row in res["routers"].values() for v in row.values())


def test_the_train_stage_tells_routers_the_model_names_and_count():
    """fit_router (the train stage's fit) passes n_models and graphrouter's descriptions
    from the model names; a description set in routers.params wins."""
    import dataclasses

    from dars.evaluation import dars_protocol as P
    from dars.evaluation.training import TrainSettings, fit_router
    from dars.routers.graphrouter import describe_models

    models = ["gemma-zero-shot", "gemma-few-shot"]
    texts = [f"question {i} about {'algebra' if i % 2 else 'history'}" for i in range(12)]
    y = np.tile([[0.9, 0.1], [0.2, 0.8]], (6, 1))
    settings = TrainSettings(
        routers=("graphrouter", "mlp3"),
        features="tfidf20k",
        repeats=0,
        seed=0,
        router_params={"graphrouter": {"epochs": 2}, "mlp3": {"max_iter": 5}},
        lambda_cost=0.05,
        beta_risk=0.2,
    )
    fit = {
        name: fit_router(
            name, texts=texts, y=y, cost=y, settings=settings, random_state=0, models=models
        )[0].named_steps["router"]
        for name in settings.routers
    }
    assert fit["graphrouter"].model_descriptions == [
        "gemma-zero-shot. Large language model.",
        "gemma-few-shot. Large language model.",
    ]
    assert fit["graphrouter"].n_models == 2 and fit["mlp3"].n_models == 2
    mine = {"epochs": 2, "model_descriptions": ["small model", "large model"]}
    own = dataclasses.replace(settings, router_params={"graphrouter": mine})
    router = fit_router(
        "graphrouter", texts=texts, y=y, cost=y, settings=own, random_state=0, models=models
    )[0].named_steps["router"]
    assert router.model_descriptions == ["small model", "large model"]
    # the protocol's routers are told the names too
    est = P.registry_router("graphrouter", models=models).make(42, 2)
    assert est.model_descriptions == describe_models(models) and est.n_models == 2


def test_mlp3_fits_in_float32_and_routes_like_float64(topic_problem):
    texts, Y, test_texts, right = topic_problem
    picks = {
        dt: fitted("mlp3", texts, Y, max_iter=60, dtype=dt).predict(test_texts)[:, :M].argmax(1)
        for dt in ("float32", "float64")
    }
    assert np.mean(picks["float32"] == picks["float64"]) >= 0.95
    with pytest.raises(ValueError, match=r"mlp3: dtype='float16' must be one of"):
        fitted("mlp3", texts, Y, dtype="float16")
