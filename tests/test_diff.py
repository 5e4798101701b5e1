"""`dars diff`: the label test and its FDR control on simulated versions with known truth,
a git-revision diff through DVC with a local remote, the card's "Changes since" section,
and one clear line for every bad input."""

import hashlib
import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dars import cli
from dars.core import schema
from dars.versioning import compare, report
from dars.versioning.simulate import simulated_truth, simulated_version
from tests.factories import REPO, DvcRepo, base_params, metrics_json, outcome_rows

ABILITIES = {"m-a": 1.0, "m-b": 0.0, "m-c": -1.0}
Q = 0.05


@pytest.fixture(scope="module")
def truth():
    return simulated_truth(n_queries=150, abilities=ABILITIES, k=4)


# ---------------------------------------------------------------------------- writers


def write_publish(folder: Path, version, *, contract: str = schema.CONTRACT_VERSION) -> Path:
    """A publish layout (the parts `dars diff` reads) for a simulated version."""
    split = version.splits.set_index("query_id")["split"]
    tables = {
        "queries": version.queries,
        "labels": version.labels,
        "outcomes": outcome_rows(version),
    }
    for config, df in tables.items():
        for name in schema.SPLITS:
            path = folder / config / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            df[df["query_id"].map(split) == name].to_parquet(path, index=False)
    (folder / "routers").mkdir(exist_ok=True)
    (folder / "routers" / "metrics.json").write_text(json.dumps(metrics_json(0.5)))
    manifest = {
        "dataset_version": version.dataset_version,
        "contract_version": contract,
        "package_version": "0.1.0",
        "params_yaml": yaml.safe_dump({"sample": {"seed": version.spec}}),
    }
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    return folder


# ---------------------------------------------------------------------------- statistics


def test_score_test_variance_is_the_exact_permutation_variance():
    rng = np.random.default_rng(0)
    for n1, n2 in [(3, 4), (5, 2), (4, 4)]:
        a, b = rng.random(n1).round(1), rng.random(n2).round(1)
        pooled = np.concatenate([a, b])
        diffs = [
            pooled[list(c)].mean() - np.delete(pooled, list(c)).mean()
            for c in itertools.combinations(range(n1 + n2), n2)
        ]
        t, p = compare.score_test(n1, a.sum(), (a**2).sum(), n2, b.sum(), (b**2).sum())
        d = b.mean() - a.mean()
        assert t == pytest.approx(d / np.std(diffs))  # studentised by the permutation sd
        assert 0 < p < 1


def test_score_test_edge_cases():
    t, p = compare.score_test(
        [6, 6, 0, 1, 40], [6, 0, 0, 1, 0], [6, 0, 0, 1, 0], [6, 6, 5, 1, 40], [6, 6, 2, 0, 40],
        [6, 6, 2, 0, 40],
    )  # fmt: skip
    assert p[0] == 1.0 and t[0] == 0.0  # all scores equal: no evidence
    assert p[1] < 0.01  # 0/6 -> 6/6
    assert np.isnan(p[2]) and np.isnan(p[3])  # n = 0 on a side; n1 + n2 < 3
    assert p[4] < 1e-10


def test_beta_test_uses_the_posterior_pseudo_counts():
    # Jeffreys posteriors of 0/10 and 5/10: pseudo-counts 0.5/11 and 5.5/11
    t, p = compare.beta_test(np.array([0.5]), np.array([10.5]), np.array([5.5]), np.array([5.5]))
    want = compare.score_test(11.0, 0.5, 0.5, 11.0, 5.5, 5.5)
    assert (t[0], p[0]) == pytest.approx((float(want[0]), float(want[1])))
    assert 0.005 < p[0] < 0.05  # between the raw pooled test (0/10 vs 5/10) and Fisher's
    t, p = compare.beta_test(np.array([2.0]), np.array([3.0]), np.array([2.0]), np.array([3.0]))
    assert t[0] == 0.0 and p[0] == pytest.approx(1.0)
    assert np.isnan(
        compare.beta_test(np.array([np.nan]), np.array([1.0]), np.array([1.0]), np.array([1.0]))[1][
            0
        ]
    )


