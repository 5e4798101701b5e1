"""The code sandbox against hostile programs. Limits are small so the file stays fast."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dars.graders import GradeConfig, get_grader, sandbox

LIMITS = {
    "timeout_s": 1.0,
    "memory_mb": 256,
    "max_processes": 16,
    "max_file_mb": 1,
    "max_output_bytes": 4096,
}
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="privilege drop needs root")


def run(program: str, **overrides: float) -> sandbox.SandboxResult:
    return sandbox.run_untrusted(program, **{**LIMITS, **overrides})


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _live_nobody_processes() -> list[int]:
    """Live processes of the sandbox user that descend from this test process (the
    sandbox makes its caller their subreaper, so a stray fork lands here; another xdist
    worker's sandboxed processes descend from that worker and are not counted)."""
    parent: dict[int, int] = {}
    nobody: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            uid = entry.stat().st_uid
        except (FileNotFoundError, ProcessLookupError):
            continue
        parent[int(entry.name)] = int(fields[1])
        if uid == sandbox.NOBODY_UID and fields[0] != "Z":
            nobody.append(int(entry.name))
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen = set()
        while pid not in seen and pid > 1:
            seen.add(pid)
            pid = parent.get(pid, 0)
            if pid == me:
                return True
        return False

    return [pid for pid in nobody if ours(pid)]


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A root-owned, world-readable (0755) directory that `nobody` can enter."""
    path = Path(tempfile.mkdtemp(prefix="dars-test-root-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


# --- normal runs -----------------------------------------------------------------------


def test_normal_program_output_and_cleanup() -> None:
    result = run("import os\nprint('hello')\nprint(os.getcwd())\n")
    lines = result.stdout.splitlines()
    assert (result.returncode, result.timed_out, result.killed_reason) == (0, False, None)
    assert lines[0] == "hello"
    assert not Path(lines[1]).exists(), "the working directory must be deleted afterwards"


def test_cleanup_survives_unreadable_subdirectory() -> None:
    result = run("import os\nos.makedirs('a/b')\nos.chmod('a', 0)\nprint(os.getcwd())\n")
    assert result.returncode == 0
    assert not Path(result.stdout.strip()).exists()


def test_interpreter_choice() -> None:
    assert sandbox.resolve_interpreter(drop_privileges=False) == sys.executable
    if any(sandbox._world_executable(p) for p in sandbox.SANDBOX_PYTHONS):
        assert sandbox.resolve_interpreter(drop_privileges=True) in sandbox.SANDBOX_PYTHONS


# --- time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program",
    [
        "while True:\n    pass\n",
        "import time\nwhile True:\n    time.sleep(0.05)\n",
    ],
)
def test_loops_time_out_quickly(program: str) -> None:
    start = time.monotonic()
    result = run(program)
    assert result.timed_out and result.killed_reason == "timeout"
    assert time.monotonic() - start < 4


def test_timeout_kills_the_whole_process_group() -> None:
    program = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    while True:\n"
        "        time.sleep(0.05)\n"
        "print(pid, flush=True)\n"
        "while True:\n"
        "    pass\n"
    )
    result = run(program)
    assert result.timed_out
    child = int(result.stdout.split()[0])
    assert not _alive(child), "the forked child must be killed with the group"


# --- identity, environment, files -----------------------------------------------------


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DARS_TEST_SECRET", "hunter2-parent-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_parent_token")
    result = run("import json, os\nprint(json.dumps(dict(os.environ)))\n")
    env = json.loads(result.stdout)
    assert "hunter2-parent-secret" not in result.stdout
    assert "hf_parent_token" not in result.stdout
    assert set(env) <= {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "HOME", "LC_CTYPE"}
    assert env["PATH"] == "/usr/bin:/bin"


@needs_root
def test_runs_as_nobody_and_cannot_read_parent_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DARS_TEST_SECRET", "hunter2-parent-secret")
    program = (
        "import os\n"
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
        "try:\n"
        "    print(open(f'/proc/{os.getppid()}/environ', 'rb').read())\n"
        "except PermissionError:\n"
        "    print('denied')\n"
    )
    result = run(program)
    assert result.privileges_dropped
    assert result.stdout.splitlines()[0] == "65534 65534 []"
    assert "hunter2" not in result.stdout and "denied" in result.stdout


@needs_root
def test_cannot_write_outside_working_directory(root_dir: Path) -> None:
    target = root_dir / "pwned.txt"
    result = run(f"open({str(target)!r}, 'w').write('x')\n")
    assert result.returncode != 0 and "PermissionError" in result.stderr
    assert not target.exists()


@needs_root
def test_cannot_read_root_private_file(root_dir: Path) -> None:
    secret = root_dir / "token"
    secret.write_text("hf_root_only_secret")
    secret.chmod(0o600)
    result = run(f"print(open({str(secret)!r}).read())\n")
    assert "hf_root_only_secret" not in result.stdout
    assert "PermissionError" in result.stderr


# --- resources -------------------------------------------------------------------------


@needs_root
def test_fork_bomb_is_contained() -> None:
    start = time.monotonic()
    result = run("import os\nwhile True:\n    os.fork()\n")
    assert result.returncode != 0
    assert result.killed_reason in ("timeout", "process limit (BlockingIOError)")
    assert time.monotonic() - start < 6
    assert _live_nobody_processes() == []


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(2 * 1024 ** 3)\n",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))\n",
    ],
)
def test_memory_bomb_hits_the_memory_limit(program: str) -> None:
    result = run(program)
    assert result.returncode != 0
    assert result.killed_reason == "memory limit (MemoryError)"


def test_huge_stdout_is_capped() -> None:
    result = run("while True:\n    print('x' * 10000)\n")
    assert result.returncode != 0
    assert result.killed_reason == "file size limit (SIGXFSZ)"
    assert len(result.stdout) < LIMITS["max_output_bytes"] + 100


def test_large_file_write_is_stopped() -> None:
    result = run("open('big', 'wb').write(b'0' * (5 * 1024 ** 2))\n")
    assert result.returncode != 0
    assert result.killed_reason == "file size limit (EFBIG)"


# --- network ---------------------------------------------------------------------------


def test_no_network_even_to_localhost() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
            "    print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print('BLOCKED', exc)\n"
        )
        result = run(program)
        if not result.network_isolated:
            pytest.skip("no network namespace here (needs root / CAP_SYS_ADMIN)")
        assert result.stdout.startswith("BLOCKED")
        with pytest.raises(BlockingIOError):
            listener.accept()


# --- through the code grader ----------------------------------------------------------

CODE_CONFIG = GradeConfig(code_timeout_s=1.0, memory_mb=256, max_processes=16)
REFERENCE = json.dumps(
    {
        "test": (
            "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 6\n"
        ),
        "entry_point": "double",
    }
)
PROMPT = 'def double(x: int) -> int:\n    """Return twice x."""\n'


def grade(completion: str):
    return get_grader("code").grade(completion, REFERENCE, {"prompt": PROMPT}, CODE_CONFIG)


def test_grader_pass_and_fail() -> None:
    assert grade("    return 2 * x\n").score == 1.0
    assert grade("    return x + 1\n").score == 0.0


@pytest.mark.parametrize(
    "completion",
    [
        "def double(x):\n    return 0\nimport sys\nsys.exit(0)\n",
        "def double(x):\n    return 0\nimport os\nos._exit(0)\n",
        "    return 0\nraise SystemExit(0)\n",
        "def double(x):\n    return 0\nimport atexit, os\natexit.register(lambda: os._exit(0))\n"
        "def check(candidate):\n    pass\n",
    ],
)
def test_early_exit_does_not_pass(completion: str) -> None:
    result = grade(completion)
    assert (result.score, result.grade_status) == (0.0, "ok")


@pytest.mark.parametrize(
    ("completion", "status"),
    [
        ("    while True:\n        pass\n", "timeout"),
        ("    return len(bytearray(2 * 1024 ** 3))\n", "sandbox_violation"),
        ("    import os\n    while True:\n        os.fork()\n", "sandbox_violation"),
    ],
)
def test_grader_maps_limits_to_statuses(completion: str, status: str) -> None:
    if "fork" in completion and not AS_ROOT:
        pytest.skip("without root the fork bomb would run as the test user")
    result = grade(completion)
    assert (result.score, result.grade_status) == (0.0, status)
