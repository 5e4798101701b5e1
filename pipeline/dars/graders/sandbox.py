"""Run an untrusted Python program (model-written code) in a limited subprocess.

What is isolated
----------------
- Process: the program runs in a separate interpreter (``python -I -B``), never in the
  pipeline process, in a new session and process group. On the wall-clock timeout, and
  after every normal exit, the whole process group gets SIGKILL.
- Escapes from the process group: when the pipeline runs as root it is a child
  subreaper (``PR_SET_CHILD_SUBREAPER``), so a descendant that calls ``setsid()`` and
  whose parent dies is re-parented to the pipeline, not to init. After every run, each
  such orphan that runs as ``nobody`` and is not in a live sandbox's process group is
  killed and reaped, repeatedly, until none is left (``escaped_killed`` counts them).
- Resources (``setrlimit``, inherited by every descendant): RLIMIT_CPU (CPU seconds; a
  program that ignores SIGXCPU gets SIGKILL at the hard limit), RLIMIT_AS (address
  space), RLIMIT_NPROC (processes/threads), RLIMIT_FSIZE (largest file it may write,
  which also caps its stdout/stderr files), RLIMIT_CORE = 0. Every kill is SIGKILL, which
  cannot be caught or ignored.
- Network: a fresh, empty network namespace (``unshare(CLONE_NEWNET)``): no interface
  but a down loopback, so no connection anywhere, 127.0.0.1 included. If unshare fails
  (not root, or no CAP_SYS_ADMIN), the program runs anyway and the result says
  ``network_isolated=False``.
- File system (as root): a private mount namespace. The working directory is a fresh,
  size-limited tmpfs holding only ``program.py``; the world-writable directories
  (/tmp, /var/tmp, /dev/shm, /run/lock) are copy-on-write overlays whose writes go to a
  private, size-limited tmpfs and vanish with the run; the parent's HOME, /root, /home,
  the pipeline's working directory (the project) and the package's source tree, and the
  Hugging Face cache are covered by an empty, read-only, mode-000 tmpfs (so a read
  fails with EACCES); /proc is remounted with ``hidepid=1`` (other users' command
  lines are hidden). ``filesystem_isolated`` says
  whether all of this was set up.
- Identity: when the pipeline runs as root, the program runs as ``nobody`` (uid/gid
  65534, no supplementary groups). It then cannot read root's 0600 files, cannot write
  to root-owned directories, cannot signal the pipeline, and RLIMIT_NPROC applies (root
  ignores it). Because /root may be mode 700, the interpreter is then a world-executable
  system python3, not ``sys.executable``.
- Environment: only PATH=/usr/bin:/bin, LANG, PYTHONDONTWRITEBYTECODE and HOME (set to
  the working directory). No HF_*, no tokens, nothing else from the parent.
- I/O: stdin is /dev/null or the bytes given in ``stdin`` (the code grader passes its
  pass nonce this way, so it is not in the program's source); stdout/stderr go to
  unlinked temporary files, and only their last ``max_output_bytes`` bytes are read
  back into memory.

What is NOT isolated
--------------------
- Read access to the rest of the file system: the program can read every
  world-readable file outside the covered directories (/usr, /etc, ...).
- No seccomp filter: every system call is allowed (mount and unshare fail for lack of
  privilege, not because they are filtered).
- No PID namespace and no cgroup: the program can see that other processes exist
  (not their command lines). Parallel sandboxes all run as ``nobody``: they share its
  RLIMIT_NPROC count and could signal each other; if another sandbox has used up the
  process limit, the start is retried until the timeout has passed. An escaped process
  killed after a run is counted in that run's ``escaped_killed`` even if, with parallel
  sandboxes, it came from another one.
- Without root none of identity, mount namespace, network namespace or escape sweep
  applies: the program runs as the pipeline's user, can read and write whatever that
  user can, and a ``setsid()`` descendant survives the group kill (its CPU time is still
  capped by RLIMIT_CPU, a sleeping one is not).
- The tests run in the same interpreter as the program: a program written to defeat its
  harness from inside (reading the harness's closure, jumping over assertions from a
  trace hook that it removes again) is not prevented. Early exits, redefined helpers,
  patched builtins, trace hooks left installed and printed guesses of the pass marker
  are (see ``pipeline/dars/graders/code.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import math
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dars.core.errors import MissingExtraError

NOBODY_UID = 65534
NOBODY_GID = 65534
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
SANDBOX_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")
SAFE_PATH = "/usr/bin:/bin"
# World-writable directories that get a private copy-on-write overlay.
OVERLAID_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# Never covered, whatever the pipeline's cwd or HOME is: the program needs them to run.
SYSTEM_DIRS = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/dev", "/sys")
PROGRAM_NAME = "program.py"
_POLL_S = 0.01
_GROUP_GONE_S = 2.0
_PR_SET_CHILD_SUBREAPER = 36
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REC, _MS_PRIVATE = 0x4000, 0x40000

# Loaded once here, so the pre-exec hook does no dlopen or import between fork and exec.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

# Messages on stderr that mean a resource limit or the sandbox stopped the program.
_VIOLATION_MARKERS = (
    ("MemoryError", "memory limit (MemoryError)"),
    ("[Errno 27] File too large", "file size limit (EFBIG)"),
    ("BlockingIOError", "process limit (BlockingIOError)"),
    ("Resource temporarily unavailable", "process limit (EAGAIN)"),
    ("can't start new thread", "process limit (thread)"),
    ("[Errno 28] No space left on device", "disk quota of the sandbox (ENOSPC)"),
    ("PermissionError", "permission denied (outside what the sandbox allows)"),
    ("[Errno 30] Read-only file system", "permission denied (read-only file system)"),
    ("Network is unreachable", "network blocked (no network in the sandbox)"),
)

# Live sandbox leaders (their pids are also their process-group ids). Guarded by the
# lock, which is also held while a leader is spawned, so the escape sweep never mistakes
# a leader that is being started for an orphan.
_LEADERS_LOCK = threading.Lock()
_LEADERS: set[int] = set()
_SUBREAPER = {"on": False}


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None  # "timeout", a resource limit, an escape, or None
    duration_s: float
    network_isolated: bool
    privileges_dropped: bool
    filesystem_isolated: bool = False
    escaped_killed: int = 0  # processes outside the group killed after the run


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


# --- the file-system view --------------------------------------------------------------


def _hf_cache_dir() -> str:
    if os.environ.get("HF_HOME"):
        return os.environ["HF_HOME"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "huggingface")


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def hidden_dirs(*, interpreter: str) -> list[str]:
    """Directories covered by an empty read-only tmpfs: the parent's HOME, /root, /home,
    the pipeline's cwd (the project), this package's source tree and the HF cache. A
    directory that holds a system directory or the interpreter is never covered."""
    package_root = str(Path(__file__).resolve().parents[3])
    candidates = {
        os.path.expanduser("~"),
        "/root",
        "/home",
        os.getcwd(),
        package_root,
        _hf_cache_dir(),
    }
    keep = [*SYSTEM_DIRS, os.path.dirname(os.path.realpath(interpreter)), *OVERLAID_DIRS]
    out = []
    for raw in candidates:
        path = os.path.realpath(raw)
        if not os.path.isdir(path):
            continue
        if any(_inside(k, path) for k in keep):  # would hide something the program needs
            continue
        out.append(path)
    # parents before children, so a child under an already covered parent is skipped
    return sorted(out, key=lambda p: (p.count("/"), p))


@dataclass(frozen=True)
class MountPlan:
    """What the pre-exec hook mounts, with every string already encoded."""

    workdir: bytes
    program: bytes
    workdir_size: bytes
    scratch: bytes
    scratch_size: bytes
    overlays: tuple[bytes, ...]
    hidden: tuple[bytes, ...]


def mount_plan(*, workdir: str, scratch: str, program: str, interpreter: str, max_file_mb: int):
    size = f"size={16 * max_file_mb}m,nr_inodes=4096".encode()
    dirs = [os.path.realpath(d) for d in OVERLAID_DIRS if os.path.isdir(d)]
    overlays = tuple(d.encode() for d in sorted(dirs, key=lambda d: _inside(scratch, d)))
    return MountPlan(
        workdir=workdir.encode(),
        program=program.encode("utf-8"),
        workdir_size=size + f",mode=0755,uid={NOBODY_UID},gid={NOBODY_GID}".encode(),
        scratch=scratch.encode(),
        scratch_size=size + b",mode=0700",
        overlays=overlays,
        hidden=tuple(d.encode() for d in hidden_dirs(interpreter=interpreter)),
    )


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None):
    if _LIBC.mount(source, target, fstype, flags, data) != 0:
        raise OSError(ctypes.get_errno(), "mount failed", target.decode(errors="replace"))


def _isolate_filesystem(plan: MountPlan) -> None:
    """Runs in the child, before exec, as root, inside a fresh mount namespace."""
    _mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
    flags = _MS_NOSUID | _MS_NODEV
    # private upper layers for the copy-on-write overlays (hidden below the overlays)
    _mount(b"tmpfs", plan.scratch, b"tmpfs", flags, plan.scratch_size)
    layers = []
    for i, target in enumerate(plan.overlays):
        upper, work = plan.scratch + b"/u%d" % i, plan.scratch + b"/w%d" % i
        os.mkdir(upper, 0o1777)
        os.mkdir(work, 0o700)
        os.chmod(upper, 0o1777)
        layers.append(b"lowerdir=" + target + b",upperdir=" + upper + b",workdir=" + work)
    # plan.overlays puts the directory that holds the scratch last: once it is overlaid,
    # the scratch path no longer leads to the scratch tmpfs
    for target, options in zip(plan.overlays, layers, strict=True):
        _mount(b"overlay", target, b"overlay", flags, options)
    # the working directory: a small tmpfs with only the program in it
    _mount(b"tmpfs", plan.workdir, b"tmpfs", flags, plan.workdir_size)
    os.chdir(plan.workdir)
    fd = os.open(PROGRAM_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, plan.program)
    finally:
        os.close(fd)
    for target in plan.hidden:
        try:
            _mount(b"tmpfs", target, b"tmpfs", flags | _MS_RDONLY, b"size=4k,mode=0000")
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # e.g. inside an overlay that does not have it
                raise
    _mount(b"proc", b"/proc", b"proc", flags | _MS_NOEXEC, b"hidepid=1")


def _make_preexec(
    *,
    limits: list[tuple[int, int, int]],
    drop_privileges: bool,
    status_fd: int,
    plan: MountPlan | None,
):
    """The hook run in the child between fork and exec. It only calls functions that are
    already loaded. It writes two bytes to `status_fd`: b"1"/b"0" for "network namespace
    made" and for "file-system view set up"."""

    def preexec() -> None:
        isolated = _LIBC.unshare(CLONE_NEWNET) == 0
        fs_ok = False
        if plan is not None and _LIBC.unshare(CLONE_NEWNS) == 0:
            _isolate_filesystem(plan)  # an exception here fails the start: never half-done
            fs_ok = True
        os.write(status_fd, (b"1" if isolated else b"0") + (b"1" if fs_ok else b"0"))
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


