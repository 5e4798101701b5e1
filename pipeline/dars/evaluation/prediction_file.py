"""A file of routing choices for `dars bench --predictions FILE` (RouterArena-style: the
router ran elsewhere, only its decisions are scored, no code is imported).

Two layouts, told apart by the file's suffix:

- `.csv`: a header naming `query_id` and `model` (other columns are ignored), then one
  choice per line;
- `.jsonl` (or `.json` with one object per line): objects with `query_id` and `model`.

Every query of the scored split that has complete labels needs exactly one choice. The
first problem found is one line naming the file and line: a line without `query_id` or
`model`, a query id the split does not have, a model the dataset does not have (with the
valid names), a query chosen twice (with the line of the first choice), and queries with
no choice (how many, and the first few ids). Choices for queries of the split whose labels
are incomplete (not scored) are accepted and left out, as for a router's predictions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from dars.core.errors import PredictionFileError
from dars.core.registry import unknown_name_message

SUFFIXES = (".csv", ".jsonl", ".json")
SHOWN = 5  # missing query ids named in the message


def _rows(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, {column: value}) for each non-empty line after a CSV header."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise PredictionFileError(
            f"predictions file {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; "
            f"valid: {', '.join(SUFFIXES)} (CSV with a query_id,model header, or JSON lines)"
        )
    if not path.is_file():
        raise PredictionFileError(f"predictions file {str(path)!r} does not exist")
    with open(path, encoding="utf-8", newline="") as fh:
        if suffix == ".csv":
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            need = [c for c in ("query_id", "model") if c not in header]
            if need:
                raise PredictionFileError(
                    f"{path.name}:1: the CSV header {header} lacks {need}; it must name "
                    "query_id and model"
                )
            for row in reader:
                yield reader.line_num, dict(row)
            return
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PredictionFileError(
                    f"{path.name}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno})"
                ) from exc
            if not isinstance(obj, dict):
                raise PredictionFileError(
                    f"{path.name}:{lineno}: a {type(obj).__name__}, expected an object "
                    '{"query_id": ..., "model": ...}'
                )
            yield lineno, obj


def read_choices(
    path: str | Path,
    *,
    scored: Sequence[str],
    known: Sequence[str],
    models: Sequence[str],
    split: str,
) -> np.ndarray:
    """The chosen model's column index for each query of `scored` (in that order).

    `known` is every query id of the split (a choice for one of them that is not scored
    is accepted and left out); `models` are the dataset's models, in column order."""
    path = Path(path)
    col = {m: j for j, m in enumerate(models)}
    known_ids = set(known)
    first_line: dict[str, int] = {}
    chosen: dict[str, int] = {}
    for lineno, row in _rows(path):
        where = f"{path.name}:{lineno}"
        qid, model = row.get("query_id"), row.get("model")
        if qid is None or str(qid).strip() == "":
            raise PredictionFileError(f"{where}: missing query_id")
        if model is None or str(model).strip() == "":
            raise PredictionFileError(f"{where}: missing model for query_id {qid!r}")
        qid, model = str(qid).strip(), str(model).strip()
        if qid not in known_ids:
            raise PredictionFileError(
                f"{where}: unknown query_id {qid!r}: split {split!r} of the dataset has no "
                "such query"
            )
        if model not in col:
            raise PredictionFileError(
                f"{where}: {unknown_name_message('model', model, list(models))}"
            )
        if qid in first_line:
            raise PredictionFileError(
                f"{where}: duplicate query_id {qid!r} (first chosen at line {first_line[qid]})"
            )
        first_line[qid] = lineno
        chosen[qid] = col[model]
    missing = [q for q in scored if q not in chosen]
    if missing:
        raise PredictionFileError(
            f"{path.name}: no choice for {len(missing)} of the {len(scored)} scored queries of "
            f"split {split!r}, e.g. {missing[:SHOWN]}"
        )
    return np.array([chosen[q] for q in scored], dtype=np.int64)


def one_hot(choices: np.ndarray, n_models: int) -> np.ndarray:
    """Scores that route to `choices` at every cost weight: 1 for the chosen model, 0
    elsewhere, used with a zero cost estimate (routing is argmax(score - lambda * cost))."""
    out = np.zeros((len(choices), n_models))
    out[np.arange(len(choices)), choices] = 1.0
    return out
