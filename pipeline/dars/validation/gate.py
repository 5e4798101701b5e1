"""The one "validation passed" gate: the stages after `validate` (aggregate, card) and
`dars publish` read reports/validation.json through `require_passed`, which is strict:
the report must exist, be JSON, and hold `success` exactly `true` (a missing key, null,
or the string "true" fail too). It lives apart from `dars.validation.report` so that the
stages that only read the verdict do not import Great Expectations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dars.core.errors import DarsError, ValidationFailedError
from dars.core.io import read_json


def require_passed(
    path: str | Path,
    *,
    refusing: str,
    error: type[DarsError] = ValidationFailedError,
) -> dict[str, Any]:
    """The report at `path` when it says `success: true`; else `error` with one line that
    names the file, its `success` value, the first failed checks and what was refused
    (`refusing`, e.g. "aggregate labels")."""
    report = read_json(path, what="validation report", hint="run `dars validate`")
    success = report.get("success") if isinstance(report, dict) else None
    if success is not True:
        failed = (report.get("failed") if isinstance(report, dict) else None) or []
        raise error(
            f"refusing to {refusing}: validation report {str(path)!r} has success={success!r}"
            + (f" (failed: {', '.join(map(str, failed[:5]))})" if failed else "")
            + "; fix the build until `dars validate` passes, then `dvc repro`"
        )
    return report
