"""Fixtures shared by the test modules; the builders they use live in tests/factories.py
(test modules never import each other or this file).

- `dvc_repo_factory`: a new real temporary DVC repository per test.
- `sim_built`: one simulated build (`dvc repro` of `factories.tiny_params()`) per test
  run, shared by the card, publish, diff and remote tests and by every pytest-xdist
  worker (pytest-xdist's recipe: a file lock in the run's shared temporary folder).
  Tests that change it work on `sim_built.copy(tmp_path / ...)`.
- `sim_full_built`: the same for the full pipeline (`factories.full_sim_params()`), read
  by the end-to-end, router and determinism tests.
- `real_built`: the same for the real gemma-3-270m build (`factories.tiny_real_params()`),
  read by the real end-to-end test and the publish tests.
- The run leaves the checkout as it found it: stage run logs go to a temporary
  `DARS_RUNS_DIR`, and the session fails if a test added or changed a file in the
  checkout (`git status`, ignored files included).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from dars.core import runlog
from tests.factories import (
    REPO,
    Built,
    DvcRepo,
    full_sim_params,
    make_build,
    tiny_params,
    tiny_real_params,
)

# what a test run may create in the checkout: the environment and tool caches
ALLOWED_IN_CHECKOUT = (".venv/", ".pytest_cache/", ".ruff_cache/", ".mypy_cache/", "build/")


def _stamp(path: Path) -> int:
    """The newest mtime under a path (a collapsed untracked or ignored folder included)."""
    if path.is_file():
        return path.stat().st_mtime_ns
    times = [(Path(d) / f).stat().st_mtime_ns for d, _, files in os.walk(path) for f in files]
    return max(times, default=0)


def checkout_state() -> dict[str, str]:
    """Path -> git status code of every changed, untracked or ignored path."""
    r = subprocess.run(
        ["git", "status", "--porcelain", "--ignored=traditional", "--untracked-files=normal"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:  # not a git checkout (an sdist): nothing to compare
        return {}
    state = {}
    for line in r.stdout.splitlines():
        code, path = line[:2], line[3:]
        if path.startswith(ALLOWED_IN_CHECKOUT) or "__pycache__" in path:
            continue
        if path.endswith(".egg-info/"):
            continue
        state[path] = f"{code} {_stamp(REPO / path)}"
    return state


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(runlog.RUNS_DIR_ENV):
        os.environ[runlog.RUNS_DIR_ENV] = tempfile.mkdtemp(prefix="dars-runs-")
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        config.stash[_CHECKOUT] = checkout_state()


_CHECKOUT = pytest.StashKey[dict]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None:
        return
    after = checkout_state()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"the test run changed the checkout ({len(changed)} paths): "
                + ", ".join(changed[:10]), red=True,
            )  # fmt: skip
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# fixtures whose tests run `dvc repro` (directly or through the shared build)
SHARED_BUILDS = ("sim_built", "sim_full_built", "real_built")
FIXTURE_MARKS = {"dvc_repo_factory": "dvc", **{name: "dvc" for name in SHARED_BUILDS}}


# The test modules (or single tests, `module::name`, where a module reads two builds) that
# read each shared build. `make test` (`--dist loadfile`) runs the readers of one build in
# one work unit (see pytest_xdist_make_scheduler), so no worker sits waiting on the other's
# build lock; collection fails if this table is not what the tests use.
SHARED_BUILD_READERS = {
    "tests/test_e2e.py::test_dvc_repro_real_llama_cpp": "real_built",
    "tests/test_card.py": "sim_built",
    "tests/test_diff.py": "sim_built",
    "tests/test_dvc_remote.py": "sim_built",
    "tests/test_publish.py::test_refuses_a_simulated_build": "sim_built",
    "tests/test_publish.py": "real_built",
    "tests/test_determinism.py": "sim_full_built",
    "tests/test_e2e.py": "sim_full_built",
    "tests/test_routers.py": "sim_full_built",
}
# a rough cost per test, from its markers, to send the dearest work units out first
MARK_COST = {"dvc": 30.0, "model": 10.0, "server": 8.0, "slow": 5.0, "docs": 5.0}


def reader_key(nodeid: str) -> str:
    """The SHARED_BUILD_READERS entry of a test: its own (`module::name`) or its module's."""
    module, _, name = nodeid.partition("::")
    test = f"{module}::{name.split('[', 1)[0]}"
    return test if test in SHARED_BUILD_READERS else module


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: the shared build it reads, else its module."""
    module = nodeid.split("::", 1)[0]
    return SHARED_BUILD_READERS.get(reader_key(nodeid), module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what each test needs (FIXTURE_MARKS), check SHARED_BUILD_READERS, and order
    the work units dearest first (by MARK_COST; a shared build counts once), so the two
    xdist workers finish close together; a unit's tests keep their order."""
    wrong, used, keys = [], set(), set()
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in names:
                item.add_marker(mark)
        key = reader_key(item.nodeid)
        keys.add(key)
        reads = [f for f in SHARED_BUILDS if f in names]
        listed = SHARED_BUILD_READERS.get(key)
        if reads:
            used.add(key)
            if reads != [listed]:
                wrong.append(f"{item.nodeid} reads {reads}, listed {listed}")
    wrong += [
        f"{key} is listed but reads no shared build"
        for key in (keys & set(SHARED_BUILD_READERS)) - used
    ]
    if wrong:
        raise pytest.UsageError(
            "tests/conftest.py SHARED_BUILD_READERS does not match what the tests use "
            f"(list each module, or `module::test`, that reads one shared build): {wrong[:3]}"
        )
    cost: dict[str, float] = {}
    for item in items:
        unit = work_unit(item.nodeid)
        marks = {m.name for m in item.iter_markers()}
        if unit != item.nodeid.split("::", 1)[0]:  # its `dvc repro` is the build, once
            marks.discard("dvc")
            cost.setdefault(unit, MARK_COST["dvc"])
        dearest = max((MARK_COST[m] for m in marks if m in MARK_COST), default=0.05)
        cost[unit] = cost.get(unit, 0.0) + dearest
    items.sort(key=lambda it: (-cost[work_unit(it.nodeid)], work_unit(it.nodeid)))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadfile`, a work unit is `work_unit(nodeid)`: a module, or all the
    modules of one shared build. Units go out in collection order (dearest first, above).
    (pytest-xdist's own `--dist loadgroup` does not work with pytest 9.2: it renames
    `item._nodeid`, which pytest 9.2 no longer reads, and so runs every test as its own
    unit.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedBuildScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return SharedBuildScheduling(config, log)


@pytest.fixture
def dvc_repo_factory(tmp_path):
    def make(params: dict) -> DvcRepo:
        return DvcRepo(tmp_path / "repo", params)

    return make


def shared_build(
    factory: pytest.TempPathFactory, name: str, params: dict, make: Callable[..., Built]
) -> Built:
    """`make(root, params)` then `dvc repro`, once per test run: the first worker to ask
    builds it under a file lock in the run's shared temporary folder; the others wait and
    reuse it (pytest-xdist's recipe for session fixtures shared across workers)."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers
    home = root / name
    with FileLock(str(root / f"{name}.lock")):
        done = home / "built.json"
        if not done.exists() or json.loads(done.read_text()) != params:
            shutil.rmtree(home, ignore_errors=True)
            make(home / "repo", params).dvc("repro")
            done.write_text(json.dumps(params))
    return Built(home / "repo")


@pytest.fixture(scope="session")
def sim_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shared simulated build, router stages stubbed (see the module docstring)."""
    return shared_build(tmp_path_factory, "dars-sim-build", tiny_params(), make_build)


@pytest.fixture(scope="session")
def sim_full_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shared full simulated build (`factories.full_sim_params()`, train and evaluate
    included), read by the end-to-end, router and determinism tests."""
    return shared_build(tmp_path_factory, "dars-sim-full", full_sim_params(), DvcRepo)


@pytest.fixture(scope="session")
def real_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shared real build (`factories.tiny_real_params()`: gemma-3-270m through
    llama.cpp, train and evaluate included), read by the real end-to-end test and the
    publish tests; tests that change it work on a copy."""
    pytest.importorskip("llama_cpp")
    return shared_build(tmp_path_factory, "dars-real-build", tiny_real_params(), DvcRepo)
