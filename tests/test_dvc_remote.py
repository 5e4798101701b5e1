"""Versioning with DVC: `dvc push` to a local remote, then a second `git clone` plus
`dvc pull` gets byte-identical artifacts, and nothing is recomputed."""

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.factories import Built, run_ok

pytestmark = [pytest.mark.dvc]


def lock_outputs(root: Path) -> list[str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return sorted({o["path"] for st in lock["stages"].values() for o in st.get("outs") or []})


def digests(root: Path, rel: str) -> dict[str, str]:
    path = root / rel
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def test_push_then_pull_in_a_second_clone_gets_identical_artifacts(sim_built, tmp_path):
    repo = sim_built.copy(tmp_path / "repo")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "build")
    remote = tmp_path / "dvc-remote"
    repo.dvc("remote", "add", "-d", "local", str(remote))
    repo.git("commit", "-qam", "add the local DVC remote")
    pushed = repo.dvc("push").stdout
    assert "pushed" in pushed and any(p.is_file() for p in remote.rglob("*")), pushed

    outs = lock_outputs(repo.root)
    assert {"data/labels.parquet", "data/splits.parquet", "publish"} <= set(outs)
    clone = tmp_path / "clone"
    run_ok(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, repo.env)
    second = Built(clone)
    assert not (clone / "data" / "labels.parquet").exists()  # git holds no data
    assert not (clone / "publish").exists()

    second.dvc("pull")
    for rel in outs:
        theirs = digests(clone, rel)
        assert theirs and theirs == digests(repo.root, rel), rel
    status = second.dvc("status").stdout
    assert "up to date" in status, status
    ran = second.dvc("repro").stdout
    assert "Running stage" not in ran, ran  # nothing is recomputed
