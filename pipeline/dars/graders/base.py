"""Graders, registered by name (lm-eval-harness style).

Each grader turns one completion into a GradeResult. A model that gives no usable answer
gets score 0.0 ("unparsable"): that is a wrong answer. Only a failure on our side (a
broken reference, a sandbox that cannot start) gives score None with grade_status "error".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from dars.core.registry import Registry
from dars.core.schema import GRADE_STATUSES


@dataclass(frozen=True)
class GradeConfig:
    numeric_rel_tol: float = 1e-6
    code_timeout_s: float = 5.0
    math_timeout_s: float = 10.0  # one math-verify check (graders/math.py)
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 1
    max_output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class GradeResult:
    score: float | None
    parsed: str | None
    grade_status: str
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.grade_status not in GRADE_STATUSES:
            raise ValueError(
                f"grade_status {self.grade_status!r} is not one of {', '.join(GRADE_STATUSES)}"
            )
        if (self.score is None) != (self.grade_status == "error"):
            raise ValueError(
                f"score must be None exactly when grade_status is 'error' "
                f"(got score={self.score!r}, grade_status={self.grade_status!r})"
            )


def final_text(completion: str) -> str:
    """The completion after its last `</think>`: a reasoning model's scratch work may hold
    answers it later revised, so the answer graders (math, f1, choice) read only what
    follows its thinking. Text without `</think>` is returned as is."""
    head, sep, tail = completion.rpartition("</think>")
    return tail if sep else completion


def error_result(detail: str) -> GradeResult:
    """Our failure (bad reference, sandbox could not start): no score."""
    return GradeResult(score=None, parsed=None, grade_status="error", detail=detail)


def unparsable_result(detail: str) -> GradeResult:
    """The model gave no answer we can read: a wrong answer."""
    return GradeResult(score=0.0, parsed=None, grade_status="unparsable", detail=detail)


class Grader(Protocol):
    """A grader. One that runs its check in a helper process (code, math) also sets the
    class attribute `waits_on_subprocess = True`: the `grade` stage then grades its rows
    on a thread pool (`dars.graders.batch`); the others are graded inline."""

    name: str
    higher_is_better: bool

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult: ...

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """(reason, field) when a query row could never be graded (a reference this
        grader cannot read, a prompt without what the grader needs), else None. `prepare`
        quarantines such rows."""
        ...


GRADERS: Registry[Grader] = Registry("grader")


def get_grader(name: str) -> Grader:
    return GRADERS.get(name)


def grade_one(
    generation: dict[str, Any], query: dict[str, Any], config: GradeConfig
) -> GradeResult:
    """Grade one generation row; a failed generation is never graded (score None)."""
    if generation["status"] != "ok":
        return error_result("generation failed; not graded")
    grader = get_grader(query["grader"])
    return grader.grade(generation["completion"], query["reference"], query, config)
