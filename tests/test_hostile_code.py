"""Hostile model completions against the code grader and its sandbox (issue 5).

Every hostile completion below is also a wrong solution, so each must end with score 0;
the test checks the grade_status (and the reason in grade_detail) and, where the attack
could leave a trace, that nothing outside the sandbox changed. Limits are small so the
file stays fast. Most cases need root (privilege drop, namespaces, escape sweep): that
is how the pipeline runs here and in CI; elsewhere they are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dars.core.schema import GENERATIONS
from dars.graders import GradeConfig, get_grader, sandbox
from dars.graders import code as code_grader

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the sandbox's isolation needs root")
LIMITS = {
    "timeout_s": 1.0,
    "memory_mb": 256,
    "max_processes": 16,
    "max_file_mb": 1,
    "max_output_bytes": 4096,
}
CONFIG = GradeConfig(code_timeout_s=1.0, memory_mb=256, max_processes=16)
TESTS = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 6\n"
REFERENCE = json.dumps({"test": TESTS, "entry_point": "double"})
PROMPT = 'def double(x: int) -> int:\n    """Return twice x."""\n'
WRONG = "def double(x):\n    return 0\n"  # every hostile completion starts wrong


def grade(completion: str):
    return get_grader("code").grade(completion, REFERENCE, {"prompt": PROMPT}, CONFIG)


def run(program: str, **overrides) -> sandbox.SandboxResult:
    return sandbox.run_untrusted(program, **{**LIMITS, **overrides})


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the catalogue: (id, completion, grade_status, regex on grade_detail) ----------------


def bad(*lines: str) -> str:
    """A wrong solution followed by module-level attack code, one statement a line."""
    return WRONG + "".join(line + "\n" for line in lines)


PROJECT_PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")
VIOLATION = "sandbox_violation"
HOSTILE: list[tuple[str, str, str, str]] = [
    ("fork_bomb", bad("import os", "while True:", "    os.fork()"),
     "sandbox_violation|timeout", r"process limit|killed after"),
    ("memory_bomb_one_shot", bad("x = bytearray(4 * 1024 ** 3)"), VIOLATION, r"memory limit"),
    ("memory_bomb_growing", bad("a = []", "while True:", "    a.append(bytearray(2 ** 24))"),
     "sandbox_violation|timeout", r"memory limit|killed after"),
    ("busy_loop", bad("while True:", "    pass"), "timeout", r"killed after"),
    ("sleeping_loop", bad("import time", "while True:", "    time.sleep(0.05)"),
     "timeout", r"killed after"),
    ("huge_stdout", bad("while True:", "    print('x' * 65536)"), VIOLATION, r"file size limit"),
    ("huge_file", bad("open('big', 'wb').write(b'0' * 8 * 1024 ** 2)"),
     VIOLATION, r"file size limit"),
    ("many_files_fill_disk",
     bad("for i in range(200):", "    open(f'f{i}', 'wb').write(b'0' * (2 ** 20 - 1))"),
     VIOLATION, r"ENOSPC"),
    ("fill_tmp",  # names no file in the host's /tmp has (the overlay shows those)
     bad("import uuid", "tag = uuid.uuid4().hex", "for i in range(200):",
         "    open(f'/tmp/dars-fill-{tag}-{i}', 'wb').write(b'0' * (2 ** 20 - 1))"),
     VIOLATION, r"ENOSPC"),
    ("write_root_dir", bad("open('/usr/dars-pwned', 'w').write('x')"),
     VIOLATION, r"permission denied"),
    ("write_project", bad(f"open({os.getcwd() + '/dars-pwned'!r}, 'w').write('x')"),
     VIOLATION, r"permission denied"),
    ("read_netrc", bad("print(open('/root/.netrc').read())"), VIOLATION, r"permission denied"),
    ("read_hf_token", bad("print(open('/root/.cache/huggingface/token').read())"),
     VIOLATION, r"permission denied"),
    ("read_project_params", bad(f"print(open({PROJECT_PARAMS!r}).read())"),
     VIOLATION, r"permission denied"),
    ("read_parent_environ", bad("import os", "print(open(f'/proc/{os.getppid()}/environ').read())"),
     VIOLATION, r"permission denied"),
    ("connect_localhost", bad("import socket", "socket.create_connection(('127.0.0.1', 22), 1)"),
     VIOLATION, r"network blocked"),
    ("kill_parent", bad("import os, signal", "os.kill(os.getppid(), signal.SIGKILL)"),
     VIOLATION, r"permission denied"),
    ("kill_init", bad("import os, signal", "os.kill(1, signal.SIGKILL)"),
     VIOLATION, r"permission denied"),
    ("sys_exit_0", bad("import sys", "sys.exit(0)"), "ok", r"no pass marker"),
    ("os_exit_0", bad("import os", "os._exit(0)"), "ok", r"no pass marker"),
    ("exit_in_candidate", "    raise SystemExit(0)\n", "ok", r"no pass marker"),
    ("atexit_exit_0", bad("import atexit, os", "atexit.register(lambda: os._exit(0))"),
     "ok", r"no pass marker"),
    ("excepthook_exit_0", bad("import os, sys", "sys.excepthook = lambda *a: os._exit(0)"),
     "ok", r"no pass marker"),
    ("redefine_check",
     bad("def check(candidate):", "    pass", "import builtins", "builtins.check = check"),
     "ok", r"AssertionError"),
    ("patch_assertion_error",
     bad("import builtins", "builtins.AssertionError = type('E', (Exception,), {})"),
     "ok", r"AssertionError"),
    ("patch_print_fake_nonce",
     bad("import builtins, sys",
         "builtins.print = lambda *a, **k: sys.__stdout__.write('0' * 32 + '\\n')",
         "print('x')", "sys.exit(0)"),
     "ok", r"no pass marker"),
    ("print_guessed_nonces",
     bad("import secrets, sys", "for _ in range(1000):", "    print(secrets.token_hex(16))",
         "sys.exit(0)"),
     "ok", r"no pass marker"),
    ("nonce_from_own_source",
     bad("import re, sys", "for h in re.findall(r'[0-9a-f]{32}', open(sys.argv[0]).read()):",
         "    print(h)", "sys.exit(0)"),
     "ok", r"no pass marker"),
    ("nonce_from_code_constants",
     bad("import sys", "for c in sys._getframe().f_code.co_consts:", "    print(c)",
         "sys.exit(0)"),
     "ok", r"no pass marker"),
    ("reread_stdin", bad("import os, sys", "os.lseek(0, 0, 0)", "print(os.read(0, 64))",
                         "sys.exit(0)"),
     "ok", r"Bad file descriptor"),
    ("reexec_without_asserts",
     bad("import os, sys", "os.execv(sys.executable, [sys.executable, '-O', sys.argv[0]])"),
     "ok", r"NoneType"),
    ("settrace_hook", bad("import sys", "sys.settrace(lambda *a: None)"),
     VIOLATION, r"harness tampering: .*trace or profile hook"),
    ("setprofile_hook", bad("import sys", "sys.setprofile(lambda *a: None)"),
     VIOLATION, r"harness tampering"),
    ("ignore_signals_busy",
     "    import signal\n"
     "    for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):\n"
     "        signal.signal(s, signal.SIG_IGN)\n"
     "    while True:\n"
     "        pass\n",
     "timeout", r"killed after"),
    ("ignore_signals_sleeping",
     bad("import signal, time", "for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGALRM):",
         "    signal.signal(s, signal.SIG_IGN)", "while True:", "    time.sleep(1)"),
     "timeout", r"killed after"),
    ("setsid_escape",
     bad("import os, time", "if os.fork() == 0:", "    os.setsid()", "    time.sleep(60)",
         "time.sleep(0.3)"),
     VIOLATION, r"escaped its process group"),
    ("double_fork_daemon",
     bad("import os, time", "if os.fork() == 0:", "    os.setsid()", "    if os.fork() == 0:",
         "        time.sleep(60)", "    os._exit(0)", "time.sleep(0.3)"),
     VIOLATION, r"escaped its process group"),
]  # fmt: skip
IDS = [h[0] for h in HOSTILE]


@needs_root
@pytest.mark.parametrize(("completion", "status", "detail"), [h[1:] for h in HOSTILE], ids=IDS)
def test_hostile_completion_scores_zero_with_a_reason(
    completion: str, status: str, detail: str
) -> None:
    start = time.monotonic()
    result = grade(completion)
    assert result.score == 0.0, result
    assert re.fullmatch(status, result.grade_status), result
    assert re.search(detail, result.detail or ""), result
    assert time.monotonic() - start < 8, "a hostile program held the grader too long"
    assert list(sandbox._our_sandbox_children()) == [], "a process of the run survived"


def test_catalogue_covers_every_attack_of_the_issue() -> None:
    wanted = {
        "fork_bomb", "memory_bomb_one_shot", "busy_loop", "sleeping_loop", "huge_stdout",
        "huge_file", "write_root_dir", "read_netrc", "read_hf_token", "read_project_params",
        "connect_localhost", "kill_parent", "sys_exit_0", "redefine_check",
        "patch_assertion_error", "print_guessed_nonces", "ignore_signals_busy", "setsid_escape",
    }  # fmt: skip
    assert wanted <= set(IDS) and len(IDS) == len(set(IDS))


# --- containment, seen from outside ---------------------------------------------------------


@pytest.fixture
def fake_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A HOME with ~/.netrc and a Hugging Face token, and a project directory (the cwd of
    the pipeline) with params.yaml, all world-readable (0644 files, 0755 directories, in
    /var/tmp rather than pytest's 0700 tmp), so only the sandbox keeps them away; plus a
    root-owned 0600 file in a visible, world-readable directory."""
    base = Path(tempfile.mkdtemp(prefix="dars-test-world-", dir="/var/tmp"))
    home, project = base / "home", base / "project"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    project.mkdir()
    files = {
        "netrc": home / ".netrc",
        "hf_token": home / ".cache" / "huggingface" / "token",
        "project_params": project / "params.yaml",
    }
    for name, path in files.items():
        path.write_text(f"secret-{name}-hunter2\n")
        path.chmod(0o644)
    visible = base / "visible"
    visible.mkdir()
    for d in (base, home, home / ".cache", home / ".cache" / "huggingface", project, visible):
        d.chmod(0o755)
    files["root_0600"] = visible / "token"
    files["root_0600"].write_text("secret-root_0600-hunter2\n")
    files["root_0600"].chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HF_TOKEN", "secret-env-hunter2")
    monkeypatch.chdir(project)
    yield {"home": home, "project": project, **files}
    shutil.rmtree(base)


