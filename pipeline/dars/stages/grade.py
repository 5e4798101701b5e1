"""Stage `grade`: score every generation with its query's grader -> the outcomes table.

A generation with status "error" is never graded: it gets score null and grade_status
"error" (a failed generation is not a wrong answer). Row order is kept. The generations
are streamed in record batches and the outcomes written incrementally, so memory does
not grow with the row count (`dars.graders.batch`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dars.core.io import read_frame
from dars.core.params import load_params
from dars.graders.batch import BATCH_ROWS, QUERY_COLUMNS, grade_file
from dars.graders.settings import grade_settings


def run(
    *,
    params_path: str | Path,
    generations: str | Path,
    queries: str | Path,
    out: str | Path,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Grade `generations` against `queries` and write the outcomes to `out`, streamed in
    batches of `batch_rows` rows (see `dars.graders.batch`).
    Returns the count of rows per grade_status."""
    config, workers = grade_settings(load_params(params_path))
    qs = read_frame(queries, required=QUERY_COLUMNS, what="queries")
    counts = grade_file(
        generations=generations,
        queries=qs,
        queries_path=str(queries),
        out=out,
        config=config,
        workers=workers,
        batch_rows=batch_rows,
    )
    print(f"grade: {sum(counts.values())} rows -> {out} {counts}", file=sys.stderr)
    return counts
