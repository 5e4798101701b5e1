"""Task loaders, registered by the `kind` a task has in `params.yaml` (`prepare.tasks`).

A loader is a function called with keyword arguments only:

    load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]

`task` is the task name (the key under `prepare.tasks`), `config` its mapping and `key`
the dotted params key (`prepare.tasks.<task>`) for error messages. A loader validates its
own settings when called (raising ParamsError, before any row is produced) and returns an
iterator of raw candidate rows in source order; it does not judge the rows.
`dars.stages.prepare` validates every candidate and quarantines the bad ones. A loader that
already knows a row is unusable (a field missing from the source record, a regex that does
not match) yields it with `reject` set, so that the row is counted and written to the
quarantine file rather than skipped silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dars.core.errors import ParamsError
from dars.core.registry import Registry


@dataclass(frozen=True)
class Rejection:
    """Why a candidate row is quarantined: a `reason` (snake_case) and the `field` at fault."""

    reason: str
    field: str


@dataclass(frozen=True)
class Candidate:
    """One raw source row, before validation. Types are not trusted yet (hence `Any`)."""

    row_index: int
    source_id: Any
    prompt: Any
    reference: Any
    grader: Any
    source: str
    license: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reject: Rejection | None = None
    raw: Any = None  # the untouched source record, for the quarantine file


Loader = Callable[..., Iterator[Candidate]]

TASK_LOADERS: Registry[Loader] = Registry("task loader")


def check_keys(config: Mapping[str, Any], *, allowed: tuple[str, ...], key: str) -> None:
    """Reject settings a loader does not know (a typo would otherwise be ignored)."""
    for name in config:
        if name in allowed:
            continue
        msg = f"Parameter '{key}.{name}' is not a setting of task kind {config.get('kind')!r}."
        close = difflib.get_close_matches(str(name), allowed, n=1)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        raise ParamsError(msg + f" Valid settings: {', '.join(sorted(allowed))}.")


def int_param(
    config: Mapping[str, Any],
    name: str,
    *,
    key: str,
    default: Any = ...,
    lo: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """An integer setting of a task, `>= lo`; `default=...` makes it required."""
    if name not in config:
        if default is ...:
            raise ParamsError(f"Parameters '{key}.{name}' are missing")
        return default
    value = config[name]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (or null)" if allow_none else ""
        raise ParamsError(f"Parameter '{key}.{name}' = {value!r} is not an integer{hint}")
    if lo is not None and value < lo:
        raise ParamsError(f"Parameter '{key}.{name}' = {value!r} is out of range; allowed: >= {lo}")
    return value


def str_param(
    config: Mapping[str, Any], name: str, *, key: str, default: Any = ..., allow_none: bool = False
) -> str | None:
    """A non-empty string setting of a task; `default=...` makes it required."""
    if name not in config:
        if default is ...:
            raise ParamsError(f"Parameters '{key}.{name}' are missing")
        return default
    value = config[name]
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ParamsError(f"Parameter '{key}.{name}' = {value!r} is not a non-empty string")
    return value
