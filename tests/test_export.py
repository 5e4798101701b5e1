"""`dars export` (DARS release JSONL, LLMRouter JSONL) and the round trip export -> import:
the same labels, to the last bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dars.cli import main
from dars.importers.workspace import OBS_COLUMNS, Drops, Imported, write_workspace
from dars.stages import aggregate, validate
from tests.factories import DARS_MODELS, K, N, make_dars_release

#: the label columns compared exactly after a round trip
LABELS = [
    "n",
    "mean",
    "std",
    "var_within",
    "var_between",
    "alpha",
    "beta",
    "ci_low",
    "ci_high",
    "single_shot",
    "mean_cost",
    "cost_norm",
    "utility",
]
#: what the authors' router scripts read from each scored row (AIGNLAI/DARS methods/mlp.py)
AUTHORS_FIELDS = (
    "dataset",
    "split",
    "query_id",
    "model",
    "score",
    "cost",
    "prompt_variant_id",
    "decode_id",
    "observation_type",
    "original_question",
    "input_question",
    "context",
)


def finish_workspace(out: Path) -> None:
    """validate + aggregate, as `dars import` runs them."""
    data, params = out / "data", str(out / "params.yaml")
    validate.run(
        params_path=params,
        queries=str(data / "queries.parquet"),
        variants=str(data / "variants.parquet"),
        generations_dir=str(data / "generations"),
        outcomes_dir=str(data / "outcomes"),
        report=str(out / "reports" / "validation.json"),
        docs_dir=str(out / "reports" / "data_docs"),
    )
    aggregate.run(
        params_path=params,
        outcomes_dir=str(data / "outcomes"),
        queries=str(data / "queries.parquet"),
        validation_report=str(out / "reports" / "validation.json"),
        out=str(data / "labels.parquet"),
    )


def grid_workspace(root: Path, *, n_queries: int = 8, k: int = 3, n: int = 2) -> Path:
    """A build shaped as ours: every (query, model) has the full K x N grid (variant 0 =
    the original), no DARS columns, and one pair whose every generation failed."""
    rng = np.random.default_rng(3)
    rows = []
    for qi in range(n_queries):
        for mi, model in enumerate(("small", "large")):
            for v in range(k):
                for s in range(n):
                    failed = qi == 0 and model == "small"
                    rows.append(
                        {
                            "source_id": f"q{qi}",
                            "task": "arith" if qi % 2 else "code",
                            "query_prompt": f"What is {qi} + {qi}?",
                            "variant_id": v,
                            "variant_prompt": f"What is {qi} + {qi}?" if v == 0 else f"R{v}: {qi}",
                            "model": model,
                            "order": s,
                            "completion": None if failed else f"{2 * qi + s}",
                            "prompt_tokens": 10 + v + mi,
                            "completion_tokens": 3 + s,
                            "finish_reason": "stop",
                            "cost": 0.01 * (1 + mi) * (1 + 0.1 * s),
                            "score": None if failed else float(rng.random() < 0.4 + 0.3 * mi),
                        }
                    )
    obs = pd.DataFrame(rows, columns=OBS_COLUMNS)
    ids = sorted(obs["source_id"].unique())
    splits = pd.DataFrame(
        {
            "source_id": ids,
            "task": [obs.loc[obs["source_id"] == i, "task"].iloc[0] for i in ids],
            "split": ["test" if int(i[1:]) < 3 else ("validation" if i == "q3" else "train")
                      for i in ids],
        }
    )  # fmt: skip
    imp = Imported(source="grid", obs=obs, extra_columns=[], splits=splits, drops=Drops(), files=[])
    out = root / "grid"
    write_workspace(imp, out)
    # a posterior other than the import's default Jeffreys prior and 95% interval: the
    # export records it, so the round trip must keep it
    params = yaml.safe_load((out / "params.yaml").read_text())
    params["aggregate"].update(prior_alpha=1.0, prior_beta=1.0, ci=0.9)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    finish_workspace(out)
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    out = root / "ws"
    assert main(["import", "dars-release", str(make_dars_release(root)), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    return grid_workspace(tmp_path_factory.mktemp("grid"))


def export_release(ws: Path, out: Path) -> Path:
    args = ["export", "dars-release", str(out), "--data-dir", str(ws / "data")]
    assert main([*args, "--params", str(ws / "params.yaml")]) == 0
    return out


def labels_by_source(ws: Path) -> pd.DataFrame:
    """Labels indexed by (the id the export wrote, model): a re-import's queries keep the
    exported query_id as their source_id."""
    q = pd.read_parquet(ws / "data" / "queries.parquet")
    src = {i: json.loads(m)["source_id"] for i, m in zip(q["query_id"], q["metadata"], strict=True)}
    lab = pd.read_parquet(ws / "data" / "labels.parquet")
    lab["key"] = lab["query_id"].map(src)
    return lab.set_index(["key", "model"]).sort_index()


def read_rows(folder: Path) -> pd.DataFrame:
    return pd.DataFrame(
        [
            json.loads(line)
            for f in sorted(folder.glob("*/*_scored_generations.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()
        ]
    )


@pytest.mark.parametrize("which", ["imported", "grid"])
def test_export_then_import_gives_the_same_labels(which, request, tmp_path):
    ws = request.getfixturevalue(which)
    release = export_release(ws, tmp_path / "release")
    again = tmp_path / "again"
    assert main(["import", "dars-release", str(release), "--out", str(again)]) == 0
    before = pd.read_parquet(ws / "data" / "labels.parquet").set_index(["query_id", "model"])
    after = labels_by_source(again)
    assert len(after) == len(before)
    after = after.loc[before.index].rename_axis(before.index.names)
    pd.testing.assert_frame_equal(after[LABELS], before[LABELS], check_exact=True)

    # the outcomes keep their variant and sample ids and their per-row view
    def outcomes(w: Path) -> pd.DataFrame:
        return pd.concat(pd.read_parquet(p) for p in sorted((w / "data" / "outcomes").glob("*")))

    a, b = outcomes(ws), outcomes(again)
    assert len(a) == len(b)
    assert (a["score"].isna().sum(), a["status"].eq("error").sum()) == (
        b["score"].isna().sum(),
        b["status"].eq("error").sum(),
    )
    key = ["model", "variant_id", "sample_id"]
    assert a.groupby(key).size().equals(b.groupby(key).size())
    if which == "imported":
        for col in ("observation_type", "parse_success", "predicted_answer", "gold_answer"):
            counts = [x[col].astype(str).value_counts().sort_index() for x in (a, b)]
            assert counts[0].equals(counts[1]), col
        ra = json.loads((ws / "reports" / "import.json").read_text())["views"]
        rb = json.loads((again / "reports" / "import.json").read_text())["views"]
        assert ra == rb


def test_the_export_has_what_the_authors_scripts_read(grid, tmp_path):
    release = export_release(grid, tmp_path / "release")
    assert sorted(p.name for p in release.iterdir()) == ["arith", "code", "metadata.json"]
    rows = read_rows(release)
    for f in AUTHORS_FIELDS:
        assert f in rows.columns, f
    assert set(rows["split"]) == {"train", "test"}  # our validation query goes to train
    assert set(rows.loc[rows["dars_split"] == "validation", "split"]) == {"train"}
    # their test views: prompt_variation = rewrites (id >= 0), decoding_variation = -1
    test = rows[rows["split"] == "test"]
    assert set(test["observation_type"]) == {"prompt_variation", "decoding_variation"}
    dec = test[test["observation_type"] == "decoding_variation"]
    assert set(dec["prompt_variant_id"]) == {-1}
    assert (
        test.loc[test["observation_type"] == "prompt_variation", "prompt_variant_id"] >= 0
    ).all()
    assert rows.loc[rows["split"] == "train", "observation_type"].isna().all()
    # failed generations: score null and status error (their loader drops them)
    failed = rows[rows["score"].isna()]
    assert len(failed) == 3 * 2 and set(failed["status"]) == {"error"}
    # their per-pair mean over rows with a score is our label mean
    lab = pd.read_parquet(grid / "data" / "labels.parquet").set_index(["query_id", "model"])
    mean = rows.dropna(subset=["score"]).groupby(["query_id", "model"])["score"].mean()
    assert np.array_equal(mean.to_numpy(), lab.loc[mean.index, "mean"].to_numpy())
    meta = json.loads((release / "arith" / "metadata.json").read_text())
    assert meta["num_prompt_variants"] == 2 and meta["num_decodes"] == 2
    assert meta["models"] == ["large", "small"]
    assert sum(meta["test_views"].values()) == meta["rows"]["test"]
    top = json.loads((release / "metadata.json").read_text())
    assert top["lambda_cost"] == 0.05 and top["beta_risk"] == 0.2


def test_llmrouter_rows_are_one_per_query_and_model(grid, tmp_path):
    out = tmp_path / "llmr"
    args = ["export", "llmrouter", str(out), "--data-dir", str(grid / "data")]
    assert main([*args, "--params", str(grid / "params.yaml")]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "llm_data.json",
        "query_data_test.jsonl",
        "query_data_train.jsonl",
        "query_data_validation.jsonl",
        "routing_data_test.jsonl",
        "routing_data_train.jsonl",
        "routing_data_validation.jsonl",
    ]
    rows = pd.DataFrame(
        [json.loads(x) for f in sorted(out.glob("routing_data_*.jsonl")) for x in open(f)]
    )
    lab = pd.read_parquet(grid / "data" / "labels.parquet")
    assert len(rows) == len(lab) and not rows.duplicated(["task_id", "model_name"]).any()
    got = rows.set_index(["task_id", "model_name"]).sort_index()
    want = lab.set_index(["query_id", "model"]).sort_index()
    ok = want["mean"].notna()
    assert np.array_equal(got.loc[ok, "performance"].to_numpy(), want.loc[ok, "mean"].to_numpy())
    assert got.loc[~ok, "performance"].isna().all() and (~ok).sum() == 1  # the failed pair
    assert np.array_equal(got["cost"].to_numpy(), want["mean_cost"].to_numpy(), equal_nan=True)
    assert (got["performance_n"] == want["n"]).all()
    # tokens: the rounded mean over the pair's valid generations (prompt 10 + v + mi)
    large = got.xs("large", level="model_name")
    assert set(large["input_tokens"]) == {12} and set(large["output_tokens"]) == {4}
    assert (large["token_num"] == 16).all()
    # one embedding_id per query, the same across models and splits
    assert rows.groupby("task_id")["embedding_id"].nunique().eq(1).all()
    assert rows["embedding_id"].nunique() == rows["task_id"].nunique()
    for field in ("task_name", "query", "ground_truth", "metric", "response", "input_tokens"):
        assert field in rows.columns
    llm = json.loads((out / "llm_data.json").read_text())
    assert sorted(llm) == ["large", "small"]


def test_export_of_a_folder_without_a_build_is_one_line(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    args = ["export", "dars-release", str(tmp_path / "o"), "--data-dir", str(tmp_path / "data")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queries" in err and "does not exist" in err
    assert not (tmp_path / "o").exists()


def test_a_failed_export_leaves_no_half_written_file(grid, tmp_path, monkeypatch):
    from dars.exporters import dars_release as X

    calls = {"n": 0}
    real = X.release_row

    def boom(b, cols, i):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full")
        return real(b, cols, i)

    monkeypatch.setattr(X, "release_row", boom)
    out = tmp_path / "o"
    assert main(["export", "dars-release", str(out), "--data-dir", str(grid / "data")]) == 1
    assert not list(out.rglob("*.jsonl")) and not list(out.rglob("*.tmp"))


def test_import_fixture_models_survive_export(imported, tmp_path):
    rows = read_rows(export_release(imported, tmp_path / "r"))
    assert set(rows["model"]) == set(DARS_MODELS)
    test = rows[rows["split"] == "test"]
    per_pair = test.groupby(["query_id", "model", "observation_type"]).size().unstack()
    assert set(per_pair["prompt_variation"]) == {K} and set(per_pair["decoding_variation"]) == {N}
    assert set(test.loc[test["observation_type"] == "decoding_variation", "prompt_variant_id"]) == {
        -1
    }
