"""CPU features and what the llama.cpp engine does about them (docs/backends.md#amx).

llama.cpp issue 20824: on Intel CPUs with AMX (Sapphire Rapids and later), a native build
of llama.cpp compiles in its AMX matrix-multiply path and picks it at model load for the
Q4_K weights of our gemma GGUF; it then crashes with SIGSEGV in
`ggml_backend_amx_mul_mat` at the first decode. Two defences, both decided here:

1. **Build time** (`llama_cmake_args`, run by `make install` through this file as a
   script): on x86-64, llama-cpp-python is compiled with `-mno-amx-tile -mno-amx-int8
   -mno-amx-bf16` added to the C and C++ flags. GCC and Clang give an explicit `-mno-*`
   precedence over the ISA set that `-march=native` turns on, so the AMX code is not
   compiled while the AVX-512/AVX2 weight repack (llama.cpp's "extra buffer types") is
   kept. On a CPU without AMX the flags change nothing. The wheel is built with pip's
   cache off and kept in our own cache folder keyed by the version, the flags and the
   CPU's feature flags (`wheel_key`), so that an earlier AMX build can never come back.
2. **Run time** (`engine_options`): if the llama.cpp that is loaded was built with AMX
   anyway (a user's own install: `llama_print_system_info()` reports `AMX_INT8 = 1`) and
   the CPU reports AMX, the extra buffer types are turned off for the model load
   (`use_extra_bufts = False`), the workaround measured on an AMX machine in issue 22.

This module uses only the standard library: `make install` runs it before the package is
installed (`python pipeline/dars/core/cpu.py install-llama`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

LLAMA_CPP_PYTHON = "llama-cpp-python"
LLAMA_CPP_VERSION = "0.3.36"  # the version the llama_cpp backend's C-API calls are checked on
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")  # /proc/cpuinfo names
NO_AMX_CFLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
# CPU flags that decide which kernels a native build compiles (the repack's paths).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "fma",
                "f16c", "avx512_bf16", *AMX_FLAGS)  # fmt: skip
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor in a /proc/cpuinfo text (x86 `flags`,
    arm `Features`); empty when there is none."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def read_cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    try:
        return parse_cpu_flags(Path(path).read_text(errors="replace"))
    except OSError:
        return frozenset()


def has_amx(flags: Iterable[str]) -> bool:
    return any(flag in AMX_FLAGS for flag in flags)


def is_x86(machine: str) -> bool:
    return machine.lower() in X86_MACHINES


def llama_cmake_args(machine: str, base: str = "") -> str:
    """CMAKE_ARGS for building llama-cpp-python on `machine` (platform.machine()).

    On x86 the AMX code is compiled out (whatever the CPU: a build must not depend on
    whether this CPU has AMX, and the flags are no-ops without it); other machines get
    `base` unchanged (the flags are x86 options that other compilers reject). A user's own
    CMAKE_ARGS are kept, with our flags appended to any C/C++ flags they set."""
    if not is_x86(machine):
        return base.strip()
    extra = " ".join(NO_AMX_CFLAGS)
    args = shlex.split(base)
    out: list[str] = []
    seen = {"C": False, "CXX": False}
    for arg in args:
        for lang in seen:
            prefix = f"-DCMAKE_{lang}_FLAGS="
            if arg.startswith(prefix):
                arg = prefix + " ".join(filter(None, [arg[len(prefix) :].strip(), extra]))
                seen[lang] = True
        out.append(arg)
    out += [f"-DCMAKE_{lang}_FLAGS={extra}" for lang, done in seen.items() if not done]
    return shlex.join(out)


def wheel_key(*, version: str, cmake_args: str, machine: str, flags: Iterable[str],
              python: str) -> str:  # fmt: skip
    """The cache key of a llama-cpp-python wheel: a native build is only valid for the same
    version, build flags, Python and CPU kernels."""
    kernel = sorted(f for f in flags if f in KERNEL_FLAGS)
    blob = json.dumps(
        {
            "version": version,
            "cmake_args": cmake_args,
            "machine": machine,
            "python": python,
            "cpu": kernel,
        },
        sort_keys=True,  # fmt: skip
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def wheel_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    root = env.get("DARS_WHEEL_CACHE") or str(
        Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dars" / "wheels"
    )
    return Path(root)


@dataclass(frozen=True)
class BuildPlan:
    """What `install-llama` builds and where it keeps it."""

    version: str
    machine: str
    cpu_amx: bool
    cmake_args: str
    key: str
    wheel_dir: str


def build_plan(
    *, flags: Iterable[str], machine: str, env: Mapping[str, str] = os.environ,
    python: str = f"{sys.version_info.major}.{sys.version_info.minor}",
) -> BuildPlan:  # fmt: skip
    flags = frozenset(flags)
    cmake = llama_cmake_args(machine, env.get("CMAKE_ARGS", ""))
    key = wheel_key(version=LLAMA_CPP_VERSION, cmake_args=cmake, machine=machine, flags=flags,
                    python=python)  # fmt: skip
    where = wheel_cache_dir(env) / f"{LLAMA_CPP_PYTHON}-{LLAMA_CPP_VERSION}-{key}"
    return BuildPlan(LLAMA_CPP_VERSION, machine, has_amx(flags), cmake, key, str(where))


def pip_wheel_command(python: str, plan: BuildPlan, out: str) -> list[str]:
    """Build from source, never from pip's wheel cache (it is keyed by the download, not
    by CMAKE_ARGS, and would hand back an AMX build made before this fix)."""
    return [python, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
            "--no-binary", LLAMA_CPP_PYTHON, "-w", out,
            f"{LLAMA_CPP_PYTHON}=={plan.version}"]  # fmt: skip


def install_llama(python: str = sys.executable, *, env: Mapping[str, str] = os.environ) -> Path:
    """Build (once per key) and install llama-cpp-python with the flags of `build_plan`."""
    plan = build_plan(flags=read_cpu_flags(), machine=platform.machine(), env=env)
    where = Path(plan.wheel_dir)
    wheels = sorted(where.glob("*.whl")) if where.is_dir() else []
    print(f"llama-cpp-python {plan.version}: CMAKE_ARGS={plan.cmake_args!r} "
          f"(cpu amx={plan.cpu_amx}, key {plan.key})", flush=True)  # fmt: skip
    if not wheels:
        print(f"building it from source (a few minutes) into {where}", flush=True)
        where.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=where.parent) as tmp:
            build_env = {**env, "CMAKE_ARGS": plan.cmake_args}
            subprocess.run(pip_wheel_command(python, plan, tmp), env=build_env, check=True)
            built = sorted(Path(tmp).glob("*.whl"))
            if len(built) != 1:
                raise SystemExit(f"pip wheel left {len(built)} wheels in {tmp}; expected one")
            (Path(tmp) / "BUILD.json").write_text(json.dumps(asdict(plan), indent=2) + "\n")
            if where.exists():  # another install finished first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.rename(tmp, where)
                os.makedirs(tmp)  # TemporaryDirectory removes it again
        wheels = sorted(where.glob("*.whl"))
    else:
        print(f"using the cached build {wheels[0]}", flush=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheels[0])],
        check=True,
    )
    return wheels[0]


# ---------------------------------------------------------------------------------------
# Run time


def build_has_amx(system_info: str) -> bool:
    """Whether a llama.cpp build reports AMX kernels (`llama_print_system_info()`)."""
    return any(f"{name} = 1" in system_info for name in ("AMX_INT8", "AMX_BF16", "AMX"))


@dataclass(frozen=True)
class EngineOptions:
    use_extra_bufts: bool
    reason: str


def engine_options(flags: Iterable[str], system_info: str) -> EngineOptions:
    """The model-load options for this CPU and this llama.cpp build."""
    cpu, build = has_amx(flags), build_has_amx(system_info)
    if cpu and build:
        return EngineOptions(
            False,
            "the CPU and this llama.cpp build both have AMX (llama.cpp issue 20824): "
            "weight repacking (extra buffer types) off",  # fmt: skip
        )
    if cpu:
        return EngineOptions(True, "the CPU has AMX, this llama.cpp build has it compiled out")
    return EngineOptions(True, "the CPU has no AMX")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python pipeline/dars/core/cpu.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("plan", help="print the llama-cpp-python build plan for this machine")
    sub.add_parser("install-llama", help="build (cached by key) and install llama-cpp-python")
    args = parser.parse_args(argv)
    if args.cmd == "plan":
        plan = build_plan(flags=read_cpu_flags(), machine=platform.machine())
        print(json.dumps(asdict(plan), indent=2))
    else:
        install_llama()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
