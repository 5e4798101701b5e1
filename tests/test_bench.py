"""`dars bench` end to end on a tiny local dataset in the publish layout, with the README's
example router, and the errors a router that breaks the interface gets."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from dars import bench
from dars.cli import main
from dars.core.errors import RouterInterfaceError
from dars.core.io import write_frame
from tests.test_routers import POOL, synthetic_build

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "example_router.py"
CONFIGS = ("queries", "labels", "outcomes", "generations")


def card_header() -> str:
    lines = ["---", "configs:"]
    for cfg in CONFIGS:
        lines += [f"- config_name: {cfg}", "  data_files:"]
        for split in ("train", "validation", "test"):
            lines += [f"  - split: {split}", f"    path: {cfg}/{split}.parquet"]
    return "\n".join(lines + ["---", "", "# tiny DARS dataset for tests", ""])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """~12 queries x 3 models in the publish layout: <config>/<split>.parquet + README.md."""
    b = synthetic_build(n_queries=12, seed=1)
    root = tmp_path_factory.mktemp("published")
    split_of = b["splits"].set_index("query_id")["split"]
    tables = {
        "queries": b["queries"],
        "labels": b["labels"],
        "outcomes": b["outcomes"],
        "generations": b["outcomes"].drop(columns=["score"]),
    }
    for cfg, df in tables.items():
        for split in ("train", "validation", "test"):
            part = df[df["query_id"].map(split_of) == split]
            write_frame(part.reset_index(drop=True), root / cfg / f"{split}.parquet")
    (root / "README.md").write_text(card_header())
    return root


def test_the_folder_loads_with_datasets(dataset):
    ds = datasets.load_dataset(str(dataset), "labels", split="test")
    assert {"query_id", "model", "mean", "single_shot", "cost_norm"} <= set(ds.column_names)
    assert set(ds["model"]) == set(POOL)


def test_bench_end_to_end_with_the_example_router(dataset, tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = main(
        [
            "bench",
            "--dataset",
            str(dataset),
            "--router",
            f"{EXAMPLE}:TfidfRidgeRouter",
            "--output",
            str(out),
            "--bootstrap",
            "200",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "TfidfRidgeRouter (yours)" in printed and "oracle" in printed
    res = json.loads(out.read_text())
    assert res["models"] == sorted(POOL) and res["split"] == "test"
    user = res["routers"]["TfidfRidgeRouter (yours)"]["dars"]
    assert set(res["routers"]) >= {"random", "best-single", "cheapest", "knn", "ridge", "mf"}
    for metric in ("quality", "cost", "utility", "regret", "apgr", "nauc"):
        v = user[metric]
        assert np.isfinite(v["value"]), metric
    oracle = res["reference"]["oracle"]["utility"]["value"]
    for r in res["routers"].values():
        assert r["dars"]["utility"]["value"] <= oracle + 1e-12
        assert r["dars"]["regret"]["value"] >= -1e-12
    assert set(res["versus"]) == set(res["routers"]) - {"TfidfRidgeRouter (yours)"}
    # the example router is a ridge on TF-IDF: it matches the reference ridge closely
    ridge = res["routers"]["ridge"]["dars"]["utility"]["value"]
    assert abs(user["utility"]["value"] - ridge) < 0.1


def test_bench_module_spec_from_the_working_folder(dataset, tmp_path, monkeypatch):
    (tmp_path / "my_router.py").write_text(EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    res = bench.run(
        dataset=str(dataset),
        router="my_router:TfidfRidgeRouter",
        baselines=["best-single"],
        n_boot=100,
    )
    assert set(res["routers"]) == {"TfidfRidgeRouter (yours)", "best-single"}


BROKEN = """
import numpy as np

class NoPredict:
    def fit(self, X, Y):
        return self

class WrongShape:
    def fit(self, X, Y):
        self.m_ = Y.shape[1]
        return self
    def predict(self, X):
        return np.zeros((len(X), self.m_ + 1))

class OneArgFit:
    def fit(self, X):
        return self
    def predict(self, X):
        return np.zeros(len(X))

class NeedsArgs:
    def __init__(self, depth):
        self.depth = depth

class NaNs:
    def fit(self, X, Y):
        self.m_ = Y.shape[1]
        return self
    def predict(self, X):
        out = np.zeros((len(X), self.m_))
        out[0, 1] = np.nan
        return out

class Crashes:
    def fit(self, X, Y):
        return {}["missing"]
    def predict(self, X):
        return None
