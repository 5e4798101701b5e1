"""Install the package into the venv with uv, falling back to pip (`make install`).

`pip install -e '.[cpu,embed,dev]'` takes 51-66 s on 2 cores, most of it resolving and
unpacking; `uv pip install` does the same in 8-10 s (benchmarks/results/test_suite.json).
uv does not read pip's configuration, and machines put real settings there: a local
wheel folder (`find-links`, where the CPU torch wheel lies), extra indexes, and a
constraint file that caps torch. So this script reads `pip config list` (the files and
the `PIP_*` variables, as pip itself would merge them) and hands each setting to uv as
the same command-line option. pip picks the best version across all indexes; uv's
default is the first index that has the name, hence `--index-strategy unsafe-best-match`.

Whenever uv cannot do what pip would (a pip setting that has no translation here, uv
itself failing to install, or uv failing to resolve or install), the install is done by
pip, with one line saying why. Standard library only: it runs before the package is
installed (`python pipeline/dars/core/install.py -e '.[cpu,embed,dev]'`).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

# pip option -> uv option, for options that take values (a list: each value its own flag)
VALUE_OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
# pip options that change nothing about what gets installed, or are handled separately
IGNORED_OPTIONS = frozenset({
    "disable-pip-version-check", "default-timeout", "timeout", "progress-bar", "quiet",
    "verbose", "no-compile", "root-user-action", "require-virtualenv", "no-input",
    "cache-dir", "no-cache-dir", "cert", "no-color",
})  # fmt: skip
# pip reads its options from these sections; later ones take precedence (pip's own order)
SECTIONS = ("global", "install", ":env:")
# the uv release this script is checked with (one version, so that installs repeat)
UV_REQUIREMENT = "uv==0.13.9"


class Fallback(Exception):
    """uv cannot do this install the way pip would; pip does it."""


def parse_pip_config(listing: str) -> dict[str, str]:
    """`pip config list` output ("section.key='value'" lines) merged into one dict.

    Keys from `install` override `global`, and `PIP_*` variables (`:env:`) override both.
    Sections of other commands (`download`, `wheel`, ...) do not apply to `pip install`.
    """
    by_section: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        if "=" not in line or "." not in line.split("=", 1)[0]:
            continue
        name, raw = line.split("=", 1)
        section, key = name.rsplit(".", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        by_section.setdefault(section, {})[key] = str(value)
    merged: dict[str, str] = {}
    for section in SECTIONS:
        merged.update(by_section.get(section, {}))
    return merged


def uv_options(config: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The uv flags and environment equivalent to pip's settings, or `Fallback`."""
    flags = ["--index-strategy", "unsafe-best-match"]
    env: dict[str, str] = {}
    for key, value in sorted(config.items()):
        if key in VALUE_OPTIONS:
            for item in value.split():
                flags += [VALUE_OPTIONS[key], item]
        elif key == "no-index":
            if value.lower() in ("1", "true", "yes", "on"):
                flags.append("--no-index")
        elif key == "trusted-host":
            for host in value.split():
                flags += ["--allow-insecure-host", host]
        elif key == "cert":
            env["SSL_CERT_FILE"] = value  # uv's own roots would ignore a site's CA bundle
        elif key not in IGNORED_OPTIONS:
            raise Fallback(f"pip setting {key}={value!r} has no uv translation here")
    return flags, env


def pip_config(python: str) -> dict[str, str]:
    done = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise Fallback(f"`pip config list` failed: {done.stderr.strip()[-200:]}")
    return parse_pip_config(done.stdout)


def uv_command(python: str, requirements: Sequence[str], flags: Sequence[str]) -> list[str]:
    uv = os.path.join(os.path.dirname(python), "uv")
    return [uv, "pip", "install", "--python", python, *flags, *requirements]


def install_uv(python: str) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-compile", UV_REQUIREMENT],
        check=False,
    )
    if done.returncode != 0:
        raise Fallback(f"`pip install {UV_REQUIREMENT}` failed (exit {done.returncode})")


def install(requirements: Sequence[str], python: str = sys.executable,
            environ: Mapping[str, str] = os.environ) -> str:  # fmt: skip
    """Install `requirements` (pip's syntax) into `python`'s environment; says which tool."""
    if environ.get("DARS_INSTALLER", "uv") == "uv":
        try:
            flags, extra_env = uv_options(pip_config(python))
            install_uv(python)
            command = uv_command(python, requirements, flags)
            print("uv:", " ".join(command), flush=True)
            done = subprocess.run(command, env={**environ, **extra_env}, check=False)
            if done.returncode == 0:
                return "uv"
            raise Fallback(f"uv exited with {done.returncode}")
        except Fallback as why:
            print(f"install: {why}; installing with pip instead", flush=True)
    subprocess.run([python, "-m", "pip", "install", "--no-compile", *requirements],
                   check=True)  # fmt: skip
    return "pip"


def main(argv: Sequence[str] | None = None) -> int:
    requirements = list(sys.argv[1:] if argv is None else argv)
    if not requirements:
        print("usage: python pipeline/dars/core/install.py REQUIREMENT... "
              "(pip's syntax, e.g. -e '.[cpu,embed,dev]'); DARS_INSTALLER=pip skips uv",
              file=sys.stderr)  # fmt: skip
        return 2
    install(requirements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
