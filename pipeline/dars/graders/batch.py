"""Grade a generations file into an outcomes file, streamed in record batches.

Memory does not grow with the row count: the generations are read `batch_rows` rows at a
time, graded (on a thread pool when the batch has rows of a grader that waits on a helper
process, inline otherwise), and each graded batch is appended to the outcomes file as
its own row group by a ParquetWriter. The outcomes file is written under a temporary
name and renamed at the end, so a crash or a bad row leaves the old file or none.

Before any grading, one pass over two columns (`query_id`, `status`) checks that every
query id is known, every status is allowed and every used grader exists. A generation
with status "error" is never graded: it gets score null and grade_status "error" (a
failed generation is not a wrong answer). Row order is kept.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from dars.core.errors import InputDataError, UnknownNameError
from dars.core.schema import GEN_STATUSES, GENERATIONS, OUTCOMES, names
from dars.graders import sandbox
from dars.graders.base import GradeConfig, GradeResult, get_grader, grade_one

QUERY_COLUMNS = ("query_id", "prompt", "reference", "grader")
BATCH_ROWS = 65_536
_SHOW_IDS = 10


def _ids(values: Any) -> str:
    values = sorted(set(map(str, values)))
    shown = ", ".join(values[:_SHOW_IDS])
    more = f" and {len(values) - _SHOW_IDS} more" if len(values) > _SHOW_IDS else ""
    return shown + more


def index_queries(queries: pd.DataFrame, *, path: str) -> dict[str, dict[str, Any]]:
    dupes = queries["query_id"][queries["query_id"].duplicated()]
    if len(dupes):
        raise InputDataError(f"queries file {path!r} repeats query_id(s): {_ids(dupes)}")
    return {row["query_id"]: row for row in queries.to_dict(orient="records")}


def open_generations(path: str | Path) -> pq.ParquetFile:
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"generations file {str(path)!r} does not exist")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(
            f"generations file {str(path)!r} is not readable Parquet: {exc}"
        ) from exc
    missing = [c for c in names(GENERATIONS) if c not in pf.schema_arrow.names]
    if missing:
        raise InputDataError(
            f"generations file {str(path)!r} lacks required columns {missing}; "
            f"it has {pf.schema_arrow.names}"
        )
    return pf


def scan_keys(
    pf: pq.ParquetFile,
    by_id: dict[str, dict[str, Any]],
    *,
    generations_path: str,
    queries_path: str,
    batch_rows: int = BATCH_ROWS,
) -> set[str]:
    """One pass over `query_id` and `status`: unknown ids and bad statuses fail here.
    Returns the query ids of the status "ok" rows (the ones that get graded)."""
    used: set[str] = set()
    seen: set[str] = set()
    statuses: set[Any] = set()
    for batch in pf.iter_batches(batch_size=batch_rows, columns=["query_id", "status"]):
        qid, status = batch.column(0), batch.column(1)
        seen.update(pc.unique(qid).to_pylist())
        statuses.update(pc.unique(status).to_pylist())
        ok = pc.fill_null(pc.equal(status, "ok"), False)
        used.update(pc.unique(pc.filter(qid, ok)).to_pylist())
    unknown = seen - set(by_id)
    if unknown:
        raise InputDataError(
            f"generations file {generations_path!r} has query_id(s) that are not in "
            f"queries file {queries_path!r}: {_ids(unknown)}"
        )
    bad = statuses - set(GEN_STATUSES)
    if bad:
        raise InputDataError(
            f"generations file {generations_path!r} has status value(s) "
            f"{sorted(map(str, bad))}; allowed: {', '.join(GEN_STATUSES)}"
        )
    return used


def check_graders(by_id: dict[str, dict[str, Any]], used_ids: set[str]) -> None:
    """Fail before any work if a used query names an unknown grader."""
    by_grader: dict[str, list[str]] = {}
    for qid in used_ids:
        by_grader.setdefault(by_id[qid]["grader"], []).append(qid)
    for name, qids in by_grader.items():
        try:
            get_grader(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{exc} (used by query_id(s) {_ids(qids)})") from exc


def check_completions(gens: pa.RecordBatch, *, offset: int, generations_path: str) -> None:
    ok = pc.fill_null(pc.equal(gens.column("status"), "ok"), False)
    no_text = pc.indices_nonzero(pc.and_(ok, pc.is_null(gens.column("completion"))))
    if len(no_text):
        rows = [offset + i for i in no_text.to_pylist()[:_SHOW_IDS]]
        raise InputDataError(
            f"generations file {generations_path!r} has status 'ok' with a null completion "
            f"at row(s) {rows}"
        )


def outcomes_table(gens: pa.RecordBatch, results: list[GradeResult]) -> pa.Table:
    """The outcomes rows of one batch: the generation columns plus the grade."""
    grades = {
        "score": pa.array([r.score for r in results], pa.float64()),
        "parsed": pa.array([r.parsed for r in results], pa.string()),
        "grade_status": pa.array([r.grade_status for r in results], pa.string()),
        "grade_detail": pa.array([r.detail for r in results], pa.string()),
    }
    columns = [
        grades[f.name] if f.name in grades else gens.column(f.name).cast(f.type) for f in OUTCOMES
    ]
    return pa.Table.from_arrays(columns, schema=OUTCOMES)


def waits_on_subprocess(names: set[str]) -> bool:
    """Whether any of these graders runs its check in a helper process (code, math):
    only then does a thread pool help; cheap graders are faster graded inline."""
    return any(getattr(get_grader(n), "waits_on_subprocess", False) for n in names)


def iter_graded(
    pf: pq.ParquetFile,
    by_id: dict[str, dict[str, Any]],
    *,
    config: GradeConfig,
    workers: int,
    batch_rows: int = BATCH_ROWS,
    generations_path: str = "generations",
) -> Iterator[tuple[pa.Table, list[GradeResult]]]:
    """Graded batches of at most `batch_rows` rows, in row order."""
    offset = 0

    def grade(g: dict[str, Any]) -> GradeResult:
        return grade_one(g, by_id[g["query_id"]], config)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=names(GENERATIONS)):
            check_completions(batch, offset=offset, generations_path=generations_path)
            rows = batch.select(["query_id", "status", "completion"]).to_pylist()
            graders = {by_id[g["query_id"]]["grader"] for g in rows if g["status"] == "ok"}
            if workers > 1 and waits_on_subprocess(graders):
                results = list(pool.map(grade, rows))
            else:
                results = [grade(g) for g in rows]
            yield outcomes_table(batch, results), results
            offset += len(rows)


def grade_file(
    *,
    generations: str | Path,
    queries: pd.DataFrame,
    queries_path: str,
    out: str | Path,
    config: GradeConfig,
    workers: int,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Grade `generations` into `out` (atomic); returns the row count per grade_status."""
    by_id = index_queries(queries, path=queries_path)
    pf = open_generations(generations)
    used = scan_keys(
        pf,
        by_id,
        generations_path=str(generations),
        queries_path=queries_path,
        batch_rows=batch_rows,
    )
    check_graders(by_id, used)
    if any(by_id[qid]["grader"] == "code" for qid in used):
        sandbox.resolve_interpreter(drop_privileges=sandbox.drops_privileges())

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    counts: Counter[str] = Counter()
    progress = tqdm(
        total=pf.metadata.num_rows, desc="grade", unit="gen", file=sys.stderr, disable=None
    )
    try:
        with pq.ParquetWriter(tmp, OUTCOMES) as writer:
            for table, results in iter_graded(
                pf,
                by_id,
                config=config,
                workers=workers,
                batch_rows=batch_rows,
                generations_path=str(generations),
            ):
                writer.write_table(table)
                counts.update(r.grade_status for r in results)
                progress.update(table.num_rows)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    return dict(counts)