READ_ALL = """\
import os, sys
for path in sys.argv[1:] or PATHS:
    try:
        print(path, 'READ', open(path).read().strip())
    except OSError as exc:
        print(path, 'DENIED', type(exc).__name__)
print('ENV', sorted(os.environ.items()))
"""


@needs_root
def test_secrets_and_project_files_cannot_be_read(fake_world: dict[str, Path]) -> None:
    paths = [str(fake_world[k]) for k in ("netrc", "hf_token", "project_params", "root_0600")]
    result = run(f"PATHS = {paths!r}\n" + READ_ALL)
    assert result.returncode == 0 and result.filesystem_isolated, result
    assert "hunter2" not in result.stdout + result.stderr
    for path in paths:
        assert f"{path} DENIED PermissionError" in result.stdout
    through_grader = grade(WRONG + f"print(open({paths[-1]!r}).read())\n")
    assert (through_grader.score, through_grader.grade_status) == (0.0, "sandbox_violation")
    assert "hunter2" not in (through_grader.detail or "")


@needs_root
def test_writes_outside_the_working_directory_leave_no_trace(fake_world: dict[str, Path]) -> None:
    tag = secrets.token_hex(6)
    targets = [
        f"/tmp/dars-pwned-{tag}",
        f"/var/tmp/dars-pwned-{tag}",
        f"/dev/shm/dars-pwned-{tag}",
        f"/run/lock/dars-pwned-{tag}",
        str(fake_world["project"] / f"pwned-{tag}"),
        str(fake_world["home"] / f"pwned-{tag}"),
        str(fake_world["project_params"]),
    ]
    before = _digest(fake_world["project"])
    program = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'a').write('pwned')\n"
        "        print(path, 'WROTE')\n"
        "    except OSError as exc:\n"
        "        print(path, 'DENIED', type(exc).__name__)\n"
    )
    result = run(program)
    assert result.returncode == 0 and result.filesystem_isolated, result
    # world-writable directories are private copies: the write "works" inside only
    for path in targets[:4]:
        assert f"{path} WROTE" in result.stdout
        assert not Path(path).exists(), f"{path} leaked out of the sandbox"
    for path in targets[4:]:
        assert f"{path} DENIED PermissionError" in result.stdout
    assert _digest(fake_world["project"]) == before
    assert not (fake_world["home"] / f"pwned-{tag}").exists()