# ---------------------------------------------------------------------------- simulator


def test_same_truth_new_seed_flags_at_most_the_nominal_share(truth):
    for seed in (1, 3):
        old = simulated_version(truth, n=5, seed=seed)
        new = simulated_version(truth, n=5, seed=seed + 1)
        lab = compare.diff_versions(old, new, fdr=Q)["labels"]
        assert lab["tested"] > 0.8 * lab["pairs"]
        assert lab["changed"] <= Q * lab["tested"], lab["changed"]
        # the same through the Beta posteriors (labels only, no outcomes)
        old.scores = new.scores = None
        lab = compare.diff_versions(old, new, fdr=Q)["labels"]
        assert set(lab["methods"]) <= {"beta", "untestable"}
        assert lab["changed"] <= Q * lab["tested"], lab["changed"]


@pytest.mark.parametrize("labels_only", [False, True])
def test_shifted_model_is_flagged_and_no_other(truth, labels_only):
    old = simulated_version(truth, n=5, seed=11)
    new = simulated_version(truth, n=5, seed=12, shift={"m-b": 2.5})
    if labels_only:
        old.scores = new.scores = None
    diff = compare.diff_versions(old, new, fdr=Q)
    pairs = compare.label_changes(old, new, fdr=Q)
    flagged = pairs.loc[pairs["changed"], "model"]
    # with these seeds no other model's pair is flagged; in general BH allows q of the
    # flags to be false (measured: benchmarks/results/diff_fdr.json)
    assert set(flagged) == {"m-b"}
    assert (flagged != "m-b").sum() <= Q * len(flagged)
    by_model = diff["labels"]["by_model"]
    assert by_model["m-b"]["share"] > 0.25  # measured power: benchmarks/diff_fdr.py
    assert by_model["m-a"]["share"] <= Q and by_model["m-c"]["share"] <= Q
    assert all(r["delta"] > 0 for r in by_model["m-b"]["largest"])
    # decisions: the shifted model now wins more queries; changes name it
    dec = diff["decisions"]
    assert dec["changed"] > 0 and dec["significant"] > 0
    assert all("m-b" in k for k in dec["transitions"])


def test_shape_and_split_moves_are_reported(truth):
    old = simulated_version(truth, n=5, seed=1)
    new = simulated_version(truth, n=5, seed=2)
    new.queries = new.queries.iloc[3:]
    new.labels = new.labels[new.labels["query_id"].isin(new.queries["query_id"])]
    new.labels = new.labels[new.labels["model"] != "m-c"]
    new.splits = new.splits.iloc[3:].copy()
    new.splits.loc[new.splits.index[:4], "split"] = "test"
    diff = compare.diff_versions(old, new)
    assert diff["shape"]["queries"]["removed"] == 3
    assert diff["shape"]["models"]["removed_examples"] == ["m-c"]
    moved = diff["splits"]
    assert moved["moved"] == sum(new.splits["split"].iloc[:4] != old.splits["split"].iloc[3:7])
    assert moved["moved"] > 0 and "not comparable" in moved["warning"]
    md = report.render_markdown(report.json_safe(diff))
    assert "WARNING" in md.splitlines()[2] and "## Labels" in md


# ---------------------------------------------------------------------------- folders / CLI


