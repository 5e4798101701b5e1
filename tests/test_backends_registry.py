"""Backends are registered by name and say what the sampling layer needs; the sampling
layer names no backend."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dars.backends import BACKENDS, BaseBackend, UnitGroups, backend_class, build_backend
from dars.backends.base import sample_seed
from dars.core import params as P
from dars.core.errors import ParamsError, UnknownNameError
from dars.core.params import ModelConfig, SampleConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLING = REPO / "pipeline" / "dars" / "sampling"


def test_every_backend_the_params_allow_is_registered_under_its_own_name():
    assert BACKENDS.names() == sorted(P.BACKENDS)
    for name in BACKENDS:
        cls = backend_class(name)
        assert issubclass(cls, BaseBackend) and cls.name == name


def test_an_unknown_backend_says_did_you_mean():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'llama_cpp'\?.*Valid backends"):
        backend_class("llama-cpp")


def test_importing_the_registry_and_the_sampling_layer_imports_no_backend_module():
    code = (
        "import json, sys\n"
        "import dars.backends, dars.sampling.uniform, dars.sampling.adaptive\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('dars.backends.')\n"
        "    or m.split('.')[0] in ('llama_cpp', 'vllm', 'aiohttp'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "pipeline")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["dars.backends.base"]


def config(backend: str) -> ModelConfig:
    """A valid minimal config (vllm needs a model id and a pinned revision)."""
    pinned = {"model_path": "org/model", "revision": "abc123"} if backend == "vllm" else {}
    return ModelConfig(name="m", backend=backend, **pinned)


def test_only_the_llama_cpp_scheduler_groups_units():
    cfg = ModelConfig(name="m", backend="llama_cpp", max_num_seqs=4)
    assert backend_class("llama_cpp").unit_groups(cfg, 3) == UnitGroups(size=6, slots=4)
    grouped = ModelConfig(name="m", backend="llama_cpp", group_units=5)
    assert backend_class("llama_cpp").unit_groups(grouped, 3) == UnitGroups(size=5, slots=16)
    for name in ("simulated", "vllm", "openai", "imported"):
        assert backend_class(name).unit_groups(config(name), 3) is None


def test_vllm_plans_consecutive_seeds_and_the_others_a_hashed_seed_per_sample():
    sample = SampleConfig(n=4, seed=3, max_retries=0)
    keys = {"sample": sample, "query_id": "q", "variant_id": 1}
    vllm = backend_class("vllm").variant_seeds(config=config("vllm"), **keys)
    assert vllm == list(range(vllm[0], vllm[0] + 4))
    cfg = ModelConfig(name="m", backend="simulated")
    hashed = [
        sample_seed(base_seed=3, model="m", query_id="q", variant_id=1, sample_id=i)
        for i in range(4)
    ]
    for name in ("simulated", "llama_cpp", "openai"):
        assert backend_class(name).variant_seeds(config=cfg, **keys) == hashed


def test_the_progress_line_gets_a_cpu_note_only_from_llama_cpp():
    cfg = ModelConfig(name="m", backend="llama_cpp", n_threads=1)
    assert backend_class("llama_cpp").progress_note(cfg)["threads"].startswith("1/")
    assert backend_class("simulated").progress_note(cfg) == {}


def test_an_imported_model_cannot_be_sampled():
    cfg = ModelConfig(name="gpt-x", backend="imported")
    with pytest.raises(ParamsError, match=r"'gpt-x' was imported .* no engine"):
        build_backend(cfg, {})


def _backend_names_in_code(path: Path) -> list[str]:
    """Backend names used as values or imported as modules (docstrings do not count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in P.BACKENDS and id(node) not in docs:
            found.append(f"{path.name}:{node.lineno}: {node.value!r}")
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        for m in modules:
            if m.split(".")[:2] == ["dars", "backends"] and m.split(".")[-1] in P.BACKENDS:
                found.append(f"{path.name}:{node.lineno}: import {m}")
    return found


def test_the_sampling_layer_names_no_backend(tmp_path):
    assert [hit for p in sorted(SAMPLING.glob("*.py")) for hit in _backend_names_in_code(p)] == []
    # and the check finds a name compare and an import of a backend module
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""docs may say llama_cpp"""\n'
        "def f(config):\n"
        "    from dars.backends.llama_cpp import scheduler_slots\n"
        '    return config.backend == "vllm"\n'
    )
    assert _backend_names_in_code(bad) == [
        "bad.py:3: import dars.backends.llama_cpp",
        "bad.py:4: 'vllm'",
    ]
