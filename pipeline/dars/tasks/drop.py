"""DROP (kind `drop`): `ucinlp/drop`, reading comprehension graded by the official F1.

Settings (under `prepare.tasks.<task>`): `path` (default `ucinlp/drop`), `name` (default
null), `split` (default `validation`), `n` (a seeded sample of n questions, stratified by
answer type, as DARS's DROP-800 is; null = all), `seed` (default 0), `data_files` (local
parquet or JSON in the Hub schema), `revision`, `cache_dir`.

Columns: `section_id`, `query_id`, `passage`, `question`, `answers_spans` (`{spans,
types}`). The prompt is the passage, a blank line, then `Question: <question>`. The
reference is JSON `{"spans": [...], "types": [...]}`: all gold spans of the answer (a
multi-span answer has several); the grader is `f1`. The answer type used to stratify is
`number`, `date`, `span` (one span) or `spans` (several).

Quarantined here: no `query_id`, `passage` or `question` (`missing_field`); an
`answers_spans` that is not `{spans: [str, ...], types: [...]}` (`wrong_type`) or holds
no non-empty span (`empty_reference`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from dars.tasks import files
from dars.tasks.base import TASK_LOADERS, Candidate, Rejection

SOURCE = "ucinlp/drop"
LICENSE = "CC-BY-SA-4.0"
GRADER = "f1"


def render(passage: str, question: str) -> str:
    return f"{passage.strip()}\n\nQuestion: {question.strip()}"


def gold(record: Mapping[str, Any]) -> tuple[list[str], list[str]] | Rejection:
    """(spans, types) of a record's answer, or why they are unusable."""
    answers = record.get("answers_spans")
    if answers is None:
        return Rejection(reason="missing_field", field="answers_spans")
    if not isinstance(answers, Mapping):
        return Rejection(reason="wrong_type", field="answers_spans")
    spans, types = answers.get("spans"), answers.get("types", [])
    if not isinstance(spans, list | tuple) or not all(isinstance(s, str) for s in spans):
        return Rejection(reason="wrong_type", field="answers_spans")
    if not isinstance(types, list | tuple) or not all(isinstance(t, str) for t in types):
        return Rejection(reason="wrong_type", field="answers_spans")
    if not any(s.strip() for s in spans):
        return Rejection(reason="empty_reference", field="answers_spans")
    return [s for s in spans if s.strip()], list(types)


def answer_type(record: Any) -> str:
    """The stratum of a record: number, date, span, spans (or `invalid`)."""
    if not isinstance(record, Mapping):
        return "invalid"
    got = gold(record)
    if isinstance(got, Rejection):
        return "invalid"
    spans, types = got
    if len(spans) > 1:
        return "spans"
    return types[0] if types and types[0] in ("number", "date", "span") else "span"


def to_candidate(*, record: Any, row_index: int) -> Candidate:
    bad = files.unreadable(
        record, row_index=row_index, grader=GRADER, source=SOURCE, license=LICENSE
    )
    if bad is not None:
        return bad
    qid = record.get("query_id")
    passage, question = record.get("passage"), record.get("question")
    reject: Rejection | None = None
    prompt: Any = None
    reference: Any = None
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        reject = Rejection(reason="missing_field", field="query_id")
    elif passage is None:
        reject = Rejection(reason="missing_field", field="passage")
    elif question is None:
        reject = Rejection(reason="missing_field", field="question")
    elif not isinstance(passage, str) or not isinstance(question, str):
        reject = Rejection(
            reason="wrong_type", field="passage" if not isinstance(passage, str) else "question"
        )
    else:
        got = gold(record)
        if isinstance(got, Rejection):
            reject = got
        else:
            prompt = render(passage, question)
            reference = json.dumps({"spans": got[0], "types": got[1]}, ensure_ascii=False)
    return Candidate(
        row_index=row_index,
        grader=GRADER,
        source=SOURCE,
        license=LICENSE,
        source_id=qid,
        prompt=prompt,
        reference=reference,
        metadata={
            "source_id": qid,
            "source": SOURCE,
            "license": LICENSE,
            "section_id": record.get("section_id"),
            "answer_type": answer_type(record),
        },
        reject=reject,
        raw=dict(record),
    )


@TASK_LOADERS.register("drop")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    settings = files.hub_settings(config, key=key, path=SOURCE, name=None, split="validation")
    return _candidates(settings, key=key)


def _candidates(settings: files.HubSettings, *, key: str) -> Iterator[Candidate]:
    """The rows are read on first use, after every task's settings have been checked."""
    rows = files.rows_for(settings, key=key)
    strata = [answer_type(r) for r in rows]
    keep = files.sample_indices(strata, n=settings.n, seed=settings.seed, salt="drop", key=key)
    for i in keep:
        yield to_candidate(record=rows[i], row_index=i)