def test_diff_of_two_publish_folders_through_the_cli(truth, tmp_path, capsys):
    a = write_publish(tmp_path / "a", simulated_version(truth, n=5, seed=1, name="0.1.0"))
    b = write_publish(
        tmp_path / "b", simulated_version(truth, n=5, seed=2, shift={"m-a": -3.0}, name="0.2.0")
    )
    rc = cli.main(
        [
            "diff",
            str(a),
            str(b),
            "--out",
            str(tmp_path / "d.json"),
            "--markdown",
            str(tmp_path / "d.md"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    diff = json.loads((tmp_path / "d.json").read_text())
    assert diff["old"]["kind"] == "folder" and diff["new"]["name"].startswith("0.2.0")
    assert (
        diff["labels"]["methods"] == {"scores": diff["labels"]["tested"]}
        or "untestable" in diff["labels"]["methods"]
    )
    assert diff["labels"]["by_model"]["m-a"]["changed"] > 0
    by_model = diff["labels"]["by_model"]
    assert by_model["m-b"]["changed"] + by_model["m-c"]["changed"] <= Q * diff["labels"]["changed"]
    assert diff["shape"]["params"]["changed"]["sample.seed"]["new"].endswith("seed2")
    assert (
        diff["old"]["manifest_sha256"]
        == hashlib.sha256((a / "MANIFEST.json").read_bytes()).hexdigest()
    )
    assert diff["routers"]["systems"]["routers/knn/dars"]["utility"]["delta"] == 0.0
    md = (tmp_path / "d.md").read_text()
    assert md.startswith("# Changes from 0.1.0") and "## Decisions" in md
    assert "labels changed" in capsys.readouterr().out


def _one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("dars diff: error: "), err
    return err


def test_bad_inputs_fail_in_one_clear_line(truth, tmp_path, capsys, monkeypatch):
    good = write_publish(tmp_path / "good", simulated_version(truth, n=5, seed=1))
    # not a publish layout
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    err = _one_line_error(capsys, ["diff", str(tmp_path / "plain"), str(good)])
    assert "not a publish layout" in err and "MANIFEST.json" in err
    # different contract versions
    other = write_publish(tmp_path / "v2", simulated_version(truth, n=5, seed=2), contract="2")
    err = _one_line_error(capsys, ["diff", str(good), str(other)])
    assert "contract v1" in err and "v2" in err
    # unknown git revision (this repository), and no git repository at all
    err = _one_line_error(capsys, ["diff", "no-such-rev-xyz", str(good), "--repo", str(REPO)])
    assert "'no-such-rev-xyz'" in err and "unknown revision" in err
    err = _one_line_error(capsys, ["diff", "HEAD", str(good), "--repo", str(tmp_path)])
    assert "not inside a git repository" in err
    # a Hub id without network: names the id and the network error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    err = _one_line_error(capsys, ["diff", "dars-project/no-such-dataset@v0.1.0", str(good)])
    assert "'dars-project/no-such-dataset'" in err and "'v0.1.0'" in err
    # a bad --fdr
    err = _one_line_error(capsys, ["diff", str(good), str(good), "--fdr", "1.5"])
    assert "--fdr" in err


# ---------------------------------------------------------------------------- git + DVC

MAKE_BUILD = """
import sys, yaml
sys.path.insert(0, {repo!r})
from pathlib import Path
from dars.versioning.simulate import simulated_truth, simulated_version
from tests.factories import write_build
p = yaml.safe_load(open("params.yaml"))
truth = simulated_truth(n_queries=30, abilities=p["models"], k=2)
write_build(Path("."), simulated_version(truth, n=10, seed=p["sample"]["seed"],
            shift=p.get("shift") or {{}}, name=p["dataset_version"]))
"""


@pytest.mark.dvc
def test_git_revision_diff_reads_through_dvc_from_a_local_remote(tmp_path, capsys):
    params = {"dataset_version": "0.1.0", "sample": {"seed": 1}, "shift": {}}
    repo = DvcRepo(tmp_path / "repo", {**params, "models": {"m-a": 1.0, "m-b": 0.0}})
    (repo.root / "make_build.py").write_text(MAKE_BUILD.format(repo=str(REPO)))
    outs = ["data/queries.parquet", "data/labels.parquet", "data/splits.parquet", "data/outcomes"]
    stage = {
        "cmd": f"{sys.executable} make_build.py",
        "deps": ["make_build.py"],
        "params": ["dataset_version", "sample", "models", "shift"],
        "outs": outs,
        "metrics": [{"metrics/routers.json": {"cache": False}}],
    }
    (repo.root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"build": stage}}))
    remote = tmp_path / "remote"
    repo.dvc("remote", "add", "-d", "local", str(remote))
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "0.1.0")
    repo.git("tag", "v0.1.0")
    repo.dvc("push")
    repo.write_params({**repo.params(), "dataset_version": "0.2.0", "sample": {"seed": 2},
                       "shift": {"m-b": 4.0}})  # fmt: skip
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "0.2.0")
    repo.dvc("push")
    shutil.rmtree(repo.root / ".dvc" / "cache")  # the data must come from the remote
    shutil.rmtree(repo.root / "data")

    rc = cli.main(
        ["diff", "v0.1.0", "HEAD", "--repo", str(repo.root), "--out", str(tmp_path / "d.json")]
    )
    assert rc == 0, capsys.readouterr().err
    diff = json.loads((tmp_path / "d.json").read_text())
    assert diff["old"]["kind"] == diff["new"]["kind"] == "git"
    assert diff["old"]["name"] == "0.1.0 (git v0.1.0)"
    params = diff["shape"]["params"]
    assert params["source"] == "dvc params diff"
    assert params["changed"]["sample.seed"] == {"old": 1, "new": 2}
    assert params["changed"]["dataset_version"] == {"old": "0.1.0", "new": "0.2.0"}
    assert diff["shape"]["contract_version"] == {"old": "1", "new": "1"}
    assert diff["shape"]["generators"]["new"]["models"]["m-a"]["backend"] == ["simulated"]
    by_model = diff["labels"]["by_model"]
    assert by_model["m-b"]["changed"] > 0 and by_model["m-a"]["changed"] == 0
    assert diff["splits"]["moved"] == 0
    # data at a revision that was never pushed: one line naming the path
    repo.write_params({**repo.params(), "sample": {"seed": 3}})
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "not pushed")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    err = _one_line_error(capsys, ["diff", "v0.1.0", "HEAD", "--repo", str(repo.root)])
    assert "'HEAD'" in err and "data/" in err and "dvc push" in err


