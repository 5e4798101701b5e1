"""The `grade` params section -> (GradeConfig, workers). Read by the grade stage and by
adaptive sampling, which grades while it samples. Keys, defaults and bounds live in the
params schema (`dars.core.params`)."""

from __future__ import annotations

from dars.core.params import ParamsSource, section
from dars.graders.base import GradeConfig


def grade_settings(params: ParamsSource) -> tuple[GradeConfig, int]:
    """(GradeConfig, workers) from the `grade` section; every key has a default."""
    s = section(params, "grade")
    config = GradeConfig(
        code_timeout_s=s.code_timeout_s,
        memory_mb=s.memory_mb,
        max_processes=s.max_processes,
        max_file_mb=s.max_file_mb,
        numeric_rel_tol=s.numeric_rel_tol,
        math_timeout_s=s.math_verify_timeout_s,
    )
    return config, s.workers
