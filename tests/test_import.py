"""`dars import` on fixture files in both source layouts, built here from the field lists
of the DARS release (scored JSONL) and of RouterBench (a wide pickled DataFrame)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dars.cli import main
from dars.core.io import model_file_stem
from dars.importers import read_source
from tests.factories import DARS_MODELS, K, N, make_dars_release

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "example_router.py"

RB_MODELS = ("gpt-4-1106-preview", "meta/llama-2-70b-chat", "mistralai/mixtral-8x7b-chat")


def make_routerbench(root: Path, *, n: int = 30, seed: int = 0) -> Path:
    """A RouterBench-layout DataFrame: sample_id, prompt, eval_name,
    oracle_model_to_route_to and, per model M, M, M|model_response, M|total_cost."""
    rng = np.random.default_rng(seed)
    evals = ["mmlu-college-biology", "gsm8k", "hellaswag"]
    df = pd.DataFrame(
        {
            "sample_id": [f"{evals[i % 3]}.{i}" for i in range(n)],
            "prompt": [
                f"Question {i} about {evals[i % 3]}: pick the right answer." for i in range(n)
            ],
            "eval_name": [evals[i % 3] for i in range(n)],
        }
    )
    for j, m in enumerate(RB_MODELS):
        df[m] = (rng.random(n) < 0.3 + 0.3 * j).astype(float)
        df[f"{m}|model_response"] = [f"response {i} of {m}" for i in range(n)]
        df[f"{m}|total_cost"] = 1e-4 * (j + 1) * (1 + rng.random(n))
    df["oracle_model_to_route_to"] = [RB_MODELS[i % 3] for i in range(n)]
    path = root / "routerbench_0shot.pkl"
    df.to_pickle(path)
    return path


@pytest.fixture(scope="module")
def dars_out(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dars_import")
    src = make_dars_release(root)
    out = root / "out"
    assert main(["import", "dars-release", str(src), "--out", str(out)]) == 0
    return src, out


@pytest.fixture(scope="module")
def rb_out(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rb_import")
    src = make_routerbench(root)
    out = root / "out"
    assert main(["import", "routerbench", str(src), "--out", str(out), "--allow-pickle"]) == 0
    return src, out


def read_jsonl(src: Path) -> pd.DataFrame:
    rows = [
        json.loads(line)
        for f in sorted(src.glob("*/*_scored_generations.jsonl"))
        for line in f.read_text().splitlines()
    ]
    return pd.DataFrame(rows)


def test_dars_release_becomes_a_ready_workspace(dars_out):
    src, out = dars_out
    params = yaml.safe_load((out / "params.yaml").read_text())
    assert sorted(params["models"]) == sorted(DARS_MODELS)  # one entry per model, source ids
    for m in DARS_MODELS:
        assert (out / "data" / "outcomes" / f"{model_file_stem(m)}.parquet").exists()
        assert "/" not in model_file_stem(m)
    for name in ("queries", "variants", "splits", "labels"):
        assert (out / "data" / f"{name}.parquet").exists(), name
    report = json.loads((out / "reports" / "validation.json").read_text())
    assert report["success"] is True
    assert main(["check-params", "--params", str(out / "params.yaml")]) == 0
    q = pd.read_parquet(out / "data" / "queries.parquet")
    source_ids = {json.loads(m)["source_id"] for m in q["metadata"]}
    assert source_ids == set(read_jsonl(src)["query_id"])
    assert set(q["task"]) == {"gpqa", "math"}
    outc = pd.read_parquet(out / "data" / "outcomes" / f"{model_file_stem(DARS_MODELS[0])}.parquet")
    assert set(outc["model"]) == {DARS_MODELS[0]}  # the model column keeps the source id
    assert set(outc["observation_type"].dropna()) == {"prompt_variation", "decoding_variation"}
    assert outc["prompt_tokens"].min() >= 20
    v = pd.read_parquet(out / "data" / "variants.parquet")
    assert v.groupby("query_id").size().max() == K + 1  # the original and K rewrites


def test_dars_labels_are_the_per_pair_mean_of_the_imported_scores(dars_out):
    src, out = dars_out
    rows = read_jsonl(src)
    q = pd.read_parquet(out / "data" / "queries.parquet")
    qid = {json.loads(m)["source_id"]: i for m, i in zip(q["metadata"], q["query_id"], strict=True)}
    rows["qid"] = rows["query_id"].map(qid)
    expect = rows.groupby(["qid", "model"])["score"].agg(["mean", "size"])
    lab = pd.read_parquet(out / "data" / "labels.parquet").set_index(["query_id", "model"])
    got = lab.loc[expect.index]
    assert np.allclose(got["mean"], expect["mean"])
    assert (got["n"].to_numpy() == expect["size"].to_numpy()).all()
    # test pairs hold K prompt-variation + N decoding-variation observations
    test_ids = set(rows.loc[rows["split"] == "test", "qid"])
    assert set(lab.loc[lab.index.get_level_values(0).isin(test_ids), "n"]) == {K + N}


def test_dars_splits_keep_train_and_test(dars_out):
    src, out = dars_out
    rows = read_jsonl(src)
    q = pd.read_parquet(out / "data" / "queries.parquet")
    sid = {i: json.loads(m)["source_id"] for m, i in zip(q["metadata"], q["query_id"], strict=True)}
    spl = pd.read_parquet(out / "data" / "splits.parquet")
    spl["source"] = spl["query_id"].map(sid)
    src_split = rows.drop_duplicates("query_id").set_index("query_id")["split"]
    want = spl["source"].map(src_split)
    assert (spl.loc[want == "test", "split"] == "test").all()
    assert set(spl.loc[want == "train", "split"]) == {"train", "validation"}
    assert (spl["split"] == "validation").sum() >= 1


def test_routerbench_labels_have_n_1_and_eval_name_is_the_task(rb_out):
    src, out = rb_out
    df = pd.read_pickle(src)
    lab = pd.read_parquet(out / "data" / "labels.parquet")
    assert (lab["n"] == 1).all() and (lab["std"] == 0).all()
    q = pd.read_parquet(out / "data" / "queries.parquet")
    sid = {i: json.loads(m)["source_id"] for m, i in zip(q["metadata"], q["query_id"], strict=True)}
    lab["sample_id"] = lab["query_id"].map(sid)
    wide = df.set_index("sample_id")
    for r in lab.itertuples():
        assert r.mean == wide.loc[r.sample_id, r.model]
    assert set(q["task"]) == set(df["eval_name"])
    params = yaml.safe_load((out / "params.yaml").read_text())
    assert sorted(params["models"]) == sorted(RB_MODELS)
    assert "n = 1" in params["imported"]["note"]


def test_routerbench_split_is_deterministic_and_grouped(rb_out, tmp_path):
    src, out = rb_out
    again = tmp_path / "again"
    assert main(["import", "routerbench", str(src), "--out", str(again), "--allow-pickle"]) == 0
    a = pd.read_parquet(out / "data" / "splits.parquet")
    b = pd.read_parquet(again / "data" / "splits.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert a["query_id"].is_unique and set(a["split"]) == {"train", "validation", "test"}


def test_pickle_is_refused_without_allow_pickle(tmp_path, capsys):
    src = make_routerbench(tmp_path)
    out = tmp_path / "out"
    assert main(["import", "routerbench", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--allow-pickle" in err and "runs" in err and "code" in err
    assert not out.exists()


def test_bad_dars_rows_are_dropped_and_counted_with_file_and_line(tmp_path, capsys):
    src = make_dars_release(tmp_path, n_train=6, n_test=2)
    n_good = len(read_jsonl(src))
    path = src / "gpqa" / "train_scored_generations.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    missing = dict(first, decode_id=50)
    del missing["score"]
    outside = dict(first, decode_id=51, score=1.5)
    lines += [json.dumps(missing), json.dumps(outside), lines[0], "{not json"]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["import", "dars-release", str(src), "--out", str(out)]) == 0
    report = json.loads((out / "reports" / "import.json").read_text())
    by = report["by_reason"]
    n = len(lines)
    assert by["missing score"] == {
        "rows": 1,
        "first_at": [f"dars_release/gpqa/{path.name}:{n - 3}"],
    }
    assert by["score outside [0, 1]"]["first_at"] == [f"dars_release/gpqa/{path.name}:{n - 2}"]
    assert by["duplicate key"]["first_at"] == [f"dars_release/gpqa/{path.name}:{n - 1}"]
    assert by["not valid JSON"]["rows"] == 1 and report["dropped"] == 4
    printed = capsys.readouterr().out
    assert "dropped 4 source rows" in printed and "missing score 1" in printed
    # the good rows all made it
    lab = pd.read_parquet(out / "data" / "labels.parquet")
    assert lab["n"].sum() == n_good


def test_bad_routerbench_cells_are_dropped_by_row_and_column(tmp_path):
    path = make_routerbench(tmp_path, n=12)
    df = pd.read_pickle(path)
    m = RB_MODELS[1]
    df.loc[2, m] = 1.7
    df.loc[3, m] = np.nan  # a response but no score
    df = pd.concat([df, df.iloc[[4]]], ignore_index=True)  # a duplicate sample_id
    df.to_pickle(path)
    imp = read_source("routerbench", path, allow_pickle=True)
    by = imp.drops.as_dict()["by_reason"]
    assert by["score outside [0, 1]"]["first_at"] == [f"{path.name} row 2, column {m!r}"]
    assert by["missing score"]["first_at"] == [f"{path.name} row 3, column {m!r}"]
    assert by["duplicate key"]["first_at"][0].startswith(f"{path.name} row 12 ")
    assert len(imp.obs) == 12 * len(RB_MODELS) - 2


def test_unknown_layouts_fail_naming_what_was_found(tmp_path, capsys):
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "data.csv").write_text("a,b\n")
    assert (
        main(["import", "dars-release", str(tmp_path / "release"), "--out", str(tmp_path / "o")])
        == 1
    )
    err = capsys.readouterr().err
    assert "unknown layout" in err and "data.csv" in err and "train_scored_generations" in err
    bad = tmp_path / "bad.pkl"
    pd.DataFrame({"question": ["q"], "answer": ["a"]}).to_pickle(bad)
    assert (
        main(["import", "routerbench", str(bad), "--out", str(tmp_path / "o2"), "--allow-pickle"])
        == 1
    )
    err = capsys.readouterr().err
    assert "unknown layout" in err and "sample_id" in err and "'question'" in err
    not_a_frame = tmp_path / "list.pkl"
    not_a_frame.write_bytes(pickle.dumps([1, 2, 3]))
    assert (
        main(
            [
                "import",
                "routerbench",
                str(not_a_frame),
                "--out",
                str(tmp_path / "o3"),
                "--allow-pickle",
            ]
        )
        == 1
    )
    assert "holds a list" in capsys.readouterr().err


def test_bench_runs_on_an_imported_dataset_after_card(rb_out, tmp_path):
    """import -> train -> evaluate -> card -> `dars bench --dataset OUT/publish`."""
    _, out = rb_out
    params = yaml.safe_load((out / "params.yaml").read_text())
    params["routers"].update(names=["best-single", "ridge"], single_shot_repeats=1)
    params["evaluate"]["bootstrap"] = 100
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    d, p = out / "data", str(out / "params.yaml")
    common = ["--params", p, "--labels", str(d / "labels.parquet")]
    common += ["--queries", str(d / "queries.parquet"), "--splits", str(d / "splits.parquet")]
    assert (
        main(
            ["train", *common, "--outcomes", str(d / "outcomes"), "--out-dir", str(out / "models")]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                *common,
                "--models-dir",
                str(out / "models"),
                "--metrics",
                str(out / "metrics" / "routers.json"),
                "--table",
                str(out / "metrics" / "routers.md"),
                "--plots-dir",
                str(out / "plots"),
                "--outcomes",
                str(d / "outcomes"),
                "--headline",
                str(out / "metrics" / "routers_headline.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "card",
                "--params",
                p,
                "--template",
                str(REPO / "dataset_card.md"),
                "--queries",
                str(d / "queries.parquet"),
                "--labels",
                str(d / "labels.parquet"),
                "--splits",
                str(d / "splits.parquet"),
                "--variants",
                str(d / "variants.parquet"),
                "--generations",
                str(d / "generations"),
                "--outcomes",
                str(d / "outcomes"),
                "--validation",
                str(out / "reports" / "validation.json"),
                "--models-dir",
                str(out / "models"),
                "--router-metrics",
                str(out / "metrics" / "routers.json"),
                "--no-lock",
                "--out",
                str(out / "publish"),
            ]
        )
        == 0
    )
    card = (out / "publish" / "README.md").read_text()
    assert "One observation per pair (n = 1)" in card and "Imported data" in card
    pub = out / "publish"
    published = sorted(pub.glob("routers/*.skops"))
    assert all(f.name.endswith(("-dars.skops", "-single_shot-r0.skops")) for f in published)
    data = sum(f.stat().st_size for c in ("queries", "labels", "outcomes", "generations")
               for f in (pub / c).glob("*.parquet"))  # fmt: skip
    routers = sum(f.stat().st_size for f in published)
    assert routers <= 0.2 * (routers + data)  # card.max_router_share
    assert (out / "models" / "ridge-single_shot-r0.skops").exists()  # all stay in models/
    res_path = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--dataset",
                str(out / "publish"),
                "--router",
                f"{EXAMPLE}:TfidfRidgeRouter",
                "--baselines",
                "best-single",
                "--bootstrap",
                "100",
                "--output",
                str(res_path),
            ]
        )
        == 0
    )
    res = json.loads(res_path.read_text())
    assert res["dataset_version"] == params["dataset_version"]
    assert res["dataset_revision"].startswith("sha256:")
    assert res["weights_source"] == {"lambda_cost": "MANIFEST.json", "beta_risk": "MANIFEST.json"}
    assert set(res["models"]) == set(RB_MODELS)


def _outcomes(out: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(p) for p in sorted((out / "data" / "outcomes").glob("*.parquet"))],
        ignore_index=True,
    )


def test_dars_original_is_variant_0_and_rewrites_are_shifted(dars_out):
    """The release's -1 is our variant 0; its rewrite r is our r + 1; train holds rewrites
    only, so no train observation is of the original."""
    src, out = dars_out
    outc = _outcomes(out)
    assert (outc["variant_id"] == outc["prompt_variant_id"] + 1).all()
    train = outc[outc["source_split"] == "train"]
    assert sorted(train["variant_id"].unique()) == list(range(1, K + 1))
    test = outc[outc["source_split"] == "test"]
    orig = test[test["observation_type"] == "decoding_variation"]
    assert set(orig["variant_id"]) == {0} and sorted(orig["sample_id"].unique()) == list(range(N))
    rew = test[test["observation_type"] == "prompt_variation"]
    assert sorted(rew["variant_id"].unique()) == list(range(1, K + 1))
    # the variants table's 0 is the original question, the rewrites keep their text
    rows = read_jsonl(src)
    v = pd.read_parquet(out / "data" / "variants.parquet")
    q = pd.read_parquet(out / "data" / "queries.parquet")
    assert (v[v["variant_id"] == 0].set_index("query_id")["prompt"]
            == q.set_index("query_id")["prompt"]).all()  # fmt: skip
    assert set(v.loc[v["variant_id"] > 0, "prompt"]) == set(
        rows.loc[rows["prompt_variant_id"] >= 0, "input_question"]
    )
    lab = pd.read_parquet(out / "data" / "labels.parquet")
    train_ids = set(train["query_id"])
    assert lab.loc[lab["query_id"].isin(train_ids), "single_shot"].isna().all()
    assert lab.loc[~lab["query_id"].isin(train_ids), "single_shot"].notna().all()


def test_dars_test_views_survive_with_their_row_counts(dars_out):
    from dars.labels import views as V

    src, out = dars_out
    rows = read_jsonl(src)
    test_rows = rows[rows["split"] == "test"]
    report = json.loads((out / "reports" / "import.json").read_text())
    for view in V.VIEWS:
        want = int((test_rows["observation_type"] == view).sum())
        assert report["views"][view] == {
            "source_rows": want,
            "imported_rows": want,
            "written_rows": want,
        }
    assert report["views"]["pairs_missing_a_view"] == 0
    # the evaluation views select the release's own rows: K rewrites, N decodes
    outc = _outcomes(out)
    test = outc[outc["source_split"] == "test"]
    for view, n in (("prompt_variation", K), ("decoding_variation", N)):
        lab = V.view_labels(test, view=view, cost_scale=1.0)
        assert set(lab["n"]) == {n}, view


def test_dars_scoring_fields_are_kept(dars_out):
    src, out = dars_out
    rows = read_jsonl(src)
    outc = _outcomes(out)
    for col in ("score_type", "parse_success", "predicted_answer", "gold_answer", "em"):
        assert col in outc.columns, col
    assert set(outc["score_type"]) == {"binary_math_exact_match"}
    assert outc["parse_success"].sum() == rows["parse_success"].sum()
    bad = outc[~outc["parse_success"].astype(bool)]
    assert len(bad) and (bad["grade_status"] == "unparsable").all() and (bad["score"] == 0).all()
    good = outc[outc["parse_success"].astype(bool)]
    assert (good["grade_status"] == "ok").all()
    assert (good["parsed"] == good["predicted_answer"]).all()
    q = pd.read_parquet(out / "data" / "queries.parquet")
    gpqa = q[q["task"] == "gpqa"]
    assert all(isinstance(json.loads(r), list) for r in gpqa["reference"])  # DROP-style lists
    assert (q.loc[q["task"] == "math", "reference"] != "").all()


def test_dars_rows_out_of_their_view_are_dropped_and_counted(tmp_path):
    src = make_dars_release(tmp_path, n_train=4, n_test=2)
    path = src / "math" / "test_scored_generations.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])  # a prompt_variation row
    lines += [
        json.dumps(dict(first, decode_id=7, prompt_variant_id=-1)),  # original in rewrite view
        json.dumps(dict(first, decode_id=8, observation_type="other")),
        json.dumps(dict(first, decode_id=9, prompt_variant_id=-2)),
    ]
    path.write_text("\n".join(lines) + "\n")
    imp = read_source("dars-release", src)
    by = imp.drops.as_dict()["by_reason"]
    n = len(lines)
    assert [r for r in by if r.startswith("observation_type does not match")]
    mismatch = next(v for r, v in by.items() if r.startswith("observation_type does not match"))
    assert mismatch["first_at"] == [f"dars_release/math/{path.name}:{n - 2}"]
    other = next(v for r, v in by.items() if r.startswith("test row with observation_type"))
    assert other["first_at"] == [f"dars_release/math/{path.name}:{n - 1}"]
    assert by["prompt_variant_id is not an integer >= -1 (-1 = the original)"]["rows"] == 1
    assert (
        imp.views["prompt_variation"]["source_rows"]
        == imp.views["prompt_variation"]["imported_rows"] + 2
    )