# ---------------------------------------------------------------------------- card


def test_card_changes_section_and_previous_manifest_hash(truth, tmp_path):
    prev = write_publish(tmp_path / "prev", simulated_version(truth, n=5, seed=1, name="0.1.0"))
    cur = simulated_version(truth, n=5, seed=2, shift={"m-c": 2.0}, name="0.2.0")
    import pyarrow as pa

    out = report.card_changes(
        params={
            "dataset_version": "0.2.0",
            "card": {**base_params()["card"], "previous": str(prev)},
        },
        queries=pa.Table.from_pandas(cur.queries),
        labels=pa.Table.from_pandas(cur.labels),
        outcomes=pa.Table.from_pandas(outcome_rows(cur)),
        splits=dict(zip(cur.splits["query_id"], cur.splits["split"], strict=True)),
        router_metrics=metrics_json(0.6),
        contract_version=schema.CONTRACT_VERSION,
        package_version="0.1.0",
    )
    text, record = out
    assert text.startswith("## Changes since 0.1.0\n")
    assert "### Labels" in text and "m-c" in text
    assert (
        record["manifest_sha256"]
        == hashlib.sha256((prev / "MANIFEST.json").read_bytes()).hexdigest()
    )
    assert record["labels_changed"] > 0
    assert report.card_changes(
        params={"card": base_params()["card"]}, queries=None, labels=None, outcomes=None, splits={},
        router_metrics=None, contract_version="1", package_version="0",
    ) is None  # fmt: skip


@pytest.mark.slow
def test_card_stage_renders_changes_since_the_previous_publish(sim_built, tmp_path):
    built = sim_built.copy(tmp_path / "repo")
    previous = tmp_path / "v0.1.0"
    shutil.copytree(built.root / "publish", previous)
    params = built.params()
    params["dataset_version"] = "0.1.1"
    params["card"]["previous"] = str(previous)
    built.write_params(params)
    ran = built.dvc("repro").stdout
    assert "Running stage 'card'" in ran and "Running stage 'sample" not in ran
    readme = (built.root / "publish" / "README.md").read_text()
    assert "## Changes since 0.1.0" in readme and "0 changed beyond sampling noise" in readme
    manifest = json.loads((built.root / "publish" / "MANIFEST.json").read_text())
    want = hashlib.sha256((previous / "MANIFEST.json").read_bytes()).hexdigest()
    assert manifest["previous"]["manifest_sha256"] == want
    assert manifest["previous"]["dataset_version"] == "0.1.0"
