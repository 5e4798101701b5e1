"""`prepare.tasks`, checked before any loader runs: a non-empty mapping of task name ->
{kind: <a registered loader>, grader: <a known grader>, ...} (each loader checks its own
keys when it is called)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dars.core.errors import ParamsError, UnknownNameError
from dars.core.params import ParamsSource, section
from dars.core.registry import unknown_name_message
from dars.core.schema import GRADERS
from dars.tasks.base import TASK_LOADERS


def task_configs(params: ParamsSource) -> dict[str, Mapping[str, Any]]:
    """`prepare.tasks`, checked: a non-empty mapping of name -> {kind: <known kind>, ...}."""
    tasks = section(params, "prepare").tasks
    if not tasks:
        raise ParamsError(
            "Parameter 'prepare.tasks' must be a non-empty mapping of "
            "task name -> {kind: ..., ...}; valid kinds: " + ", ".join(TASK_LOADERS.names())
        )
    out: dict[str, Mapping[str, Any]] = {}
    for name in sorted(tasks, key=str):
        config = tasks[name]
        key = f"prepare.tasks.{name}"
        if not isinstance(config, Mapping):
            raise ParamsError(f"Parameter '{key}' must be a mapping with a 'kind', got {config!r}")
        if "kind" not in config:
            raise ParamsError(
                f"Parameters '{key}.kind' are missing; valid kinds: "
                + ", ".join(TASK_LOADERS.names())
            )
        if not isinstance(config["kind"], str):
            raise ParamsError(
                f"Parameter '{key}.kind' = {config['kind']!r} is not a string; valid kinds: "
                + ", ".join(TASK_LOADERS.names())
            )
        try:
            TASK_LOADERS.get(config["kind"])
        except UnknownNameError as exc:
            raise ParamsError(f"Parameter '{key}.kind': {exc}") from exc
        grader = config.get("grader", GRADERS[0])
        if grader not in GRADERS:
            raise ParamsError(
                f"Parameter '{key}.grader': "
                + unknown_name_message("grader", grader, sorted(GRADERS))
            )
        out[str(name)] = config
    return out