# --- waiting and killing ---------------------------------------------------------------


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


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (once; Linux >= 3.4)."""
    if not _SUBREAPER["on"]:
        _SUBREAPER["on"] = _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return _SUBREAPER["on"]


def _real_uid(pid: str) -> int | None:
    """The real uid from /proc/<pid>/status (the owner of /proc/<pid> is not reliable:
    a process that makes itself non-dumpable shows up as owned by root)."""
    for line in Path("/proc", pid, "status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _our_sandbox_children() -> Iterator[tuple[int, str, int]]:
    """(pid, state, pgid) of each child of this process that runs as `nobody`."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            state, ppid, pgid = fields[0], int(fields[1]), int(fields[2])
            if ppid != me or _real_uid(entry.name) != NOBODY_UID:
                continue
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        yield int(entry.name), state, pgid


def _sweep(*, own_pgid: int) -> tuple[int, int]:
    """Kill and reap orphans re-parented to us. Returns (escapees killed, left alive).

    Never touches a live sandbox leader (Popen owns those) or a member of a live
    sandbox's group (its own run kills it)."""
    escaped = alive = 0
    with _LEADERS_LOCK:
        for pid, state, pgid in _our_sandbox_children():
            if pid in _LEADERS:
                continue
            if state != "Z":
                if pgid in _LEADERS:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                escaped += pgid != own_pgid
                alive += 1
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return escaped, alive


