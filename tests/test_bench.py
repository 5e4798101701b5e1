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
from dars.core.errors import InputDataError, RouterInterfaceError
from dars.core.io import write_frame
from tests.factories import POOL, synthetic_build

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
    assert res["weights_source"] == {"lambda_cost": "MANIFEST.json", "beta_risk": "MANIFEST.json"}
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
    assert res["weights_source"] == {"lambda_cost": "MANIFEST.json", "beta_risk": "--beta"}


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
    assert res["views"] == {} and res["weights_source"] == {
        "lambda_cost": "defaults",
        "beta_risk": "defaults",
    }
    assert "evaluation views skipped" in capsys.readouterr().out


DISTRIBUTION_AWARE = """
import numpy as np

SEEN = {}

class UsesLabels:
    def __init__(self, shrink=0.0):
        self.shrink = shrink

    def fit(self, X, Y, *, models, labels, tasks):
        SEEN.update(X=list(X), models=list(models), labels=labels, tasks=list(tasks), Y=Y)
        width = (labels["ci_high"] - labels["ci_low"]).to_numpy().reshape(len(X), len(models))
        self.mean_ = (Y - self.shrink * width).mean(axis=0)
        return self

    def predict(self, X):
        return np.tile(self.mean_, (len(X), 1))
"""


