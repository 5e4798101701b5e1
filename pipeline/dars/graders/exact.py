"""Exact match after SQuAD-style normalisation (casefold, no punctuation, no articles).

The reference is one answer, or a JSON list of acceptable answers. The completion
matches if either the whole text or the text after its last "answer:" / "answer is"
marker (to the end of that line) equals one of them after normalisation.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from typing import Any

from dars.graders.base import GRADERS, GradeConfig, GradeResult, error_result, unparsable_result

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d"}
_ANSWER = re.compile(r"\banswer\b\**\s*(?:is\b\s*:?|[:=])\**[ \t]*(?P<rest>[^\n]*)", re.IGNORECASE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def parse_reference(reference: str) -> list[str] | None:
    """The acceptable answers, normalised; None if there is none."""
    answers: Any = reference
    if reference.lstrip().startswith("["):
        try:
            answers = json.loads(reference)
        except json.JSONDecodeError:
            answers = reference
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return None
    normalised = [n for n in (normalise(a) for a in answers) if n]
    return normalised or None


def candidates(completion: str) -> list[str]:
    """Normalised readings of the completion, most specific first."""
    found = []
    markers = list(_ANSWER.finditer(completion))
    if markers:
        found.append(normalise(markers[-1]["rest"]))
    found.append(normalise(completion))
    return [c for c in found if c]


class ExactGrader:
    name = "exact"
    higher_is_better = True

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """A reference with no non-empty answer can never be matched."""
        return ("bad_reference", "reference") if parse_reference(reference) is None else None

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        expected = parse_reference(reference)
        if expected is None:
            return error_result(f"reference {reference!r} holds no non-empty answer")
        readings = candidates(completion)
        if not readings:
            return unparsable_result("the completion is empty after normalisation")
        hit = next((r for r in readings if r in expected), None)
        return GradeResult(
            score=1.0 if hit is not None else 0.0,
            parsed=hit if hit is not None else readings[0],
            grade_status="ok",
            detail=None,
        )


GRADERS.register(ExactGrader.name)(ExactGrader())
