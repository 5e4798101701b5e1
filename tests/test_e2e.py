"""End to end: `dvc repro` in a real temporary DVC repo, on the real llama.cpp model and
on the simulated backend, checking the contract and the invariants of every output."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dars.core import schema
from tests.factories import Built

pytestmark = [pytest.mark.dvc]

STAGES = ["prepare", "reformulate", "sample", "grade", "validate", "aggregate", "split"]


def check_contract(root, models: list[str], n: int, k: int) -> dict[str, pd.DataFrame]:
    d = root / "data"
    q = pd.read_parquet(d / "queries.parquet")
    v = pd.read_parquet(d / "variants.parquet")
    lab = pd.read_parquet(d / "labels.parquet")
    spl = pd.read_parquet(d / "splits.parquet")
    for df, sch in (
        (q, schema.QUERIES),
        (v, schema.VARIANTS),
        (lab, schema.LABELS),
        (spl, schema.SPLIT),
    ):
        assert set(schema.names(sch)) <= set(df.columns)
    assert q["query_id"].is_unique and set(q["grader"]) <= set(schema.GRADERS)
    assert (v.groupby("query_id")["variant_id"].apply(sorted) == [list(range(k))] * len(q)).all()
    outs = []
    for m in models:
        g = pd.read_parquet(d / "generations" / f"{m}.parquet")
        o = pd.read_parquet(d / "outcomes" / f"{m}.parquet")
        assert set(schema.names(schema.GENERATIONS)) <= set(g.columns)
        assert set(schema.names(schema.OUTCOMES)) <= set(o.columns)
        assert len(g) == len(q) * k * n and not g.duplicated(schema.KEYS["generations"]).any()
        assert (g["completion"].notna() | (g["status"] == "error")).all()
        assert ((o["score"].isna()) == (o["status"] == "error")).all()
        assert o["score"].dropna().between(0, 1).all()
        assert set(o["grade_status"]) <= set(schema.GRADE_STATUSES)
        outs.append(o)
    o = pd.concat(outs)
    assert len(lab) == len(q) * len(models) and not lab.duplicated(["query_id", "model"]).any()
    ok = lab["n"] > 0
    assert np.allclose(
        lab.loc[ok, "var_within"] + lab.loc[ok, "var_between"], lab.loc[ok, "std"] ** 2
    )
    first = o[(o["variant_id"] == 0) & (o["sample_id"] == 0)].set_index(["query_id", "model"])
    merged = lab.set_index(["query_id", "model"]).join(first["score"])
    assert np.allclose(merged["single_shot"], merged["score"], equal_nan=True)
    means = o.groupby(["query_id", "model"])["score"].mean()
    assert np.allclose(merged["mean"], means.reindex(merged.index), equal_nan=True)
    assert spl["query_id"].is_unique and set(spl["query_id"]) == set(q["query_id"])
    assert set(spl["split"]) <= set(schema.SPLITS)
    report = json.loads((root / "reports" / "validation.json").read_text())
    assert report["success"] is True
    return {"queries": q, "labels": lab, "outcomes": o}


@pytest.mark.slow
@pytest.mark.model
def test_dvc_repro_real_llama_cpp(real_built: Built, tmp_path):
    """The shared real build (`factories.tiny_real_params()`, built once per run by
    conftest's `real_built`), then a copy of it with one model configuration added."""
    repo = real_built
    models = ["gemma-fewshot", "gemma-oneshot"]
    out = check_contract(repo.root, models, n=2, k=2)
    gens = pd.concat(
        pd.read_parquet(repo.root / "data" / "generations" / f"{m}.parquet") for m in models
    )
    assert set(gens["backend"]) == {"llama_cpp"}
    assert (gens["completion_tokens"] > 0).any() and "latency_s" not in gens.columns
    for m in models:  # wall-clock latency goes to the run log, not the tracked table
        log = json.loads((repo.root / ".dars" / "runs" / "sample" / f"{m}.json").read_text())
        assert log["latency"]["rows"] == len(gens[gens["model"] == m])
        assert log["latency"]["mean_s"] > 0
    assert set(gens["finish_reason"]) <= {"stop", "length"}
    assert out["labels"]["backend"].eq("llama_cpp").all()
    # few-shot prompts are longer, so that configuration costs more per query
    lab = out["labels"].groupby("model")["mean_cost"].mean()
    assert lab["gemma-fewshot"] > lab["gemma-oneshot"]

    # nothing to do right after, bytecode caches beside the stage code included
    repo = real_built.copy(tmp_path / "repo")
    (repo.root / "pipeline" / "dars" / "tasks" / "__pycache__").mkdir(exist_ok=True)
    (repo.root / "pipeline" / "dars" / "tasks" / "__pycache__" / "x.cpython-311.pyc").touch()
    status = repo.dvc("status").stdout
    assert "changed" not in status and "modified" not in status, status

    # add a model configuration: only its sample+grade and the downstream stages run
    p = repo.params()
    p["models"]["gemma-greedy"] = {**p["models"]["gemma-oneshot"], "temperature": 0.0}
    repo.write_params(p)
    r = repo.dvc("repro")
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {
        "sample@gemma-greedy",
        "grade@gemma-greedy",
        "validate",
        "aggregate",
        "summary",
        "train",
        "evaluate",
        "card",
    }, r.stdout
    check_contract(repo.root, [*models, "gemma-greedy"], n=2, k=2)


@pytest.mark.slow
def test_dvc_repro_simulated_labels_recover_truth(sim_full_built):
    """80 arithmetic queries x K=3 x N=8 on two simulated models (factories.full_sim_params,
    built once per run by conftest's `sim_full_built`)."""
    repo, p = sim_full_built, sim_full_built.params()
    out = check_contract(repo.root, list(p["models"]), n=8, k=3)
    lab = out["labels"]
    assert lab["backend"].eq("simulated").all()
    # true_p is the mean true p over the drawn variants: the fixed-variant interval's
    # estimand (nominal 95%); the rewrite-population interval is wider still
    for lo, hi in (("ci_low_fixed", "ci_high_fixed"), ("ci_low", "ci_high")):
        covered = (lab[lo] <= lab["true_p"]) & (lab["true_p"] <= lab[hi])
        assert 0.88 <= covered.mean() <= 1.0, (lo, covered.mean())
    assert ((lab["ci_low"] <= lab["mean"]) & (lab["mean"] <= lab["ci_high"])).all()
    assert np.corrcoef(lab["mean"], lab["true_p"])[0, 1] > 0.85
    means = lab.groupby("model")["mean"].mean()
    assert means["sim-strong"] > means["sim-weak"]
    summary = subprocess.run(
        [
            sys.executable,
            "-m",
            "dars",
            "summary",
            "--labels",
            str(repo.root / "data" / "labels.parquet"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(SIMULATED)" in summary and "sim-strong" in summary
