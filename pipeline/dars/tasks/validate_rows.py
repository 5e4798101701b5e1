"""Row validation for `prepare`: every candidate row of a task loader becomes a queries row
or a quarantine row with its reason and field.

Besides missing, mistyped, empty, too long, non-UTF-8 and duplicate rows, a row is
quarantined when its prompt or reference holds a NUL byte, and when its grader's
`check` says it could never be graded (a non-numeric reference for `numeric`, a `choice`
prompt without options, a HumanEval entry point the prompt does not define, ...).
A bad row is not skipped: it is counted per task as `dropped_<reason>` (datatrove
style), next to `kept` and `quarantined`, and `stats` sums the counts for the stats
JSON; `threshold_message` names the top reasons when too many rows are bad.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dars.core.schema import GRADERS, query_id
from dars.graders import get_grader
from dars.tasks.base import Candidate, Rejection

RAW_MAX_CHARS = 2_000  # the quarantine keeps a truncated copy of each bad row
TOP_REASONS = 5  # reasons named in the threshold error

# Reasons a row is quarantined (loaders may add their own, e.g. `regex_no_match`).
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
EMPTY_PROMPT = "empty_prompt"
EMPTY_REFERENCE = "empty_reference"
INVALID_UTF8 = "invalid_utf8"
PROMPT_TOO_LONG = "prompt_too_long"
UNKNOWN_GRADER = "unknown_grader"
DUPLICATE_ID = "duplicate_id"
NUL_BYTE = "nul_byte"
# Each grader's `check` adds its own reasons: `bad_reference` (a reference it cannot
# read), `no_options` (choice), `entry_point_not_in_prompt` (code).


@dataclass
class Result:
    """Kept query rows, quarantine rows and per-task counts, in output order."""

    queries: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=dict)


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _as_text(value: Any, *, name: str) -> tuple[str | None, Rejection | None]:
    """A str field: bytes are decoded as UTF-8; None, other types and invalid text fail."""
    if value is None:
        return None, Rejection(reason=MISSING_FIELD, field=name)
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None, Rejection(reason=INVALID_UTF8, field=name)
    if not isinstance(value, str):
        return None, Rejection(reason=WRONG_TYPE, field=name)
    if not _utf8_ok(value):
        return None, Rejection(reason=INVALID_UTF8, field=name)
    return value, None


def _source_id(value: Any) -> tuple[str | None, Rejection | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, Rejection(reason=MISSING_FIELD, field="id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), None
    return _as_text(value, name="id")


def validate(
    candidate: Candidate, *, task: str, max_prompt_chars: int
) -> tuple[dict[str, Any] | None, Rejection | None]:
    """A queries row for a good candidate, or the first reason it is bad."""
    if candidate.reject is not None:
        return None, candidate.reject
    sid, bad = _source_id(candidate.source_id)
    if bad:
        return None, bad
    prompt, bad = _as_text(candidate.prompt, name="prompt")
    if bad:
        return None, bad
    assert prompt is not None and sid is not None
    if not prompt.strip():
        return None, Rejection(reason=EMPTY_PROMPT, field="prompt")
    if "\x00" in prompt:
        return None, Rejection(reason=NUL_BYTE, field="prompt")
    if len(prompt) > max_prompt_chars:
        return None, Rejection(reason=PROMPT_TOO_LONG, field="prompt")
    reference, bad = _as_text(candidate.reference, name="reference")
    if bad:
        return None, bad
    assert reference is not None
    if not reference.strip():
        return None, Rejection(reason=EMPTY_REFERENCE, field="reference")
    if "\x00" in reference:
        return None, Rejection(reason=NUL_BYTE, field="reference")
    if not isinstance(candidate.grader, str):
        return None, Rejection(reason=WRONG_TYPE, field="grader")
    if candidate.grader not in GRADERS:
        return None, Rejection(reason=UNKNOWN_GRADER, field="grader")
    unusable = get_grader(candidate.grader).check(prompt, reference)
    if unusable is not None:
        return None, Rejection(reason=unusable[0], field=unusable[1])
    if not isinstance(candidate.metadata, Mapping):
        return None, Rejection(reason=WRONG_TYPE, field="metadata")
    metadata = json.dumps(dict(candidate.metadata), sort_keys=True, ensure_ascii=False, default=str)
    if not _utf8_ok(metadata):
        return None, Rejection(reason=INVALID_UTF8, field="metadata")
    return {
        "query_id": query_id(source=candidate.source, source_id=sid),
        "task": task,
        "prompt": prompt,
        "reference": reference,
        "grader": candidate.grader,
        "source": candidate.source,
        "license": candidate.license,
        "metadata": metadata,
    }, None


def raw_text(candidate: Candidate) -> str:
    """A JSON copy of the bad row for the quarantine file (ASCII-safe, truncated)."""
    raw = (
        candidate.raw
        if candidate.raw is not None
        else {
            "source_id": candidate.source_id,
            "prompt": candidate.prompt,
            "reference": candidate.reference,
            "grader": candidate.grader,
            "metadata": candidate.metadata,
        }
    )
    text = json.dumps(raw, ensure_ascii=True, sort_keys=True, default=repr)
    if len(text) > RAW_MAX_CHARS:
        text = text[:RAW_MAX_CHARS] + f"...[truncated {len(text) - RAW_MAX_CHARS} chars]"
    return text


def quarantine_row(*, candidate: Candidate, task: str, rejection: Rejection) -> dict[str, Any]:
    return {
        "task": task,
        "source": candidate.source,
        "row_index": candidate.row_index,
        "reason": rejection.reason,
        "field": rejection.field,
        "raw": raw_text(candidate),
    }


def build(tasks: Mapping[str, Iterable[Candidate]], *, max_prompt_chars: int) -> Result:
    """Validate every candidate of every task (in the order given) and dedupe query ids."""
    result = Result()
    seen: set[str] = set()
    for task, candidates in tasks.items():
        counts: Counter[str] = Counter(kept=0, quarantined=0)
        for candidate in candidates:
            row, bad = validate(candidate, task=task, max_prompt_chars=max_prompt_chars)
            if row is not None and row["query_id"] in seen:
                row, bad = None, Rejection(reason=DUPLICATE_ID, field="id")
            if row is None:
                assert bad is not None
                counts["quarantined"] += 1
                counts[f"dropped_{bad.reason}"] += 1
                result.quarantine.append(
                    quarantine_row(candidate=candidate, task=task, rejection=bad)
                )
                continue
            seen.add(row["query_id"])
            counts["kept"] += 1
            result.queries.append(row)
        result.counts[task] = counts
    return result


def stats(result: Result, *, max_quarantine_fraction: float) -> dict[str, Any]:
    totals: Counter[str] = Counter(kept=0, quarantined=0)
    for counts in result.counts.values():
        totals.update(counts)
    total = totals["kept"] + totals["quarantined"]
    return {
        "tasks": {task: dict(sorted(c.items())) for task, c in result.counts.items()},
        "totals": dict(sorted(totals.items())),
        "quarantine_fraction": totals["quarantined"] / total if total else 0.0,
        "max_quarantine_fraction": max_quarantine_fraction,
    }


def threshold_message(
    summary: Mapping[str, Any], *, max_quarantine_fraction: float, where: str, quarantine_path: str
) -> str:
    """The one-line error past `prepare.max_quarantine_fraction`: counts and top reasons."""
    totals = summary["totals"]
    reasons = Counter(
        {k.removeprefix("dropped_"): v for k, v in totals.items() if k.startswith("dropped_")}
    )
    ranked = sorted(reasons.items(), key=lambda rc: (-rc[1], rc[0]))[:TOP_REASONS]
    top = ", ".join(f"{reason} ({count})" for reason, count in ranked)
    total = totals["kept"] + totals["quarantined"]
    return (
        f"Quarantined {totals['quarantined']} of {total} source rows "
        f"({summary['quarantine_fraction']:.1%}), above "
        f"'prepare.max_quarantine_fraction' = {max_quarantine_fraction} in "
        f"'{where}'. Top reasons: {top}. The bad rows are in {quarantine_path!r}; "
        "fix the source or the task settings, or raise the threshold."
    )
