"""llama.cpp on CPUs with and without AMX (llama.cpp issue 20824, docs/backends.md#amx):
the CPU-feature decision, the build flags the install step passes, its wheel cache key,
and the run-time engine options. This machine may lack AMX, so the decisions are fed
fake /proc/cpuinfo texts."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dars.core import cpu

REPO = Path(__file__).resolve().parents[1]

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni \
avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni

processor\t: 1
flags\t\t: fpu avx2 amx_tile amx_int8
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse sse2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp
"""
NATIVE_AMX_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
NO_AMX_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | REPACK = 1 |"


def test_cpu_flags_are_read_from_the_first_processor() -> None:
    flags = cpu.parse_cpu_flags(SAPPHIRE_RAPIDS)
    assert {"amx_tile", "amx_int8", "amx_bf16", "avx512f"} <= flags
    assert cpu.has_amx(flags)
    assert not cpu.has_amx(cpu.parse_cpu_flags(ZEN4))
    assert "asimd" in cpu.parse_cpu_flags(GRAVITON)
    assert cpu.parse_cpu_flags("") == frozenset()
    assert cpu.read_cpu_flags("/nonexistent/cpuinfo") == frozenset()


def test_x86_builds_compile_amx_out_and_other_machines_are_left_alone() -> None:
    args = shlex.split(cpu.llama_cmake_args("x86_64"))
    for lang in ("C", "CXX"):
        flag = next(a for a in args if a.startswith(f"-DCMAKE_{lang}_FLAGS="))
        assert flag.split("=", 1)[1].split() == list(cpu.NO_AMX_CFLAGS)
    assert cpu.llama_cmake_args("aarch64") == ""
    assert cpu.llama_cmake_args("arm64", "-DGGML_NATIVE=OFF") == "-DGGML_NATIVE=OFF"


def test_a_users_cmake_args_are_kept_and_their_c_flags_extended() -> None:
    base = "-DGGML_BLAS=ON '-DCMAKE_C_FLAGS=-O3 -g'"
    args = shlex.split(cpu.llama_cmake_args("x86_64", base))
    assert args[0] == "-DGGML_BLAS=ON"
    assert args[1] == "-DCMAKE_C_FLAGS=-O3 -g " + " ".join(cpu.NO_AMX_CFLAGS)
    assert args[2] == "-DCMAKE_CXX_FLAGS=" + " ".join(cpu.NO_AMX_CFLAGS)
    assert len(args) == 3


def test_the_wheel_cache_key_changes_with_flags_cpu_and_version() -> None:
    amx, zen = cpu.parse_cpu_flags(SAPPHIRE_RAPIDS), cpu.parse_cpu_flags(ZEN4)
    base = {"version": "0.3.36", "cmake_args": cpu.llama_cmake_args("x86_64"),
            "machine": "x86_64", "flags": amx, "python": "3.11"}  # fmt: skip
    key = cpu.wheel_key(**base)
    assert key == cpu.wheel_key(**base)
    assert key != cpu.wheel_key(**{**base, "flags": zen})
    assert key != cpu.wheel_key(**{**base, "cmake_args": ""})  # an old native AMX build
    assert key != cpu.wheel_key(**{**base, "version": "0.3.37"})
    # flags that no kernel depends on do not split the cache
    assert key == cpu.wheel_key(**{**base, "flags": amx | {"ht", "tsc"}})


