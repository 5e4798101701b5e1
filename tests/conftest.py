import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class DvcRepo:
    """A real temporary DVC repo holding a copy of this project's pipeline and dvc.yaml."""

    def __init__(self, root: Path, params: dict) -> None:
        self.root = root
        shutil.copytree(
            REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
        for extra in ("dataset_card.md", "pyproject.toml"):  # read by the card stage
            if (REPO / extra).exists():
                shutil.copy(REPO / extra, root / extra)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        (root / ".gitignore").write_text(".dars/\n")
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(root / "pipeline"),
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        }
        self.git("init", "-q")
        self.dvc("init", "-q")
        self.dvc("config", "core.analytics", "false")

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return _run(["git", *args], self.root, self.env)

    def dvc(self, *args: str) -> subprocess.CompletedProcess:
        return _run([str(BIN / "dvc"), *args], self.root, self.env)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def dvc_repo_factory(tmp_path):
    def make(params: dict) -> DvcRepo:
        return DvcRepo(tmp_path / "repo", params)

    return make


def base_params() -> dict:
    """The repo's params.yaml, for tests to shrink."""
    return yaml.safe_load((REPO / "params.yaml").read_text())
