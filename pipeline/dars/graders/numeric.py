"""Numeric answers: prefer an explicit final answer, else the last number in the text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from dars.graders.base import GRADERS, GradeConfig, GradeResult, error_result, unparsable_result

# A signed number with optional "$", thousands commas, decimals, and an optional "/den".
# The sign or first digit may not follow a letter, digit or dot ("5-3" is 5 and 3, not -3).
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+])?\$?"
    r"(?P<body>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<den>\d+(?:\.\d+)?))?"
    r"(?![\d])"
)
_HASHES = re.compile(r"####")
_ANSWER = re.compile(r"\banswer\b\**\s*(?:is\b|[:=])", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


@dataclass(frozen=True)
class Extracted:
    value: float
    text: str
    rule: str


def normalise(text: str) -> str:
    """Unicode minus, LaTeX fractions and LaTeX thousands separators to plain text."""
    text = text.replace("\u2212", "-").replace("{,}", ",").replace("\\!", "")
    return _FRAC.sub(r"\1/\2", text)


def _value(match: re.Match[str]) -> float | None:
    value = float(match["body"].replace(",", ""))
    if match["den"] is not None:
        den = float(match["den"])
        if den == 0:
            return None
        value /= den
    return -value if match["sign"] == "-" else value


def numbers(text: str) -> list[tuple[float, str]]:
    """All numbers in `text`, in order, as (value, matched text)."""
    found = []
    for match in _NUMBER.finditer(text):
        value = _value(match)
        if value is not None and math.isfinite(value):
            found.append((value, match.group(0).strip()))
    return found


def _boxed_contents(text: str) -> list[str]:
    """The contents of every \\boxed{...}, with nested braces."""
    contents = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                contents.append(text[start:i])
                break
    return contents


def _first_after_last_marker(text: str, marker: re.Pattern[str]) -> tuple[float, str] | None:
    """The first number after the last marker that is followed by a number."""
    for match in reversed(list(marker.finditer(text))):
        found = numbers(text[match.end() :])
        if found:
            return found[0]
    return None


def extract(text: str) -> Extracted | None:
    text = normalise(text)
    for content in reversed(_boxed_contents(text)):
        found = numbers(content)
        if found:
            return Extracted(*found[-1], rule="boxed")
    for marker, rule in ((_HASHES, "####"), (_ANSWER, "answer marker")):
        hit = _first_after_last_marker(text, marker)
        if hit is not None:
            return Extracted(*hit, rule=rule)
    found = numbers(text)
    if found:
        return Extracted(*found[-1], rule="last number")
    return None


def parse_reference(reference: str) -> float | None:
    found = numbers(normalise(reference))
    return found[0][0] if len(found) == 1 else None


def format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def matches(predicted: float, reference: float, *, rel_tol: float) -> bool:
    return math.isclose(predicted, reference, rel_tol=rel_tol, abs_tol=rel_tol)


class NumericGrader:
    name = "numeric"
    higher_is_better = True

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """A reference that is not exactly one number can never be graded."""
        return ("bad_reference", "reference") if parse_reference(reference) is None else None

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        expected = parse_reference(reference)
        if expected is None:
            return error_result(f"reference {reference!r} is not exactly one number")
        got = extract(completion)
        if got is None:
            return unparsable_result("no number in the completion")
        ok = matches(got.value, expected, rel_tol=config.numeric_rel_tol)
        return GradeResult(
            score=1.0 if ok else 0.0,
            parsed=format_number(got.value),
            grade_status="ok",
            detail=f"{got.rule}: {got.text!r} vs reference {format_number(expected)}",
        )


GRADERS.register(NumericGrader.name)(NumericGrader())