def test_the_build_plan_never_uses_pips_wheel_cache(tmp_path: Path) -> None:
    plan = cpu.build_plan(
        flags=cpu.parse_cpu_flags(SAPPHIRE_RAPIDS), machine="x86_64",
        env={"DARS_WHEEL_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert plan.cpu_amx and plan.version == cpu.LLAMA_CPP_VERSION
    assert Path(plan.wheel_dir).parent == tmp_path and plan.key in plan.wheel_dir
    cmd = cpu.pip_wheel_command("python", plan, "out")
    assert "--no-cache-dir" in cmd and cmd[cmd.index("--no-binary") + 1] == "llama-cpp-python"
    assert cmd[-1] == f"llama-cpp-python=={cpu.LLAMA_CPP_VERSION}"


@pytest.mark.parametrize(
    ("cpuinfo", "system_info", "extra_bufts"),
    [
        (SAPPHIRE_RAPIDS, NATIVE_AMX_BUILD, False),  # the crash of issue 20824: repack off
        (SAPPHIRE_RAPIDS, NO_AMX_BUILD, True),  # our build: AMX compiled out, repack kept
        (ZEN4, NO_AMX_BUILD, True),
        (ZEN4, NATIVE_AMX_BUILD, True),  # cannot happen natively; no AMX to crash in
        (GRAVITON, "CPU : NEON = 1 | ARM_FMA = 1 |", True),
    ],
    ids=["amx-cpu-amx-build", "amx-cpu-our-build", "no-amx", "no-amx-cpu-amx-build", "arm"],
)
def test_engine_options_turn_the_repack_off_only_where_amx_would_run(
    cpuinfo: str, system_info: str, extra_bufts: bool
) -> None:
    options = cpu.engine_options(cpu.parse_cpu_flags(cpuinfo), system_info)
    assert options.use_extra_bufts is extra_bufts
    assert options.reason


def _fake_python(tmp_path: Path) -> Path:
    """A stand-in for the venv's python that records each `-m pip ...` call (argv and
    CMAKE_ARGS) and, for `pip wheel`, writes a wheel file into the -w folder."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "python"
    wheel = "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "call = {'argv': sys.argv[1:], 'cmake': os.environ.get('CMAKE_ARGS')}\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(call) + '\\n')\n"
        "if sys.argv[1:3] == ['-m', 'pip'] and sys.argv[3] == 'wheel':\n"
        "    out = sys.argv[sys.argv.index('-w') + 1]\n"
        f"    open(os.path.join(out, {wheel!r}), 'w').close()\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_install_builds_once_with_the_flags_then_reuses_its_own_cache(tmp_path: Path) -> None:
    python = _fake_python(tmp_path)
    env = {**os.environ, "DARS_WHEEL_CACHE": str(tmp_path / "wheels"), "CMAKE_ARGS": ""}
    wheel = cpu.install_llama(str(python), env=env)
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    build, install = calls
    assert build["argv"][2] == "wheel" and "--no-cache-dir" in build["argv"]
    plan = json.loads((wheel.parent / "BUILD.json").read_text())
    assert build["cmake"] == plan["cmake_args"]
    if cpu.is_x86(plan["machine"]):
        assert all(flag in build["cmake"] for flag in cpu.NO_AMX_CFLAGS)
    assert install["argv"][2] == "install" and install["argv"][-1] == str(wheel)
    # a second install (a fresh clone's `make install`) takes the cached wheel: no build
    assert cpu.install_llama(str(python), env=env) == wheel
    calls = (tmp_path / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 3 and json.loads(calls[2])["argv"][2] == "install"


def test_make_install_builds_llama_cpp_through_the_plan_before_the_package() -> None:
    """The Makefile's install recipe runs the plan's build first, then the package."""
    out = subprocess.run(
        ["make", "-n", "-B", "install"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    build = next(i for i, line in enumerate(out) if "dars/core/cpu.py install-llama" in line)
    pkg = next(i for i, line in enumerate(out) if "dars/core/install.py" in line and " -e " in line)
    assert build < pkg


def test_the_plan_command_prints_this_machines_plan() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "pipeline/dars/core/cpu.py"), "plan"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    plan = json.loads(r.stdout)
    assert plan["version"] == cpu.LLAMA_CPP_VERSION and plan["key"] in plan["wheel_dir"]


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_the_flags_turn_amx_off_even_where_march_turns_it_on() -> None:
    """GCC gives an explicit -mno-* precedence over -march's ISA set, whatever the order
    (ggml adds -march=native after CMAKE_C_FLAGS): compiled for a Sapphire Rapids CPU,
    the AMX macros that guard ggml's AMX code are gone, AVX-512 VNNI (the repack) stays."""
    flags = shlex.split(cpu.llama_cmake_args("x86_64"))[0].split("=", 1)[1].split()

    def macros(*opts: str) -> str:
        return subprocess.run(
            ["gcc", *opts, "-dM", "-E", "-"], input="", capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip

    assert "__AMX_INT8__" in macros("-march=sapphirerapids")
    for opts in ([*flags, "-march=sapphirerapids"], ["-march=sapphirerapids", *flags]):
        got = macros(*opts)
        assert "__AMX_INT8__" not in got and "__AMX_TILE__" not in got
        assert "__AVX512VNNI__" in got
