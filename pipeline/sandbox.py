"""Run an untrusted Python program (model-written code) in a limited subprocess.

What is isolated
----------------
- Process: the program runs in a separate interpreter (``python -I -B``), never in the
  pipeline process, in a new session and process group. On the wall-clock timeout, and
  after every normal exit, the whole process group gets SIGKILL.
- Resources (``setrlimit``, inherited by every descendant): RLIMIT_CPU (CPU seconds),
  RLIMIT_AS (address space), RLIMIT_NPROC (processes/threads), RLIMIT_FSIZE (largest
  file it may write, which also caps its stdout/stderr files), RLIMIT_CORE = 0.
- Network: a fresh, empty network namespace (``unshare(CLONE_NEWNET)``): no interface
  but a down loopback, so no connection anywhere, 127.0.0.1 included. If unshare fails
  (not root, or no CAP_SYS_ADMIN), the program runs anyway and the result says
  ``network_isolated=False``.
- Identity: when the pipeline runs as root, the program runs as ``nobody`` (uid/gid
  65534, no supplementary groups). It then cannot read root's 0600 files (~/.netrc, the
  HF token), cannot write to root-owned directories, and RLIMIT_NPROC applies (root
  ignores it). Because /root may be mode 700, the interpreter is then a world-executable
  system python3, not ``sys.executable``.
- Environment: only PATH=/usr/bin:/bin, LANG, PYTHONDONTWRITEBYTECODE and HOME (set to
  the working directory). No HF_*, no tokens, nothing else from the parent.
- Files: a fresh temporary working directory, deleted afterwards; stdin is /dev/null;
  stdout/stderr go to unlinked temporary files, and only their last
  ``max_output_bytes`` bytes are read back into memory.

What is NOT isolated
--------------------
- No mount namespace and no chroot: the program sees the whole file system and can read
  every world-readable file; /tmp and /var/tmp stay writable by ``nobody``.
- No seccomp filter: every system call is allowed.
- No PID namespace and no cgroup: a descendant that calls ``setsid()`` leaves the
  process group and survives the final kill (its CPU time is still capped by
  RLIMIT_CPU, a sleeping one is not). RLIMIT_NPROC counts all processes of the user
  ``nobody``, so parallel sandboxes share it.
- Parallel sandboxes all run as ``nobody``: they share its RLIMIT_NPROC count and could
  signal or ptrace each other. If another sandbox has used up the process limit, the
  start is retried until the timeout has passed.
- Without root nothing changes identity: the program runs as the pipeline's user, can
  read and write whatever that user can, and RLIMIT_NPROC counts all of that user's
  processes.
- The program can read its own source file, so the pass nonce defends against an early
  ``sys.exit(0)``, not against a program written to cheat its tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline.errors import MissingExtraError

NOBODY_UID = 65534
NOBODY_GID = 65534
CLONE_NEWNET = 0x40000000
SANDBOX_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
SAFE_PATH = "/usr/bin:/bin"
_POLL_S = 0.01
_GROUP_GONE_S = 2.0

# Loaded once here, so the pre-exec hook does no dlopen or import between fork and exec.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

# Messages on stderr that mean a resource limit stopped the program.
_VIOLATION_MARKERS = (
    ("MemoryError", "memory limit (MemoryError)"),
    ("[Errno 27] File too large", "file size limit (EFBIG)"),
    ("BlockingIOError", "process limit (BlockingIOError)"),
    ("Resource temporarily unavailable", "process limit (EAGAIN)"),
    ("can't start new thread", "process limit (thread)"),
)


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # "timeout", a resource limit, or None
    duration_s: float
    network_isolated: bool
    privileges_dropped: bool


def drops_privileges() -> bool:
    return os.geteuid() == 0


def _world_executable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & stat.S_IXOTH)


def resolve_interpreter(*, drop_privileges: bool) -> str:
    """The python that runs untrusted code: a world-executable system python3 when the
    program will run as `nobody`, else this interpreter."""
    if not drop_privileges:
        return sys.executable
    for candidate in SANDBOX_PYTHONS:
        if _world_executable(candidate):
            return candidate
    raise MissingExtraError(
        "The code sandbox drops root to user 'nobody' and needs a world-executable "
        f"python3 at one of {', '.join(SANDBOX_PYTHONS)}; none was found. Install the "
        "system python3 (e.g. `apt-get install python3`) or run the pipeline as a non-root user"
    )


def _rlimits(
    *, timeout_s: float, memory_mb: int, max_processes: int, max_file_mb: int
) -> list[tuple[int, int, int]]:
    cpu = math.ceil(timeout_s) + 1
    mem = memory_mb * 1024 * 1024
    fsize = max_file_mb * 1024 * 1024
    return [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, mem, mem),
        (resource.RLIMIT_NPROC, max_processes, max_processes),
        (resource.RLIMIT_FSIZE, fsize, fsize),
        (resource.RLIMIT_CORE, 0, 0),
    ]


def _make_preexec(*, limits: list[tuple[int, int, int]], drop_privileges: bool, status_fd: int):
    """The hook run in the child between fork and exec. It only calls functions that are
    already loaded. It writes b"1"/b"0" to `status_fd`: network namespace made or not."""

    def preexec() -> None:
        isolated = _LIBC.unshare(CLONE_NEWNET) == 0
        os.write(status_fd, b"1" if isolated else b"0")
        for which, soft, hard in limits:
            resource.setrlimit(which, (soft, hard))
        if drop_privileges:
            os.setgroups([])
            os.setgid(NOBODY_GID)
            os.setuid(NOBODY_UID)

    return preexec


def _scrubbed_env(home: str) -> dict[str, str]:
    return {
        "PATH": SAFE_PATH,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": home,
    }


def _wait_without_reaping(pid: int, deadline: float) -> bool:
    """Wait until `pid` exits or the deadline passes; True if it exited. The process is
    left a zombie, so its pid (= the group id) cannot be reused before we kill the group."""
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_group_gone(pgid: int, *, timeout_s: float) -> None:
    """After SIGKILL, wait (briefly) until every member of the group has been reaped, so
    they no longer count towards the next run's process limit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(_POLL_S)


