"""`dars sample` runs its engine in a worker process, so that a native crash is one clear
line, never a lost run (docs/backends.md#amx).

An engine written in C (llama.cpp, vLLM's kernels) can die of a signal: llama.cpp's AMX
path segfaults on Q4_K weights (llama.cpp issue 20824). In-process, that kills `dars
sample` with no message (DVC reports "exited with -11") and, in a test session, every
later test. Here the command re-runs itself as a child (`python -m dars sample ...` with
WORKER_ENV set); the child writes its checkpoint shards atomically as each unit finishes,
so what finished before a crash is on disk, and the parent turns a death by signal into
one line naming the model configuration, the signal, the shards kept and the likely
cause. A rerun resumes from the kept shards.

The cost is one more interpreter start (the parent imports only the standard library and
this module), well under a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

WORKER_ENV = "DARS_SAMPLE_WORKER"  # set in the child: run the stage in-process


def in_worker(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return env.get(WORKER_ENV) == "1"


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def count_shards(shard_dir: Path) -> int:
    return sum(1 for _ in shard_dir.glob("*.parquet")) if shard_dir.is_dir() else 0


def crash_message(
    *, model: str, returncode: int, shards_before: int, shards_after: int, shard_dir: Path,
    cpu_amx: bool,
) -> str:  # fmt: skip
    """The one line a crashed engine leaves (without the `dars sample: error:` prefix)."""
    sig = signal_name(returncode)
    when = (
        "before finishing its first work unit"
        if shards_after == shards_before
        else (f"after {shards_after - shards_before} work units of this run")
    )
    cause = (
        "this CPU has AMX: likely llama.cpp issue 20824 (reinstall with `make install`, "
        "which compiles AMX out)"
        if cpu_amx
        else "a native crash of the engine"
    )
    return (
        f"the engine of model {model!r} crashed ({sig}) {when}; {shards_after} completed "
        f"checkpoint shards kept in {shard_dir} (a rerun resumes from them); {cause}; "
        "see docs/backends.md#amx"
    )


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGKILL when the parent dies, so a killed
    `dars sample` (DVC interrupted, a test's SIGKILL) never leaves an engine running on."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_sample_in_worker(
    argv: Sequence[str], *, model: str, checkpoint_dir: str, python: str = sys.executable
) -> int:
    """Run `dars <argv>` (a sample command) in a child process; return its exit status,
    printing the one-line crash message when it died of a signal."""
    from dars.core.cpu import has_amx, read_cpu_flags

    shard_dir = Path(checkpoint_dir) / model
    before = count_shards(shard_dir)
    env = {**os.environ, WORKER_ENV: "1"}
    proc = subprocess.run([python, "-m", "dars", *argv], env=env, preexec_fn=_die_with_parent)
    if proc.returncode >= 0:
        return proc.returncode
    message = crash_message(
        model=model, returncode=proc.returncode, shards_before=before,
        shards_after=count_shards(shard_dir), shard_dir=shard_dir,
        cpu_amx=has_amx(read_cpu_flags()),
    )  # fmt: skip
    # the child may have died in the middle of a progress bar's line: start a fresh one
    print(f"\ndars sample: error: {message}", file=sys.stderr)
    return 128 + (-proc.returncode)
