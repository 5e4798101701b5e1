"""MATH-500 (kind `math`): `HuggingFaceH4/MATH-500`, graded by `math-verify`.

Settings (under `prepare.tasks.<task>`): `path` (default `HuggingFaceH4/MATH-500`),
`name` (default null), `split` (default `test`, the only one), `n` (a seeded sample of n
problems, stratified by subject; null = all), `seed` (default 0), `data_files` (local
parquet or JSON in the Hub schema), `revision`, `cache_dir`.

Columns: `problem`, `solution`, `answer`, `subject`, `level`, `unique_id`. The prompt is
the problem; the reference is `answer`, or, when that is empty, the content of the last
`\\boxed{...}` in `solution` (braces matched, nothing parsed). Subject and level go into
the metadata; the grader is `math`.

Quarantined here: no `unique_id` or `problem` (`missing_field`); neither an answer nor a
boxed answer in the solution (`missing_field`, field `answer`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dars.graders.math import last_boxed
from dars.tasks import files
from dars.tasks.base import TASK_LOADERS, Candidate, Rejection

SOURCE = "HuggingFaceH4/MATH-500"
LICENSE = "MIT"
GRADER = "math"


def to_candidate(*, record: Any, row_index: int) -> Candidate:
    bad = files.unreadable(
        record, row_index=row_index, grader=GRADER, source=SOURCE, license=LICENSE
    )
    if bad is not None:
        return bad
    uid = record.get("unique_id")
    answer = record.get("answer")
    reference: Any = answer
    how = "answer"
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        solution = record.get("solution")
        reference = last_boxed(solution) if isinstance(solution, str) else None
        how = "solution_boxed"
    elif isinstance(answer, int | float) and not isinstance(answer, bool):
        reference = str(answer)
    reject = None
    if uid is None or (isinstance(uid, str) and not uid.strip()):
        reject = Rejection(reason="missing_field", field="unique_id")
    elif record.get("problem") is None:
        reject = Rejection(reason="missing_field", field="problem")
    elif reference is None:
        reject = Rejection(reason="missing_field", field="answer")
    return Candidate(
        row_index=row_index,
        grader=GRADER,
        source=SOURCE,
        license=LICENSE,
        source_id=uid,
        prompt=record.get("problem"),
        reference=reference,
        metadata={
            "source_id": uid,
            "source": SOURCE,
            "license": LICENSE,
            "subject": record.get("subject"),
            "level": record.get("level"),
            "reference_from": how,
        },
        reject=reject,
        raw=dict(record),
    )


@TASK_LOADERS.register("math")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    settings = files.hub_settings(config, key=key, path=SOURCE, name=None, split="test")
    return _candidates(settings, key=key)


def _candidates(settings: files.HubSettings, *, key: str) -> Iterator[Candidate]:
    """The rows are read on first use, after every task's settings have been checked."""
    rows = files.rows_for(settings, key=key)
    strata = [str(r.get("subject")) if isinstance(r, Mapping) else "" for r in rows]
    keep = files.sample_indices(strata, n=settings.n, seed=settings.seed, salt="math", key=key)
    for i in keep:
        yield to_candidate(record=rows[i], row_index=i)
