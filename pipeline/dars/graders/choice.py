"""Multiple choice: find the chosen letter (A-J) and compare it with the reference letter."""

from __future__ import annotations

import re
from typing import Any

from dars.graders import (
    GRADERS,
    GradeConfig,
    GradeResult,
    error_result,
    unparsable_result,
)

LETTERS = "ABCDEFGHIJ"
_LETTER = rf"[\(\[]?\s*(?P<letter>[{LETTERS}])\s*[\)\]]?(?![A-Za-z0-9'])"

# In order of trust; within a rule the last occurrence wins (models conclude at the end).
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "answer marker",
        re.compile(
            r"\b(?:answer|correct\s+(?:option|choice))\b\**\s*(?:is\b\s*:?|[:=])?\s*"
            r"(?:option\s+|choice\s+)?"
            r"\**\s*" + _LETTER,
            re.IGNORECASE,
        ),
    ),
    ("bold letter", re.compile(r"\*\*\s*" + _LETTER + r"\s*[.:]?\s*\*\*")),
    ("lone letter", re.compile(r"^\s*" + _LETTER + r"\s*[.:]?\s*$", re.MULTILINE)),
)


def extract(text: str) -> tuple[str, str] | None:
    """(letter, rule) of the chosen option, or None."""
    for rule, pattern in _RULES:
        hits = [m["letter"] for m in pattern.finditer(text) if m["letter"].isupper()]
        if hits:
            return hits[-1], rule
    return None


def parse_reference(reference: str) -> str | None:
    ref = reference.strip().strip("()[]. ").upper()
    return ref if len(ref) == 1 and ref in LETTERS else None


class ChoiceGrader:
    name = "choice"
    higher_is_better = True

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        expected = parse_reference(reference)
        if expected is None:
            return error_result(
                f"reference {reference!r} is not a letter {LETTERS[0]}-{LETTERS[-1]}"
            )
        got = extract(completion)
        if got is None:
            return unparsable_result("no option letter in the completion")
        letter, rule = got
        return GradeResult(
            score=1.0 if letter == expected else 0.0,
            parsed=letter,
            grade_status="ok",
            detail=f"{rule}; reference {expected}",
        )


GRADERS.register(ChoiceGrader.name)(ChoiceGrader())