@needs_root
def test_environment_holds_no_secret(fake_world: dict[str, Path]) -> None:
    result = grade(WRONG + "import os\nraise ValueError(repr(dict(os.environ)))\n")
    assert (result.score, result.grade_status) == (0.0, "ok")
    assert "hunter2" not in (result.detail or "") and "HF_TOKEN" not in (result.detail or "")
    assert "'PATH': '/usr/bin:/bin'" in (result.detail or "")


def test_network_connection_to_localhost_never_arrives() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = grade(
            WRONG + f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 1)\n"
        )
        if not AS_ROOT:
            pytest.skip("no network namespace without root")
        assert (result.score, result.grade_status) == (0.0, "sandbox_violation")
        assert "network blocked" in (result.detail or "")
        with pytest.raises(BlockingIOError):
            listener.accept()


@needs_root
@pytest.mark.parametrize(
    "program",
    [
        # the escapee ignores every catchable signal and keeps sleeping
        "import os, signal, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        "        signal.signal(s, signal.SIG_IGN)\n"
        "    print(os.getpid(), flush=True)\n    time.sleep(60)\ntime.sleep(0.2)\n",
        # a daemon: fork, setsid, fork again, the middle process exits
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        print(os.getpid(), flush=True)\n        time.sleep(60)\n    os._exit(0)\n"
        "time.sleep(0.2)\n",
        # the escapee keeps forking new escapees while the leader spins until the timeout
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    print(os.getpid(), flush=True)\n"
        "    while True:\n        try:\n            if os.fork() == 0:\n"
        "                os.setsid()\n        except OSError:\n            pass\n"
        "        time.sleep(0.05)\nwhile True:\n    pass\n",
        # the escapee makes itself non-dumpable, so /proc/<pid> shows it as owned by root
        "import ctypes, os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"
        "    print(os.getpid(), flush=True)\n    time.sleep(60)\ntime.sleep(0.3)\n",
    ],
    ids=["setsid_ignoring_signals", "double_fork_daemon", "escapee_that_forks", "non_dumpable"],
)
def test_setsid_escapees_are_killed(program: str) -> None:
    result = run(program)
    pid = int(result.stdout.split()[0])
    assert result.escaped_killed >= 1, result
    assert not _alive(pid), "an escaped process survived the sandbox"
    assert list(sandbox._our_sandbox_children()) == []
    if not result.timed_out:
        assert result.killed_reason and "escaped its process group" in result.killed_reason


