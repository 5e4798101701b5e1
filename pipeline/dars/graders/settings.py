"""The `grade` params section -> (GradeConfig, workers). Read by the grade stage and by
adaptive sampling, which grades while it samples."""

from __future__ import annotations

import difflib
from typing import Any

from dars.core.errors import ParamsError
from dars.core.params import _num, get
from dars.graders import GradeConfig

DEFAULTS: dict[str, Any] = {
    "code_timeout_s": 5,
    "memory_mb": 512,
    "max_processes": 32,
    "max_file_mb": 1,
    "numeric_rel_tol": 1e-6,
    "workers": 2,
}


def grade_settings(params: dict[str, Any]) -> tuple[GradeConfig, int]:
    """(GradeConfig, workers) from the `grade` section; every key has a default."""
    section = get(params, "grade", {})
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParamsError(f"Parameter 'grade' must be a mapping, got {section!r}")
    for key in section:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1)
            hint = f" Did you mean 'grade.{close[0]}'?" if close else ""
            raise ParamsError(
                f"Parameter 'grade.{key}' is not known.{hint} "
                f"Valid keys: {', '.join(f'grade.{k}' for k in DEFAULTS)}"
            )
    value = {k: section.get(k, d) for k, d in DEFAULTS.items()}
    config = GradeConfig(
        code_timeout_s=_num(value["code_timeout_s"], "grade.code_timeout_s", lo=0, lo_open=True),
        memory_mb=_num(value["memory_mb"], "grade.memory_mb", lo=64, integer=True),
        max_processes=_num(value["max_processes"], "grade.max_processes", lo=1, integer=True),
        max_file_mb=_num(value["max_file_mb"], "grade.max_file_mb", lo=1, integer=True),
        numeric_rel_tol=_num(value["numeric_rel_tol"], "grade.numeric_rel_tol", lo=0, hi=1),
    )
    workers = _num(value["workers"], "grade.workers", lo=1, integer=True)
    return config, workers
