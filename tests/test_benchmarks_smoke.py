"""Every `benchmarks/*.py` still imports and parses `--help` against the current library.

Benchmarks are run by hand, so nothing else notices when a function they call moves
(issue 25: `benchmarks/graders.py` and `benchmarks/adaptive.py` called
`dars.stages.grade.grade_all` for weeks after it left that module). Two checks:

- one subprocess imports every benchmark and calls its `main()` with `--help` (a fresh
  interpreter, so a benchmark's `sys.path` edits and imports of `tests.*` modules stay
  out of this pytest process; one process for all, so pandas and pyarrow load once);
- every name a benchmark takes from `dars` exists: `from dars.x import y` anywhere in
  the file (function-level imports too), and `m.attr` where `m` is a `dars` module bound
  by an import. That catches a moved function that is only looked up when the
  benchmark runs, which `--help` never reaches.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((REPO / "benchmarks").glob("*.py"))

# Runs in a fresh interpreter: argv[1:] are benchmark files; prints one JSON object
# {file: {"code": exit code of main(), "out": its stdout, "error": traceback or null}}.
RUN_HELP = """
import contextlib, importlib.util, io, json, pathlib, sys, traceback
results = {}
for path in sys.argv[1:]:
    out, code, error = io.StringIO(), None, None
    try:
        spec = importlib.util.spec_from_file_location("bench_" + pathlib.Path(path).stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if "parse_args(" not in pathlib.Path(path).read_text():  # --help would run it
            raise SystemExit("no argparse parser in main(), so --help would run the benchmark")
        sys.argv = [path, "--help"]
        with contextlib.redirect_stdout(out):
            mod.main()
        error = "main() returned instead of exiting after --help"
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        error = traceback.format_exc()
    results[path] = {"code": code, "out": out.getvalue(), "error": error}
print(json.dumps(results))
"""


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 10, BENCHMARKS


@pytest.fixture(scope="module")
def help_runs() -> dict[str, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "pipeline"), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-c", RUN_HELP, *map(str, BENCHMARKS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_and_prints_help(path: Path, help_runs: dict[str, dict]):
    run = help_runs[str(path)]
    assert run["error"] is None, f"{path.name}:\n{run['error']}"
    assert run["code"] == 0 and "usage:" in run["out"], run


def _dars_module(name: str) -> ModuleType | None:
    if name != "dars" and not name.startswith("dars."):
        return None
    return importlib.import_module(name)


def missing_dars_names(path: Path) -> list[str]:
    """`module.name` for every name the file takes from a `dars` module that is not there."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, ModuleType] = {}  # local name -> the dars module it is bound to
    missing: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod = _dars_module(alias.name)
                if mod is not None and alias.asname:
                    bound[alias.asname] = mod
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mod = _dars_module(node.module)
            if mod is None:
                continue
            for alias in node.names:
                if hasattr(mod, alias.name):
                    value = getattr(mod, alias.name)
                elif hasattr(mod, "__path__") and importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ):
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                else:
                    missing.append(f"{path.name}:{node.lineno}: {node.module}.{alias.name}")
                    continue
                if isinstance(value, ModuleType):
                    bound[alias.asname or alias.name] = value
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and not hasattr(bound[node.value.id], node.attr)
        ):
            missing.append(
                f"{path.name}:{node.lineno}: {bound[node.value.id].__name__}.{node.attr}"
            )
    return missing


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_uses_only_names_dars_has(path: Path):
    assert missing_dars_names(path) == []


def test_the_name_check_finds_a_moved_function(tmp_path: Path):
    """The check above can fail: a module attribute and a from-import that do not exist."""
    bench = tmp_path / "moved.py"
    bench.write_text(
        "from dars.stages import grade\n"
        "def run():\n"
        "    from dars.graders.batch import grade_all\n"
        "    return grade.grade_all, grade.run, grade_all\n"
    )
    assert missing_dars_names(bench) == [
        "moved.py:3: dars.graders.batch.grade_all",
        "moved.py:4: dars.stages.grade.grade_all",
    ]
