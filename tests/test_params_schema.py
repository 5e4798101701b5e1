"""One params schema (dars.core.params): unknown keys fail with "Did you mean",
`dars check-params` reports every error at once, docs/params.md is generated from it."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dars.core import params as P
from dars.core.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_have_no_errors() -> None:
    assert P.errors(repo_params()) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("models.gemma-fewshot.temprature", -0.5,
         "Parameter 'models.gemma-fewshot.temprature' is not known. "
         "Did you mean 'models.gemma-fewshot.temperature'?"),
        ("sample.temperature", -0.5, "Parameter 'sample.temperature' is not known."),
        ("sample.sead", 1, "Did you mean 'sample.seed'?"),
        ("aggregate.lamda_cost", 0.1, "Did you mean 'aggregate.lambda_cost'?"),
        ("reformulate.llm.checks.min_similarty", 0.5,
         "Did you mean 'reformulate.llm.checks.min_similarity'?"),
        ("sampel", {"n": 3}, "Parameter 'sampel' is not known. Did you mean 'sample'?"),
        ("split.fractions", {"train": 1.0}, "must map exactly"),
        ("card.repo_id", "no-slash", "'card.repo_id' = 'no-slash' must be of the form 'ORG/NAME'"),
        ("evaluate.lambda_grid", [0.1], "must be a list of >= 2 numbers"),
        ("sampling.max_per_pair", 2, "'sampling.max_per_pair' = 2 is out of range; allowed: >= 3"),
    ],
)  # fmt: skip
def test_unknown_and_bad_keys_fail_naming_the_key(path: str, value, message: str) -> None:
    raw = repo_params()
    node = raw
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    errors = P.errors(raw)
    assert any(message in e for e in errors), errors
    with pytest.raises(ParamsError, match="is not known|must|out of range"):
        P.check_all(raw)


def test_a_stage_reader_rejects_an_unknown_model_key() -> None:
    raw = repo_params()
    raw["models"]["gemma-oneshot"]["temprature"] = -0.5
    with pytest.raises(ParamsError, match="Did you mean 'models.gemma-oneshot.temperature'"):
        P.model_config(raw, "gemma-fewshot")  # any model's bad key fails every sample stage


def test_every_error_of_every_section_is_reported() -> None:
    raw = repo_params()
    raw["models"]["gemma-fewshot"]["temprature"] = -0.5
    raw["sample"]["temperature"] = -0.5
    raw["grade"]["workers"] = 0
    raw["grade"]["memory_mb"] = 1.5
    raw["evaluate"]["ci"] = 2
    raw["routers"]["seed"] = -1
    errors = P.errors(raw)
    assert len(errors) == 6, errors
    keys = ["models.gemma-fewshot.temprature", "sample.temperature", "grade.workers",
            "grade.memory_mb", "evaluate.ci", "routers.seed"]  # fmt: skip
    for key in keys:
        assert sum(f"'{key}'" in e for e in errors) == 1, (key, errors)


def test_check_params_lists_all_errors_without_traceback(tmp_path: Path) -> None:
    raw = repo_params()
    raw["models"]["gemma-fewshot"]["temprature"] = -0.5
    raw["sample"]["temperature"] = -0.5
    raw["split"] = {"seed": -1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    r = subprocess.run(
        [sys.executable, "-m", "dars", "check-params", "--params", "params.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "Did you mean 'models.gemma-fewshot.temperature'?" in r.stderr
    assert "Parameter 'sample.temperature' is not known" in r.stderr
    assert "Parameter 'split.seed' = -1 is out of range" in r.stderr
    assert "3 error(s)" in r.stderr


def test_check_params_checks_registry_names(tmp_path: Path) -> None:
    raw = repo_params()
    raw["routers"]["names"] = ["ridge", "rigde"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    r = subprocess.run(
        [sys.executable, "-m", "dars", "check-params", "--params", "params.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert "routers.names" in r.stderr and "Did you mean 'ridge'" in r.stderr


def test_missing_sections_take_the_declared_defaults() -> None:
    assert P.section({}, "grade") == P.GradeParams()
    assert P.section({"sampling": None}, "sampling").strategy == "uniform"
    with pytest.raises(ParamsError, match="'sample.n' are missing"):
        P.section({}, "sample")


def test_model_values_are_kept_as_written() -> None:
    """No conversion: an integer temperature stays an integer, so the generation
    fingerprints (and the shard keys built from them) are unchanged."""
    raw = {"models": {"m": {"backend": "simulated", "temperature": 1, "stop": "\n"}}}
    config = P.model_config(raw, "m")
    assert config.temperature == 1 and isinstance(config.temperature, int)
    assert config.stop == ("\n",)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: P.ModelConfig(backend="simulated", name="m", temperature=-1),
         "Parameter 'models.m.temperature' = -1 is out of range; allowed: >= 0.0"),
        (lambda: P.ModelConfig(backend="vllm", name="m"),
         "Parameters 'models.m.model_path' = 'auto' and 'models.m.revision' = 'unknown': "
         "the vllm backend needs"),
        (lambda: P.LlamaCppConfig(backend="llama_cpp", name="m", n_ctxx=64),
         "Parameter 'models.m.n_ctxx' is not known. Did you mean 'models.m.n_ctx'?"),
        (lambda: dataclasses.replace(P.ModelConfig(backend="simulated", name="m"), top_p=2),
         "Parameter 'models.m.top_p' = 2 is out of range; allowed: > 0.0 and <= 1.0"),
    ],
)  # fmt: skip
def test_a_model_config_built_in_code_fails_in_one_line_naming_the_key(build, message) -> None:
    with pytest.raises(ParamsError) as info:
        build()
    text = str(info.value)
    assert message in text and "\n" not in text and "{key}" not in text, text


def test_every_key_is_documented() -> None:
    classes = [*P.BACKEND_TYPES.values(), *P.SECTIONS.values(), P.ReformulateLLMParams]
    classes.append(P.RewriteChecks)
    for cls in classes:
        for name, f in P.fields_of(cls).items():
            if not dataclasses.is_dataclass(f.annotation):
                assert f.description, f"{cls.__name__}.{name} has no doc"


def test_docs_params_page_is_current() -> None:
    page = REPO / "docs" / "params.md"
    assert page.read_text(encoding="utf-8") == P.render_markdown(), (
        "docs/params.md is stale: run `PYTHONPATH=pipeline python -m dars.core.params "
        "> docs/params.md`"
    )


def test_no_module_imports_private_names_of_params() -> None:
    """The schema is the one reader: nobody reaches into its private helpers."""
    offenders = []
    for path in (REPO / "pipeline").rglob("*.py"):
        if path.name == "params.py" and path.parent.name == "core":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "dars.core.params":
                offenders += [f"{path}: {a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_num"):
                offenders.append(f"{path}: .{node.attr}")
    assert offenders == []


def test_load_params_gives_one_typed_frozen_parse_that_pickles() -> None:
    """Stages pass the parsed file down (Ray ships it to its workers: it must pickle);
    readers take it or a mapping built in code, with the same answers."""
    import pickle

    loaded = P.load_params(REPO / "params.yaml")
    assert isinstance(loaded, P.ParamsFile) and loaded.where.endswith("params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.where = "x"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(loaded)) == loaded
    raw = repo_params()
    assert P.section(loaded, "grade") == P.section(raw, "grade")
    assert P.model_names(loaded) == list(raw["models"])
    assert P.get(loaded, "prepare.tasks") == raw["prepare"]["tasks"]
    with pytest.raises(ParamsError, match="'card.nope' are missing from '.*params.yaml'"):
        P.get(loaded, "card.nope")
    published = P.parse({"aggregate": {"beta_risk": 0.1}}, "MANIFEST.json params_yaml")
    assert published.has("aggregate") and not published.has("card")
    assert P.section(published, "aggregate").beta_risk == 0.1
    with pytest.raises(ParamsError, match="missing from 'MANIFEST.json params_yaml'"):
        P.section(published, "sample")
