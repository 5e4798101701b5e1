"""Malformed params.yaml values fail before any sampling starts, through the real
commands (`dars check-params`, `dars sample`), naming the key, the value and what is
allowed (issue 5)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dars import cli
from dars.core import schema
from dars.core.io import write_frame
from dars.sampling.worker import WORKER_ENV

REPO = Path(__file__).resolve().parents[1]


def base_params() -> dict:
    """The repository's params.yaml (real llama.cpp configurations) plus one simulated
    configuration that `dars sample` can run quickly."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"]["sim"] = {"backend": "simulated", "sim_ability": 0.5, "max_tokens": 8}
    return params


def dars(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dars", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    q = pd.DataFrame(
        {
            "query_id": ["q0", "q1"],
            "task": "arith",
            "prompt": ["What is 1 + 1?", "What is 2 + 2?"],
            "reference": ["2", "4"],
            "grader": "numeric",
            "source": "test",
            "license": "MIT",
            "metadata": "{}",
        }
    )
    v = q[["query_id", "prompt"]].assign(
        variant_id=0, method="original", accepted=True, reject_reason=None
    )
    write_frame(q, tmp_path / "queries.parquet", schema=schema.QUERIES)
    write_frame(v, tmp_path / "variants.parquet", schema=schema.VARIANTS)
    return tmp_path


def sample_args(model: str) -> list[str]:
    return [
        "sample", "--params", "params.yaml", "--model", model,
        "--queries", "queries.parquet", "--variants", "variants.parquet",
        "--out", "out.parquet", "--checkpoint-dir", "ckpt",
    ]  # fmt: skip


def sample(cwd: Path, model: str) -> subprocess.CompletedProcess:
    return dars(cwd, *sample_args(model))


def with_change(path: str, value) -> dict:
    params = copy.deepcopy(base_params())
    node = params
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return params


# (dotted key, bad value, text that must appear in the message)
BAD = [
    ("sample.n", -3, "Parameter 'sample.n' = -3 is out of range; allowed: >= 1"),
    ("sample.n", 0, "Parameter 'sample.n' = 0 is out of range; allowed: >= 1"),
    ("sample.n", "three",
     "Parameter 'sample.n' = 'three' is not an integer; allowed: an integer >= 1"),
    ("sample.n", 2.5, "Parameter 'sample.n' = 2.5 is not an integer"),
    ("sample.max_retries", -1, "'sample.max_retries' = -1 is out of range; allowed: >= 0"),
    ("reformulate.k", 0, "Parameter 'reformulate.k' = 0 is out of range; allowed: >= 1"),
    ("models.sim.backend", "tensorrt",
     "Parameter 'models.sim.backend' = 'tensorrt' is not a known backend; allowed: llama_cpp, "
     "simulated, vllm, openai"),
    ("models.sim.backend", None, "'models.sim.backend' = None is not a known backend"),
    ("models.gemma-fewshot.model_path", "/nonexistent/gemma.gguf",
     "Parameter 'models.gemma-fewshot.model_path' = '/nonexistent/gemma.gguf' does not exist"),
    ("models.sim.temperature", -0.1,
     "Parameter 'models.sim.temperature' = -0.1 is out of range; allowed: >= 0.0"),
    ("models.sim.temperature", float("nan"), "'models.sim.temperature' = nan is not a number"),
    ("models.sim.top_p", 0.0,
     "'models.sim.top_p' = 0.0 is out of range; allowed: > 0.0 and <= 1.0"),
    ("models.sim.max_tokens", 0, "'models.sim.max_tokens' = 0 is out of range; allowed: >= 1"),
    ("models.sim.sim_error_rate", 1.5, "'models.sim.sim_error_rate' = 1.5 is out of range"),
    ("models.sim.prompting", "chain",
     "'models.sim.prompting' = 'chain' is not a known prompting; allowed: zero_shot, few_shot"),
    ("models", {}, "Parameter 'models' must be a non-empty mapping"),
]  # fmt: skip
IDS = [f"{key}={value!r}" for key, value, _ in BAD]