@pytest.fixture
def aware(tmp_path, monkeypatch):
    path = tmp_path / "aware.py"
    path.write_text(DISTRIBUTION_AWARE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module("aware")


def test_fit_can_ask_for_the_labels_and_tasks(dataset, aware):
    res = bench.run(dataset=str(dataset), router=aware.UsesLabels, baselines=[], n_boot=100)
    seen = aware.SEEN
    lab = seen["labels"]
    n, m = len(seen["X"]), len(seen["models"])
    assert {"mean", "std", "ci_low", "ci_high", "alpha", "beta", "n", "task"} <= set(lab.columns)
    assert len(lab) == n * m and len(seen["tasks"]) == n
    # rows follow X and the columns of Y: the label mean/std give back Y = mean - beta * std
    beta = res["settings"]["beta_risk"]
    y = (lab["mean"] - beta * lab["std"]).to_numpy().reshape(n, m)
    assert np.allclose(y, seen["Y"])
    assert list(lab["model"][:m]) == seen["models"]
    assert res["n_train_queries"] == n


def test_router_as_instance_class_or_string_with_router_args(dataset, aware, tmp_path, capsys):
    by_instance = bench.run(
        dataset=str(dataset), router=aware.UsesLabels(shrink=0.5), baselines=[], n_boot=100
    )
    by_class = bench.run(
        dataset=str(dataset),
        router=aware.UsesLabels,
        router_args={"shrink": 0.5},
        baselines=[],
        n_boot=100,
    )
    key = "UsesLabels (yours)"
    u1 = by_instance["routers"][key]["dars"]["utility"]["value"]
    assert u1 == by_class["routers"][key]["dars"]["utility"]["value"]
    assert by_class["router_args"] == {"shrink": 0.5}
    with pytest.raises(RouterInterfaceError, match="pass the class"):
        bench.run(dataset=str(dataset), router=aware.UsesLabels(), router_args={"shrink": 1})
    out = tmp_path / "r.json"
    rc = main(
        ["bench", "--dataset", str(dataset), "--router", f"{EXAMPLE}:TfidfRidgeRouter",
         "--router-arg", "alpha=0.5", "--baselines", "best-single,ridge", "--bootstrap", "100",
         "--output", str(out)]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["router_args"] == {"alpha": 0.5}
    printed = capsys.readouterr().out
    assert "TfidfRidgeRouter (yours) minus each baseline" in printed
    deltas = printed[printed.index("minus each baseline") :].splitlines()
    for b in ("best-single", "ridge"):
        row = next(line for line in deltas if line.strip("│ ").startswith(f"{b} "))
        assert "p=" in row and "[" in row  # a difference, its interval and p-value


def test_results_record_weights_and_dataset_version(dataset, tmp_path):
    import shutil

    import yaml

    res = bench.run(dataset=str(dataset), router=f"{EXAMPLE}:TfidfRidgeRouter", baselines=[],
                    n_boot=100)  # fmt: skip
    assert res["settings"]["lambda_cost"] == 0.05 and res["settings"]["beta_risk"] == 0.2
    assert res["weights_source"] == {"lambda_cost": "defaults", "beta_risk": "defaults"}
    assert res["dataset_version"] is None  # the fixture has no MANIFEST.json
    # a dataset whose manifest records the build's params: its lambda/beta are used
    copy = tmp_path / "published"
    shutil.copytree(dataset, copy)
    params = {"aggregate": {"lambda_cost": 0.3, "beta_risk": 0.1}}
    manifest = {"dataset_version": "9.9.9", "params_yaml": yaml.safe_dump(params)}
    (copy / "MANIFEST.json").write_text(json.dumps(manifest))
    res = bench.run(dataset=str(copy), router=f"{EXAMPLE}:TfidfRidgeRouter", baselines=[],
                    n_boot=100)  # fmt: skip
    assert (res["settings"]["lambda_cost"], res["settings"]["beta_risk"]) == (0.3, 0.1)
    assert res["weights_source"]["lambda_cost"] == "MANIFEST.json"
    assert res["dataset_version"] == "9.9.9" and res["dataset_revision"].startswith("sha256:")
    res = bench.run(dataset=str(copy), router=f"{EXAMPLE}:TfidfRidgeRouter", baselines=[],
                    n_boot=100, lambda_cost=0.0)  # fmt: skip
    assert res["settings"]["lambda_cost"] == 0.0 and res["settings"]["beta_risk"] == 0.1
    assert res["weights_source"] == {"lambda_cost": "--lambda", "beta_risk": "MANIFEST.json"}
    # .table: one row per system, with yours minus each baseline
    res = bench.run(dataset=str(copy), router=f"{EXAMPLE}:TfidfRidgeRouter",
                    baselines=["best-single"], n_boot=100)  # fmt: skip
    table = res.table
    assert set(table["system"]) >= {"TfidfRidgeRouter (yours)", "best-single", "oracle"}
    row = table.set_index("system").loc["best-single"]
    assert row["yours_minus_utility"] == pytest.approx(
        res["versus"]["best-single"]["utility"]["diff"]
    )


def test_scoring_the_train_split_warns(dataset):
    from dars.core.errors import DarsWarning

    with pytest.warns(DarsWarning, match="train split"):
        bench.run(dataset=str(dataset), router=f"{EXAMPLE}:TfidfRidgeRouter", split="train",
                  baselines=[], n_boot=100)  # fmt: skip


def test_an_unreachable_hub_id_fails_in_one_line(tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "dars", "bench", "--dataset", "no-such-org/no-such-dars-data",
         "--router", f"{EXAMPLE}:TfidfRidgeRouter"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "'no-such-org/no-such-dars-data'" in lines[0]


def test_manifest_weights_prefer_the_utility_record_then_params_yaml_then_defaults():
    import yaml

    from dars.core.errors import ParamsError

    params = {"aggregate": {"lambda_cost": 0.3, "beta_risk": 0.1}}
    both = {"utility": {"beta_risk": {"a": 0.4, "b": 0.0}}, "params_yaml": yaml.safe_dump(params)}
    got, source = bench.manifest_weights(both)
    assert got["beta_risk"] == {"a": 0.4, "b": 0.0} and got["lambda_cost"] == 0.3
    assert source == {"lambda_cost": "MANIFEST.json", "beta_risk": "MANIFEST.json"}
    got, source = bench.manifest_weights({})
    assert (got["lambda_cost"], got["beta_risk"]) == (bench.DEFAULT_LAMBDA, bench.DEFAULT_BETA)
    assert source == {"lambda_cost": "defaults", "beta_risk": "defaults"}
    with pytest.raises(ParamsError, match="utility.lambda_cost"):
        bench.manifest_weights({"utility": {"lambda_cost": -1}})
    # a recorded params.yaml that cannot be read is an error, not the defaults
    for bad, what in (("aggregate: [1,", "not valid YAML"), ("- 1\n- 2\n", "a YAML list")):
        with pytest.raises(InputDataError, match=f"MANIFEST.json params_yaml is {what}"):
            bench.manifest_weights({"params_yaml": bad})


# --- dars bench --predictions: a file of choices, no code ------------------------------


class AlwaysFirst:
    """Routes every query to the first model (scores 1 there, 0 elsewhere)."""

    def fit(self, X, Y):
        self.m_ = np.asarray(Y).shape[1]
        return self

    def predict(self, X):
        out = np.zeros((len(X), self.m_))
        out[:, 0] = 1.0
        return out


def scored_test_ids(dataset: Path) -> list[str]:
    lab = datasets.load_dataset(str(dataset), "labels", split="test").to_pandas()
    complete = lab.groupby("query_id")["mean"].apply(lambda s: s.notna().all())
    return sorted(complete[complete].index)


def test_predictions_file_scores_like_the_router_that_made_the_choices(dataset, tmp_path):
    ids = scored_test_ids(dataset)
    models = sorted(POOL)
    csv_path = tmp_path / "choices.csv"
    csv_path.write_text(
        "query_id,model,confidence\n" + "".join(f"{q},{models[0]},0.9\n" for q in ids)
    )
    jsonl_path = tmp_path / "choices.jsonl"
    jsonl_path.write_text(
        "".join(json.dumps({"query_id": q, "model": models[0]}) + "\n" for q in ids)
    )
    by_router = bench.run(dataset=str(dataset), router=AlwaysFirst, n_boot=100, baselines=[])
    mine = by_router["routers"]["AlwaysFirst (yours)"]["dars"]
    for path in (csv_path, jsonl_path):
        res = bench.run(
            dataset=str(dataset), predictions=str(path), n_boot=100, baselines=["ridge"]
        )
        got = res["routers"][f"predictions {path.name} (yours)"]["dars"]
        for metric in ("quality", "cost", "utility", "regret"):
            assert got[metric] == mine[metric], metric
        assert res["router"] == str(path) and "ridge" in res["versus"]
    # hand-computed: the quality is the mean label of the chosen model over the scored queries
    lab = datasets.load_dataset(str(dataset), "labels", split="test").to_pandas()
    want = lab[lab["query_id"].isin(ids) & (lab["model"] == models[0])]["mean"].mean()
    assert got["quality"]["value"] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(
    "body, message",
    [
        ("query_id,model\n{q0},gpt-17\n", r"choices.csv:2: Unknown model 'gpt-17'.*Valid models"),
        ("query_id,model\nnope,{m}\n", r"choices.csv:2: unknown query_id 'nope'"),
        ("query_id,model\n{q0},{m}\n{q0},{m}\n", r"choices.csv:3: duplicate query_id .* line 2"),
        ("query_id,model\n,{m}\n", r"choices.csv:2: missing query_id"),
        ("query_id,model\n{q0},{m}\n", r"choices.csv: no choice for \d+ of the \d+ scored"),
        ("qid,model\n{q0},{m}\n", r"choices.csv:1: the CSV header .* lacks \['query_id'\]"),
    ],
)
def test_bad_prediction_files_are_one_line_naming_the_line(
    dataset, tmp_path, capsys, body, message
):
    import re

    ids = scored_test_ids(dataset)
    path = tmp_path / "choices.csv"
    path.write_text(body.format(q0=ids[0], m=sorted(POOL)[0]))
    assert main(["bench", "--dataset", str(dataset), "--predictions", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_prediction_files_need_a_known_layout_and_exclude_a_router(dataset, tmp_path, capsys):
    bad = tmp_path / "choices.txt"
    bad.write_text("x\n")
    assert main(["bench", "--dataset", str(dataset), "--predictions", str(bad)]) == 1
    assert "unknown format '.txt'" in capsys.readouterr().err
    lines = tmp_path / "c.jsonl"
    lines.write_text('["q", "m"]\n')
    assert main(["bench", "--dataset", str(dataset), "--predictions", str(lines)]) == 1
    assert "c.jsonl:1: a list, expected an object" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --router and --predictions exclude each other
        main(["bench", "--dataset", str(dataset), "--router", "m:R", "--predictions", str(bad)])
    with pytest.raises(RouterInterfaceError, match="exactly one"):
        bench.run(dataset=str(dataset), n_boot=100)


def test_bench_reports_the_fields_metrics_with_validation_tuned_thresholds(dataset):
    res = bench.run(
        dataset=str(dataset), router=f"{EXAMPLE}:TfidfRidgeRouter", baselines=["knn"], n_boot=100
    )
    field = res["field"]
    assert field["strong_model"] in POOL and field["weak_model"] in POOL
    user = field["systems"]["TfidfRidgeRouter (yours)"]["dars"]
    for k in ("aiq", "apgr_routellm", "imp_max", "oracle_gap", "cpt_80"):
        assert k in user["all"] and k in user["macro"], k
    assert 0 <= user["all"]["aiq"] <= 1
    # the published validation split tunes the RouteLLM thresholds, never the test split
    assert "validated_cpt_50_strong_calls" in user["all"]


def test_bench_protocol_dars(dataset, tmp_path, capsys):
    out = tmp_path / "dars.json"
    rc = main(
        [
            "bench",
            "--dataset",
            str(dataset),
            "--router",
            f"{EXAMPLE}:TfidfRidgeRouter",
            "--baselines",
            "knn,ridge",
            "--protocol",
            "dars",
            "--runs",
            "2",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["protocol"] == "dars" and res["settings"]["runs"] == 2
    for task in res["tasks"].values():
        assert set(task["routers"]) == {"TfidfRidgeRouter (yours)", "knn", "ridge"}
        user = task["routers"]["TfidfRidgeRouter (yours)"]
        assert user["single_shot"]["runs"] == 2
    assert "| distribution |" in capsys.readouterr().out
