"""Multiple choice: find the chosen letter (A-J) and compare it with the reference letter.

Readings, in order of trust (within a rule the last occurrence wins: models conclude at
the end):
1. an answer marker: `Answer: C`, `Final Answer: C`, `The answer is (C)`, `The correct
   option is C`, with or without brackets or bold;
2. the final non-empty line in option style: `(C)`, `C)`, `C.`, or `C. <option text>`;
3. a bold letter, `**C**`;
4. a line holding only a letter.
If the final answer names two letters (`Answer: A or B`, `Final Answer: (A) and (C)`,
`Answer: A, B`), the completion is `unparsable`: it did not choose.

`check(prompt, reference)` (used by `prepare`) rejects a query whose prompt lists no
options (`no_options`: fewer than two option labels such as `(A)` or a line starting
`A.`/`A)`) or whose reference is not one of the listed letters (`bad_reference`).
"""

from __future__ import annotations

import re
from typing import Any

from dars.graders.base import (
    GRADERS,
    GradeConfig,
    GradeResult,
    error_result,
    final_text,
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
    (
        "final option line",
        re.compile(r"^\s*\**\s*[\(\[]?\s*(?P<letter>[" + LETTERS + r"])\s*(?:[\)\]]|\.(?=\s|$))"),
    ),
    ("bold letter", re.compile(r"\*\*\s*" + _LETTER + r"\s*[.:]?\s*\*\*")),
    ("lone letter", re.compile(r"^\s*" + _LETTER + r"\s*[.:]?\s*$", re.MULTILINE)),
)
# After a marker's letter: another letter joined by "or", "and", ",", "/" or "&".
_ANOTHER = re.compile(
    r"\s*\**\s*(?:,|/|&|\bor\b|\band\b)\s*(?:option\s+|choice\s+)?\**\s*" + _LETTER
)
# Option labels in a prompt: "(C)" anywhere, or "C." / "C)" / "C:" starting a line.
_OPTION_LABEL = re.compile(
    r"\((?P<p>[" + LETTERS + r"])\)|^[ \t]*(?P<l>[" + LETTERS + r"])[.):][ \t]+\S", re.MULTILINE
)


class Ambiguous(str):
    """The final answer named several letters (the text says which)."""


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def extract(text: str) -> tuple[str, str] | Ambiguous | None:
    """(letter, rule) of the chosen option, Ambiguous if the final answer names several
    letters, or None."""
    for rule, pattern in _RULES:
        source = _last_line(text) if rule == "final option line" else text
        hits = [m for m in pattern.finditer(source) if m["letter"].isupper()]
        if not hits:
            continue
        last = hits[-1]
        if rule == "answer marker":
            more = _ANOTHER.match(source, last.end())
            if more is not None and more["letter"].isupper() and more["letter"] != last["letter"]:
                return Ambiguous(f"{last['letter']} and {more['letter']}")
        return last["letter"], rule
    return None


def option_letters(prompt: str) -> list[str]:
    """The option labels a prompt lists, in order of first appearance."""
    seen: list[str] = []
    for match in _OPTION_LABEL.finditer(prompt):
        letter = match["p"] or match["l"]
        if letter not in seen:
            seen.append(letter)
    return seen


def parse_reference(reference: str) -> str | None:
    ref = reference.strip().strip("()[]. ").upper()
    return ref if len(ref) == 1 and ref in LETTERS else None


class ChoiceGrader:
    name = "choice"
    higher_is_better = True

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """Why a query row can never be graded (reason, field), or None."""
        letters = option_letters(prompt)
        if len(letters) < 2:
            return ("no_options", "prompt")
        expected = parse_reference(reference)
        if expected is None or expected not in letters:
            return ("bad_reference", "reference")
        return None

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        expected = parse_reference(reference)
        if expected is None:
            return error_result(
                f"reference {reference!r} is not a letter {LETTERS[0]}-{LETTERS[-1]}"
            )
        got = extract(final_text(completion))
        if got is None:
            return unparsable_result("no option letter in the completion")
        if isinstance(got, Ambiguous):
            return unparsable_result(f"the final answer names several letters ({got})")
        letter, rule = got
        return GradeResult(
            score=1.0 if letter == expected else 0.0,
            parsed=letter,
            grade_status="ok",
            detail=f"{rule}; reference {expected}",
        )


GRADERS.register(ChoiceGrader.name)(ChoiceGrader())