def _finish(pgid: int, *, sweep: bool, timeout_s: float) -> int:
    """After SIGKILL to the group: kill escaped descendants and wait until every member
    of the group is gone, so none counts towards the next run's process limit. Returns
    how many processes outside the group were killed."""
    deadline = time.monotonic() + timeout_s
    escaped = 0
    while True:
        alive = 0
        if sweep:
            killed, alive = _sweep(own_pgid=pgid)
            escaped += killed
        if not alive and not _group_exists(pgid):
            return escaped
        if time.monotonic() >= deadline:
            return escaped
        _kill_group(pgid)
        time.sleep(_POLL_S)


# --- I/O and cleanup -------------------------------------------------------------------


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


# --- running ---------------------------------------------------------------------------


def run_untrusted(
    program: str,
    *,
    timeout_s: float,
    memory_mb: int,
    max_processes: int,
    max_file_mb: int,
    max_output_bytes: int,
    stdin: bytes | None = None,
) -> SandboxResult:
    """Run `program` (Python source) under the limits above and return what happened.
    `stdin` (optional) is what the program reads on its standard input.

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
    scratch = tempfile.mkdtemp(prefix="dars-sandbox-cow-")
    try:
        script = Path(workdir) / PROGRAM_NAME
        script.write_text(program, encoding="utf-8")
        plan = None
        if drop:
            os.chown(workdir, NOBODY_UID, NOBODY_GID)
            os.chown(script, NOBODY_UID, NOBODY_GID)
            _become_subreaper()
            plan = mount_plan(
                workdir=workdir,
                scratch=scratch,
                program=program,
                interpreter=python,
                max_file_mb=max_file_mb,
            )
        return _execute(
            [python, "-I", "-B", PROGRAM_NAME],
            workdir=workdir,
            limits=limits,
            drop_privileges=drop,
            plan=plan,
            stdin=stdin,
            timeout_s=timeout_s,
            max_output_bytes=max_output_bytes,
            file_limit_bytes=max_file_mb * 1024 * 1024,
        )
    finally:
        _force_rmtree(workdir)
        _force_rmtree(scratch)


def _spawn_once(
    argv: list[str],
    *,
    workdir: str,
    limits: list[tuple[int, int, int]],
    drop_privileges: bool,
    plan: MountPlan | None,
    stdin: IO[bytes] | int,
    stdout: IO[bytes],
    stderr: IO[bytes],
) -> tuple[subprocess.Popen[bytes], bool, bool]:
    status_r, status_w = os.pipe()
    try:
        with _LEADERS_LOCK:
            proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=_scrubbed_env(workdir),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_make_preexec(
                    limits=limits,
                    drop_privileges=drop_privileges,
                    status_fd=status_w,
                    plan=plan,
                ),
            )
            _LEADERS.add(proc.pid)
        os.close(status_w)
        status_w = -1
        status = os.read(status_r, 2)
        return proc, status[:1] == b"1", status[1:2] == b"1"
    finally:
        if status_w != -1:
            os.close(status_w)
        os.close(status_r)


def _spawn(
    argv: list[str],
    *,
    retry_until: float,
    **kwargs,
) -> tuple[subprocess.Popen[bytes], bool, bool]:
    """Start the program. As `nobody`, exec fails with EAGAIN while other sandboxes hold
    all of nobody's processes (RLIMIT_NPROC): retry until `retry_until`."""
    while True:
        try:
            return _spawn_once(argv, **kwargs)
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
    plan: MountPlan | None,
    stdin: bytes | None,
    timeout_s: float,
    max_output_bytes: int,
    file_limit_bytes: int,
) -> SandboxResult:
    with (
        tempfile.TemporaryFile() as inp,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        if stdin is not None:
            inp.write(stdin)
            inp.flush()
            inp.seek(0)
        start = time.monotonic()
        proc, network_isolated, fs_isolated = _spawn(
            argv,
            workdir=workdir,
            limits=limits,
            drop_privileges=drop_privileges,
            plan=plan,
            stdin=inp if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            retry_until=start + timeout_s,
        )
        try:
            exited = _wait_without_reaping(proc.pid, start + timeout_s)
        finally:
            _kill_group(proc.pid)  # the leader, and anything it left behind
            returncode = proc.wait()
            with _LEADERS_LOCK:
                _LEADERS.discard(proc.pid)
            escaped = _finish(proc.pid, sweep=drop_privileges, timeout_s=_GROUP_GONE_S)
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
    if escaped and reason is None:
        reason = f"escaped its process group ({escaped} process(es) killed after the run)"
    return SandboxResult(
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        killed_reason=reason,
        duration_s=duration,
        network_isolated=network_isolated,
        privileges_dropped=drop_privileges,
        filesystem_isolated=fs_isolated,
        escaped_killed=escaped,
    )
