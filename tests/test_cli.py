"""The `dars` command speaks to users: --version, help for every subcommand, path flags
that default to dvc.yaml's layout, and one-line errors without a traceback."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dars
from dars import cli

REPO = Path(__file__).resolve().parents[1]


def dars_cmd(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dars", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version(tmp_path: Path) -> None:
    r = dars_cmd(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"dars {dars.__version__}"


def test_every_subcommand_has_user_facing_help() -> None:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in action._choices_actions}
    for name, sp in subparsers().items():
        assert helps.get(name) and len(helps[name]) > 15, name
        assert sp.description, name
        for a in sp._actions:
            if a.dest != "help":
                assert a.help, f"dars {name} {a.option_strings}: no help"
    assert "only parses arguments" not in (parser.description or "")


def required_argv(c: cli.Command) -> list[str]:
    """The least a command needs to parse: its positionals and required flags."""
    out = [c.name]
    for x in c.arguments():
        if not x.flags[0].startswith("-"):
            out.append(x.kwargs.get("choices", ["x"])[0])
        elif x.kwargs.get("required") or x.group:
            out += [x.flags[0], "x"]
            if x.group:
                break  # one of a mutually exclusive group
    return out


@pytest.mark.parametrize("command", cli.COMMANDS, ids=[c.name for c in cli.COMMANDS])
def test_every_command_calls_its_function_with_its_keywords(command) -> None:
    """The table is the adapter: each argument feeds one keyword of the target function,
    every required parameter is fed (a renamed keyword fails here)."""
    import inspect

    args = cli.build_parser().parse_args(required_argv(command))
    assert args.func is command
    got = set(command.keywords(args))
    params = inspect.signature(command.function()).parameters
    required = {k for k, p in params.items() if p.default is inspect.Parameter.empty}
    assert required <= got <= set(params), (command.name, sorted(got), sorted(params))


def stage_commands() -> list[tuple[str, list[str]]]:
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    model = next(iter(yaml.safe_load((REPO / "params.yaml").read_text())["models"]))
    out = []
    for name, stage in doc["stages"].items():
        body = stage["do"] if "foreach" in stage else stage
        cmd = body["cmd"].replace("${key}", model)
        out.append((name, shlex.split(cmd)[1:]))
    return out


@pytest.mark.parametrize(("stage", "argv"), stage_commands(), ids=[s for s, _ in stage_commands()])
def test_path_flags_default_to_the_dvc_yaml_layout(stage: str, argv: list[str]) -> None:
    """Every path dvc.yaml passes is the flag's default (or derives from the model)."""
    sp = subparsers()[argv[0]]
    given = vars(cli.build_parser().parse_args(argv))
    required = [a for a in sp._actions if a.required]
    minimal = [x for a in required for x in (a.option_strings[0], given[a.dest])]
    defaults = vars(cli.build_parser().parse_args([argv[0], *minimal]))
    for key, value in given.items():
        if defaults[key] is None and key == "out":
            continue  # per model: checked below
        assert defaults[key] == value, (
            f"{stage}: --{key} defaults to {defaults[key]!r}, not {value!r}"
        )
    if argv[0] == "sample":
        assert given["out"] == f"data/generations/{given['model']}.parquet"
    if argv[0] == "grade":
        assert given["out"] == f"data/outcomes/{Path(given['generations']).name}"


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    r = dars_cmd(tmp_path, "split")  # data/queries.parquet does not exist here
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("dars split: error:") and "queries" in r.stderr
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.parquet").write_text("not parquet")
    r = dars_cmd(tmp_path, "summary")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "labels" in r.stderr


def test_unknown_params_file_is_one_line(tmp_path: Path) -> None:
    r = dars_cmd(tmp_path, "check-params", "--params", "nope.yaml")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "'nope.yaml' does not exist" in r.stderr