"""


@pytest.mark.parametrize(
    "cls, message",
    [
        ("NoPredict", r"NoPredict has no method 'predict'.*predict\(X\)"),
        ("WrongShape", r"shape \(\d+, 4\); expected \(\d+, 3\).*math-pro"),
        ("OneArgFit", r"OneArgFit.fit\(X\) cannot be called as fit\(X, Y\)"),
        ("NeedsArgs", r"NeedsArgs\(\) failed.*no arguments"),
        ("NaNs", r"non-finite values.*model 'poet'"),
        ("Crashes", r"Crashes.fit\(X, Y\) raised KeyError: 'missing' \(at .*broken.py:\d+\)"),
        ("Missing", r"has no attribute 'Missing'; classes in it: \['Crashes'"),
    ],
)
def test_broken_routers_get_a_clear_error(dataset, tmp_path, cls, message):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    with pytest.raises(RouterInterfaceError, match=message):
        bench.run(dataset=str(dataset), router=f"{path}:{cls}", baselines=[], n_boot=100)


def test_cli_reports_a_broken_router_without_a_traceback(dataset, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dars",
            "bench",
            "--dataset",
            str(dataset),
            "--router",
            f"{path}:WrongShape",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 1
    assert "dars bench: error: WrongShape.predict returned an array of shape" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_router_spec_and_unknown_module(dataset):
    with pytest.raises(RouterInterfaceError, match="must look like 'my_module:MyRouter'"):
        bench.run(dataset=str(dataset), router="just_a_name")
    with pytest.raises(RouterInterfaceError, match="cannot import module 'no_such_mod_xyz'"):
        bench.run(dataset=str(dataset), router="no_such_mod_xyz:R")


def test_a_folder_without_the_publish_layout_is_named(tmp_path):
    from dars.core.errors import InputDataError

    (tmp_path / "README.md").write_text("no configs here\n")
    with pytest.raises(InputDataError, match=r"no config .queries. with split .train."):
        bench.run(dataset=str(tmp_path), router=f"{EXAMPLE}:TfidfRidgeRouter", n_boot=100)


def test_bench_scores_every_router_under_dars_views_with_the_manifest_weights(dataset, tmp_path):
    import shutil

    pub = tmp_path / "pub"
    shutil.copytree(dataset, pub)
    weights = {"lambda_cost": 0.1, "beta_risk": {"synth": 0.3}}
    (pub / "MANIFEST.json").write_text(json.dumps({"utility": weights}))
    res = bench.run(
        dataset=str(pub), router=f"{EXAMPLE}:TfidfRidgeRouter", n_boot=100, baselines=["ridge"]
    )
    assert res["weights_source"] == "MANIFEST.json"
    assert res["settings"]["lambda_cost"] == 0.1
    assert res["settings"]["beta_risk"] == {"synth": 0.3}
    assert set(res["views"]) == {"prompt_variation", "decoding_variation"}
    for entry in res["views"].values():
        assert entry["n_test_queries"] > 0
        assert set(entry["routers"]) == {"TfidfRidgeRouter (yours)", "ridge"}
        assert np.isfinite(entry["routers"]["ridge"]["dars"]["utility"]["value"])
    # an explicit --beta-risk wins over the manifest
    res = bench.run(
        dataset=str(pub),
        router=f"{EXAMPLE}:TfidfRidgeRouter",
        n_boot=100,
        baselines=["ridge"],
        beta_risk=0.2,
    )
    assert res["settings"]["beta_risk"] == 0.2 and res["settings"]["lambda_cost"] == 0.1


def test_bench_without_published_outcomes_skips_the_views(dataset, tmp_path, capsys):
    import shutil

    pub = tmp_path / "pub"
    shutil.copytree(dataset, pub, ignore=shutil.ignore_patterns("outcomes"))
    lines = ["---", "configs:"]
    for cfg in ("queries", "labels"):
        lines += [f"- config_name: {cfg}", "  data_files:"]
        for split in ("train", "validation", "test"):
            lines += [f"  - split: {split}", f"    path: {cfg}/{split}.parquet"]
    (pub / "README.md").write_text("\n".join(lines + ["---", ""]))
    res = bench.run(
        dataset=str(pub), router=f"{EXAMPLE}:TfidfRidgeRouter", n_boot=100, baselines=["ridge"]
    )
    assert res["views"] == {} and res["weights_source"] == "defaults"
    assert "evaluation views skipped" in capsys.readouterr().out