def _read_tail(fh: IO[bytes], max_bytes: int) -> tuple[str, int]:
    """The last `max_bytes` bytes of a file as text, and the file's full size."""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - max_bytes))
    data = fh.read(max_bytes)
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = f"[... {size - max_bytes} bytes cut ...]\n" + text
    return text, size


def _force_rmtree(path: str) -> None:
    def onerror(func, failed_path, _exc_info):  # the program may have chmod-ed things
        os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, stat.S_IRWXU)
        func(failed_path)

    shutil.rmtree(path, onerror=onerror)


def classify(
    *, returncode: int, stderr: str, timed_out: bool, output_size: int, file_limit_bytes: int
) -> str | None:
    """Why the program was stopped, where that can be told: None for a normal exit."""
    if timed_out:
        return "timeout"
    if returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL:
        return "cpu limit (SIGXCPU)" if returncode == -signal.SIGXCPU else "killed (SIGKILL)"
    if returncode == -signal.SIGXFSZ or output_size >= file_limit_bytes:
        return "file size limit (SIGXFSZ)"
    if returncode != 0:
        for marker, reason in _VIOLATION_MARKERS:
            if marker in stderr:
                return reason
    return None


def run_untrusted(
    program: str,
    *,
    timeout_s: float,
    memory_mb: int,
    max_processes: int,
    max_file_mb: int,
    max_output_bytes: int,
) -> SandboxResult:
    """Run `program` (Python source) under the limits above and return what happened.

    Raises OSError or subprocess.SubprocessError when the sandbox itself cannot start
    (that is the pipeline's failure, not the program's)."""
    drop = drops_privileges()
    python = resolve_interpreter(drop_privileges=drop)
    limits = _rlimits(
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        max_processes=max_processes,
        max_file_mb=max_file_mb,
    )
    workdir = tempfile.mkdtemp(prefix="dars-sandbox-")
    try:
        script = Path(workdir) / "program.py"
        script.write_text(program, encoding="utf-8")
        if drop:
            os.chown(workdir, NOBODY_UID, NOBODY_GID)
            os.chown(script, NOBODY_UID, NOBODY_GID)
        return _execute(
            [python, "-I", "-B", str(script)],
            workdir=workdir,
            limits=limits,
            drop_privileges=drop,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            file_limit_bytes=max_file_mb * 1024 * 1024,
        )
    finally:
        _force_rmtree(workdir)


def _spawn_once(
    argv: list[str],
    *,
    workdir: str,
    limits: list[tuple[int, int, int]],
    drop_privileges: bool,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> tuple[subprocess.Popen[bytes], bool]:
    status_r, status_w = os.pipe()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=_scrubbed_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            preexec_fn=_make_preexec(
                limits=limits, drop_privileges=drop_privileges, status_fd=status_w
            ),
        )
        os.close(status_w)
        status_w = -1
        return proc, os.read(status_r, 1) == b"1"
    finally:
        if status_w != -1:
            os.close(status_w)
        os.close(status_r)


def _spawn(
    argv: list[str],
    *,
    workdir: str,
    limits: list[tuple[int, int, int]],
    drop_privileges: bool,
    stdout: IO[bytes],
    stderr: IO[bytes],
    retry_until: float,
) -> tuple[subprocess.Popen[bytes], bool]:
    """Start the program. As `nobody`, exec fails with EAGAIN while other sandboxes hold
    all of nobody's processes (RLIMIT_NPROC): retry until `retry_until`."""
    while True:
        try:
            return _spawn_once(
                argv,
                workdir=workdir,
                limits=limits,
                drop_privileges=drop_privileges,
                stdout=stdout,
                stderr=stderr,
            )
        except BlockingIOError:
            if time.monotonic() >= retry_until:
                raise
            time.sleep(0.1)


def _execute(
    argv: list[str],
    *,
    workdir: str,
    limits: list[tuple[int, int, int]],
    drop_privileges: bool,
    timeout_s: float,
    max_output_bytes: int,
    file_limit_bytes: int,
) -> SandboxResult:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc, network_isolated = _spawn(
            argv,
            workdir=workdir,
            limits=limits,
            drop_privileges=drop_privileges,
            stdout=out,
            stderr=err,
            retry_until=start + timeout_s,
        )
        try:
            exited = _wait_without_reaping(proc.pid, start + timeout_s)
        finally:
            _kill_group(proc.pid)  # the leader, and anything it left behind
            returncode = proc.wait()
            _wait_group_gone(proc.pid, timeout_s=_GROUP_GONE_S)
        duration = time.monotonic() - start
        stdout, out_size = _read_tail(out, max_output_bytes)
        stderr, err_size = _read_tail(err, max_output_bytes)
    timed_out = not exited
    reason = classify(
        returncode=returncode,
        stderr=stderr,
        timed_out=timed_out,
        output_size=max(out_size, err_size),
        file_limit_bytes=file_limit_bytes,
    )
    return SandboxResult(
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        killed_reason=reason,
        duration_s=duration,
        network_isolated=network_isolated,
        privileges_dropped=drop_privileges,
    )
