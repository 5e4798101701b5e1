"""The documentation: a short README, a mkdocs site that builds with --strict, generated
pages that are current, and numbers that match the committed result files."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dars import docgen

REPO = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_links_the_docs() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for command in ("make repro", "make test", "dvc repro", "load_dataset", "dars bench"):
        assert command in text, command
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).exists(), link


@pytest.mark.parametrize("page", sorted(docgen.PAGES))
def test_generated_pages_are_current(page: str) -> None:
    assert (REPO / page).read_text(encoding="utf-8") == docgen.PAGES[page](), (
        f"{page} is stale: run `PYTHONPATH=pipeline python -m dars.docgen`"
    )


@pytest.mark.docs
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (site / "index.html").exists() and (site / "params" / "index.html").exists()


def test_model_table_matches_params_yaml() -> None:
    models = yaml.safe_load((REPO / "params.yaml").read_text())["models"]
    text = (REPO / "docs" / "stages.md").read_text(encoding="utf-8")
    rows = {r.split("|")[1].strip(): r for r in text.splitlines() if r.startswith("| gemma")}
    assert set(rows) == set(models)
    for name, cfg in models.items():
        cells = [c.strip() for c in rows[name].split("|")[1:-1]]
        assert cells[2:] == [str(cfg["temperature"]), str(cfg["top_p"]), str(cfg["max_tokens"])]


def test_router_table_is_the_committed_one() -> None:
    """The sample router table in the docs is copied from metrics/routers.md."""
    committed = (REPO / "metrics" / "routers.md").read_text(encoding="utf-8")
    text = (REPO / "docs" / "routers.md").read_text(encoding="utf-8")
    rows = [r for r in text.splitlines() if re.match(r"\| (random|best-single|knn|ridge) \|", r)]
    assert rows
    for r in rows:
        assert r in committed, r


def test_stage_count_in_the_docs() -> None:
    n = len(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert f"{n} stages" in (REPO / "README.md").read_text(encoding="utf-8")
    assert f"{n} stages" in (REPO / "docs" / "stages.md").read_text(encoding="utf-8")
