"""DROP's official F1 (Dua et al. 2019, `drop_eval.py` of allennlp-reading-comprehension).

The score is a fraction in [0, 1], not a pass/fail: `aggregate` adds it to the Beta
posterior as a fractional pseudo-count (alpha += s, beta += 1 - s; see
`dars.labels.intervals`).

The metric, as the official script computes it:
- an answer is a list of spans; each span is lower-cased, split on spaces and hyphens,
  and each token loses its punctuation (unless it is a number), numbers are written as
  floats (`1,000` -> `1000.0`), articles and extra whitespace go;
- each span becomes a bag (set) of tokens; predicted and gold spans are paired by an
  optimal assignment (scipy's `linear_sum_assignment`) on their bag F1, where a pair
  scores 0 unless it shares a number whenever the gold span has any;
- the F1 is the mean over the larger of the two span counts, rounded to 2 decimals,
  and the score is the maximum over the gold answers.

Reference (the query's `reference`): JSON `{"spans": [...], "types": [...]}` (one gold
answer, possibly multi-span: the `drop` loader writes this), a JSON list of gold answers
(each a string or a list of spans), or plain text (one single-span answer).

Prediction: the text after the last `Final Answer:` / `Answer:` / `the answer is` marker,
up to the end of that line; without a marker, the last non-empty line; bold markers and
one final full stop are dropped (the official metric would read `3.5.` as 35). Several
predicted spans are separated by `|` or `;`.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from dars.graders.base import (
    GRADERS,
    GradeConfig,
    GradeResult,
    error_result,
    final_text,
    unparsable_result,
)

_EXCLUDE = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_MARKER = re.compile(r"\banswer\b\**\s*(?:is\b\s*:?|[:=])\**[ \t]*(?P<rest>[^\n]*)", re.IGNORECASE)
_SPLIT = re.compile(r"\s*[|;]\s*")


# --- the official metric ------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _remove_punc(text: str) -> str:
    return text if _is_number(text) else "".join(ch for ch in text if ch not in _EXCLUDE)


def _fix_number(text: str) -> str:
    return str(float(text)) if _is_number(text) else text


def _tokenize(text: str) -> list[str]:
    return re.split(" |-", text)


def normalize_answer(text: str) -> str:
    parts = [
        " ".join(_ARTICLES.sub(" ", _fix_number(_remove_punc(token.lower()))).split())
        for token in _tokenize(text)
    ]
    return " ".join(part for part in parts if part.strip()).strip()


def answer_to_bags(answer: str | list[str] | tuple[str, ...]) -> tuple[list[str], list[set[str]]]:
    spans = list(answer) if isinstance(answer, list | tuple) else [answer]
    normalized = [normalize_answer(span) for span in spans]
    return normalized, [set(n.split()) for n in normalized]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    intersection = len(gold & predicted)
    precision = 1.0 if not predicted else intersection / len(predicted)
    recall = 1.0 if not gold else intersection / len(gold)
    if precision == 0.0 and recall == 0.0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _numbers_agree(gold: set[str], predicted: set[str]) -> bool:
    gold_numbers = {w for w in gold if _is_number(w)}
    predicted_numbers = {w for w in predicted if _is_number(w)}
    return not gold_numbers or bool(gold_numbers & predicted_numbers)


def _align_bags(predicted: list[set[str]], gold: list[set[str]]) -> np.ndarray:
    scores = np.zeros([len(gold), len(predicted)])
    for g, gold_bag in enumerate(gold):
        for p, pred_bag in enumerate(predicted):
            if _numbers_agree(gold_bag, pred_bag):
                scores[g, p] = _bag_f1(pred_bag, gold_bag)
    rows, cols = linear_sum_assignment(-scores)
    best = np.zeros([max(len(gold), len(predicted))])
    for r, c in zip(rows, cols, strict=True):
        best[r] = max(best[r], scores[r, c])
    return best


def get_metrics(predicted: str | list[str], gold: str | list[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction against one gold answer, as the official script."""
    pred_spans, pred_bags = answer_to_bags(predicted)
    gold_spans, gold_bags = answer_to_bags(gold)
    exact = float(set(pred_spans) == set(gold_spans) and len(pred_spans) == len(gold_spans))
    f1 = round(float(np.mean(_align_bags(pred_bags, gold_bags))), 2)
    return exact, f1


def max_over_gold(predicted: list[str], golds: list[list[str]]) -> tuple[float, float]:
    """(exact match, F1), each the maximum over the gold answers."""
    results = [get_metrics(predicted, g) for g in golds]
    return max(r[0] for r in results), max(r[1] for r in results)


# --- reference and completion -------------------------------------------------------------


def parse_reference(reference: str) -> list[list[str]] | str:
    """The gold answers (each a list of spans), or a message saying what is wrong."""
    text = reference.strip()
    data: Any = text
    if text[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"reference looks like JSON but does not parse ({exc.msg})"
    if isinstance(data, dict):
        data = [data.get("spans")]
    elif isinstance(data, str):
        data = [[data]]
    if not isinstance(data, list) or not data:
        return "reference holds no gold answer"
    golds = []
    for item in data:
        spans = [item] if isinstance(item, str) else item
        if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
            return f"reference gold answer {item!r} is not a string or a list of strings"
        spans = [s for s in spans if s.strip()]
        if spans:
            golds.append(spans)
    return golds or "reference holds no non-empty gold span"


def extract(completion: str) -> tuple[list[str], str] | None:
    """(predicted spans, rule) from a completion, or None if it holds no answer text."""
    markers = [m for m in _MARKER.finditer(completion) if m["rest"].strip()]
    if markers:
        text, rule = markers[-1]["rest"], "answer marker"
    else:
        lines = [ln for ln in completion.splitlines() if ln.strip()]
        if not lines:
            return None
        text, rule = lines[-1], "last line"
    text = text.strip().strip("*").strip().removesuffix(".").strip()
    spans = [s for s in _SPLIT.split(text) if s.strip()]
    return (spans, rule) if spans else None


class F1Grader:
    name = "f1"
    higher_is_better = True

    def check(self, prompt: str, reference: str) -> tuple[str, str] | None:
        """Why a query row can never be graded (reason, field), or None."""
        golds = parse_reference(reference)
        return ("bad_reference", "reference") if isinstance(golds, str) else None

    def grade(
        self, completion: str, reference: str, query_row: dict[str, Any], config: GradeConfig
    ) -> GradeResult:
        golds = parse_reference(reference)
        if isinstance(golds, str):
            return error_result(golds)
        got = extract(final_text(completion))
        if got is None:
            return unparsable_result("no answer text in the completion")
        spans, rule = got
        exact, f1 = max_over_gold(spans, golds)
        return GradeResult(
            score=f1,
            parsed=" | ".join(spans),
            grade_status="ok",
            detail=f"{rule}; exact match {exact:.0f}",
        )


GRADERS.register(F1Grader.name)(F1Grader())
