"""Stage `grade`: score every generation with its query's grader -> the outcomes table.

A generation with status "error" is never graded: it gets score null and grade_status
"error" (a failed generation is not a wrong answer). Row order is kept.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from dars.core.errors import InputDataError, UnknownNameError
from dars.core.io import read_frame, write_frame
from dars.core.params import load_params
from dars.core.schema import GEN_STATUSES, GENERATIONS, OUTCOMES, names
from dars.graders import GradeConfig, GradeResult, get_grader, grade_one, sandbox
from dars.graders.settings import grade_settings

QUERY_COLUMNS = ("query_id", "prompt", "reference", "grader")
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


def check_generations(
    gens: pd.DataFrame,
    by_id: dict[str, dict[str, Any]],
    *,
    generations_path: str,
    queries_path: str,
) -> None:
    unknown = set(gens["query_id"]) - set(by_id)
    if unknown:
        raise InputDataError(
            f"generations file {generations_path!r} has query_id(s) that are not in "
            f"queries file {queries_path!r}: {_ids(unknown)}"
        )
    bad_status = set(gens["status"]) - set(GEN_STATUSES)
    if bad_status:
        raise InputDataError(
            f"generations file {generations_path!r} has status value(s) "
            f"{sorted(map(str, bad_status))}; allowed: {', '.join(GEN_STATUSES)}"
        )
    no_text = gens[(gens["status"] == "ok") & gens["completion"].isna()]
    if len(no_text):
        raise InputDataError(
            f"generations file {generations_path!r} has status 'ok' with a null completion "
            f"at row(s) {list(no_text.index[:_SHOW_IDS])}"
        )


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


def grade_all(
    gens: pd.DataFrame, by_id: dict[str, dict[str, Any]], *, config: GradeConfig, workers: int
) -> list[GradeResult]:
    rows = gens.to_dict(orient="records")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda g: grade_one(g, by_id[g["query_id"]], config), rows)
        return list(
            tqdm(results, total=len(rows), desc="grade", unit="gen", file=sys.stderr, disable=None)
        )


def outcomes_frame(gens: pd.DataFrame, results: list[GradeResult]) -> pd.DataFrame:
    out = gens[names(GENERATIONS)].copy()
    out["score"] = pd.array([r.score for r in results], dtype="Float64")
    out["parsed"] = [r.parsed for r in results]
    out["grade_status"] = [r.grade_status for r in results]
    out["grade_detail"] = [r.detail for r in results]
    return out


def run(
    *, params_path: str | Path, generations: str | Path, queries: str | Path, out: str | Path
) -> dict[str, int]:
    """Grade `generations` against `queries` and write the outcomes to `out`.
    Returns the count of rows per grade_status."""
    config, workers = grade_settings(load_params(params_path))
    gens = read_frame(generations, required=names(GENERATIONS), what="generations")
    qs = read_frame(queries, required=QUERY_COLUMNS, what="queries")
    by_id = index_queries(qs, path=str(queries))
    check_generations(gens, by_id, generations_path=str(generations), queries_path=str(queries))
    used = set(gens.loc[gens["status"] == "ok", "query_id"])
    check_graders(by_id, used)
    if any(by_id[qid]["grader"] == "code" for qid in used):
        sandbox.resolve_interpreter(drop_privileges=sandbox.drops_privileges())
    results = grade_all(gens, by_id, config=config, workers=workers)
    write_frame(outcomes_frame(gens, results), out, schema=OUTCOMES)
    counts = dict(Counter(r.grade_status for r in results))
    print(f"grade: {len(results)} rows -> {out} {counts}", file=sys.stderr)
    return counts