@needs_root
def test_sandbox_cannot_signal_the_pipeline() -> None:
    result = run("import os, signal\nos.kill(os.getppid(), signal.SIGTERM)\n")
    assert result.killed_reason and "permission denied" in result.killed_reason
    assert "PermissionError" in result.stderr


# --- grading integrity ------------------------------------------------------------------


def test_nonce_is_fresh_per_run_and_never_in_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bytes]] = []
    real = sandbox.run_untrusted

    def spy(program: str, **kwargs):
        seen.append((program, kwargs["stdin"]))
        return real(program, **kwargs)

    monkeypatch.setattr(sandbox, "run_untrusted", spy)
    results = [grade("    return 2 * x\n") for _ in range(3)]
    assert [r.score for r in results] == [1.0, 1.0, 1.0]
    nonces = [stdin.decode().strip() for _, stdin in seen]
    assert len(set(nonces)) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)
    for program, _ in seen:
        assert not any(n in program for n in nonces)


def test_a_correct_solution_passes_under_the_same_harness() -> None:
    """The hostile cases above fail for the right reason: the same harness passes this."""
    assert grade("    return 2 * x\n").score == 1.0
    assert grade("def double(x):\n    import sys\n    print('noise', file=sys.stderr)\n"
                 "    return x * 2\n").score == 1.0  # fmt: skip


