"""dars.graders: the registry and its built-in plugins (types in `dars.graders.base`)."""

from __future__ import annotations

# Importing the modules registers their graders.
from dars.graders import choice, code, exact, f1, math, numeric  # noqa: E402, F401
from dars.graders.base import (  # noqa: F401
    GRADERS,
    GradeConfig,
    Grader,
    GradeResult,
    error_result,
    final_text,
    get_grader,
    grade_one,
    unparsable_result,
)