def dars_in_process(
    cwd: Path, *args: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess:
    """`dars.cli.main` in this process, with what the console command would exit with and
    print: `SystemExit("message")` is exit status 1 with the message on stderr. (Each bad
    value here would otherwise pay a new interpreter; the console command itself is run
    by the tests below.)"""
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        code = cli.main(list(args))
        extra = ""
    except SystemExit as exc:
        code, extra = (1, f"{exc.code}\n") if isinstance(exc.code, str) else (exc.code, "")
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["dars", *args], code, out.out, out.err + extra)


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=IDS)
def test_check_params_names_key_value_and_allowed(
    tmp_path: Path, key: str, value, message: str, capsys, monkeypatch
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_change(key, value)))
    r = dars_in_process(
        tmp_path, "check-params", "--params", "params.yaml", capsys=capsys, monkeypatch=monkeypatch
    )
    assert r.returncode == 1, r.stdout
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert "error(s) in params.yaml" in r.stderr


def test_check_params_console_command_fails_in_one_line_per_error(tmp_path: Path) -> None:
    """The same check through the installed console command: exit status 1, no traceback."""
    key, value, message = BAD[0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_change(key, value)))
    r = dars(tmp_path, "check-params", "--params", "params.yaml")
    assert r.returncode == 1, r.stdout
    assert message in r.stderr and "1 error(s) in params.yaml" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_params_accepts_the_repository_params() -> None:
    r = dars(REPO, "check-params", "--params", str(REPO / "params.yaml"))
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


SAMPLE_BAD = [b for b in BAD if not b[0].startswith(("reformulate", "models.sim.backend"))]
SAMPLE_BAD += [("models.sim.backend", "tensorrt", "'models.sim.backend' = 'tensorrt'")]


@pytest.mark.parametrize(
    ("key", "value", "message"), SAMPLE_BAD, ids=[str(b[:2]) for b in SAMPLE_BAD]
)
def test_sample_fails_before_sampling_anything(
    workdir: Path, key: str, value, message: str, capsys, monkeypatch
) -> None:
    """`dars sample --model sim` fails on a bad value of its own configuration, of the
    sample section, or of ANY other model configuration of the build (DVC would run the
    good models first and fail later), and writes nothing."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(with_change(key, value)))
    # the stage as its engine worker runs it (the console command's worker process is run
    # by the tests below)
    monkeypatch.setenv(WORKER_ENV, "1")
    r = dars_in_process(
        workdir, *sample_args("sim" if key != "models" else "gemma-fewshot"),
        capsys=capsys, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert message in r.stderr
    assert not (workdir / "out.parquet").exists()
    assert not (workdir / "ckpt").exists() or not any((workdir / "ckpt").rglob("*.parquet"))


def test_reformulate_fails_on_k_zero_before_the_sample_stage(workdir: Path) -> None:
    """K is read by `reformulate`, the stage before `sample` in dvc.yaml."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(with_change("reformulate.k", 0)))
    r = dars(
        workdir, "reformulate", "--params", "params.yaml",
        "--queries", "queries.parquet", "--out", "v2.parquet",
    )  # fmt: skip
    assert r.returncode == 1
    assert "Parameter 'reformulate.k' = 0 is out of range; allowed: >= 1" in r.stderr
    assert not (workdir / "v2.parquet").exists()


def test_the_good_configuration_samples(workdir: Path) -> None:
    """The same command with the unchanged params succeeds (the failures above are the
    bad values', not the setup's)."""
    (workdir / "params.yaml").write_text(yaml.safe_dump(base_params()))
    r = sample(workdir, "sim")
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(workdir / "out.parquet")) == 2 * base_params()["sample"]["n"]


def test_unknown_model_name_lists_the_configured_ones(workdir: Path) -> None:
    (workdir / "params.yaml").write_text(yaml.safe_dump(base_params()))
    r = sample(workdir, "gemma-fewshoot")
    assert r.returncode == 1
    assert "Did you mean 'gemma-fewshot'?" in r.stderr and "sim" in r.stderr