def test_built_program_runs_the_harness_after_the_tests() -> None:
    ref = code_grader.parse_reference(REFERENCE)
    assert not isinstance(ref, str)
    program = code_grader.build_program(prompt=PROMPT, completion=WRONG, ref=ref, nonce="n" * 32)
    src = program.source
    assert "n" * 32 not in src
    assert src.index("_dars_harness()") < src.index("def double") < src.index("def check")
    assert src.rstrip().endswith("_dars_before()\ncheck(double)\n_dars_done()")


# --- the pipeline goes on ---------------------------------------------------------------


@needs_root
def test_grade_stage_survives_all_hostile_completions(tmp_path: Path) -> None:
    """`dars grade` over every hostile completion, one correct one and one failed
    generation: the stage finishes, every row is kept, nothing leaks."""
    completions = [h[1] for h in HOSTILE] + ["    return 2 * x\n", None]
    rows = [
        {
            "query_id": "q-double",
            "variant_id": 0,
            "model": "m",
            "sample_id": i,
            "seed": i,
            "completion": c,
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "finish_reason": "stop" if c is not None else "error",
            "status": "ok" if c is not None else "error",
            "error": None if c is not None else "engine timed out",
            "latency_s": 0.0,
            "backend": "simulated",
            "revision": "r",
            "cost": 0.0,
            "attempts": 1,
            "true_p": None,
        }
        for i, c in enumerate(completions)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=GENERATIONS), tmp_path / "gens.parquet")
    pd.DataFrame(
        [
            {
                "query_id": "q-double",
                "task": "code",
                "prompt": PROMPT,
                "reference": REFERENCE,
                "grader": "code",
                "source": "test",
                "license": "MIT",
                "metadata": "{}",
            }
        ]
    ).to_parquet(tmp_path / "queries.parquet", index=False)
    (tmp_path / "params.yaml").write_text(
        "grade:\n  code_timeout_s: 1\n  memory_mb: 256\n  max_processes: 16\n  workers: 2\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dars", "grade", "--params", "params.yaml",
         "--generations", "gens.parquet", "--queries", "queries.parquet",
         "--out", "outcomes.parquet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = pd.read_parquet(tmp_path / "outcomes.parquet")
    assert list(out["sample_id"]) == list(range(len(completions)))
    hostile = out.iloc[: len(HOSTILE)]
    assert (hostile["score"] == 0.0).all(), hostile[["grade_status", "grade_detail"]]
    assert out.iloc[-2]["score"] == 1.0
    assert pd.isna(out.iloc[-1]["score"]) and out.iloc[-1]["grade_status"] == "error"
    assert {"timeout", "sandbox_violation", "ok"} <= set(hostile["grade_status"])
    assert sorted(os.listdir(tmp_path)) == [
        "gens.parquet", "outcomes.parquet", "params.yaml", "queries.parquet"
    ]  # fmt: skip
