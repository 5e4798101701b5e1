"""What every exporter reads from a build: the small per-query tables in memory, the
outcome files as a stream of row batches, and atomic JSONL writers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from dars.core.errors import InputDataError
from dars.core.io import read_table
from dars.core.params import ParamsFile, load_params, parse

BATCH_ROWS = 65_536  # outcome rows per batch: bounded memory whatever the build's size


@dataclass
class Build:
    """A build's data/ folder: queries, variants, splits (one row per query or variant),
    and the outcome files, which are streamed."""

    data_dir: Path
    queries: dict[str, dict[str, Any]]  # query_id -> row
    variants: dict[tuple[str, int], str]  # (query_id, variant_id) -> prompt
    split_of: dict[str, str]  # query_id -> train | validation | test
    outcome_files: list[Path]
    params: ParamsFile = field(default_factory=lambda: parse({}))  # the build's params.yaml

    def batches(self, columns: list[str], optional: list[str]) -> Iterator[dict[str, list]]:
        """Outcome rows as column lists, one model file and row group batch at a time;
        `optional` columns are read where a file has them (absent keys otherwise)."""
        for path in self.outcome_files:
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
            missing = [c for c in columns if c not in names]
            if missing:
                raise InputDataError(
                    f"outcomes file {str(path)!r} lacks columns {missing}; it has {sorted(names)}"
                )
            cols = columns + [c for c in optional if c in names]
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                yield batch.to_pydict()


def _table(path: Path, columns: list[str], what: str) -> dict[str, list]:
    return read_table(path, required=columns, what=what, columns=columns).to_pydict()


def read_build(data_dir: str | Path, params: str | Path | None) -> Build:
    data = Path(data_dir)
    q = _table(
        data / "queries.parquet", ["query_id", "task", "prompt", "reference", "grader"], "queries"
    )
    queries = {
        qid: {"task": t, "prompt": p, "reference": r, "grader": g}
        for qid, t, p, r, g in zip(
            q["query_id"], q["task"], q["prompt"], q["reference"], q["grader"], strict=True
        )
    }
    v = _table(data / "variants.parquet", ["query_id", "variant_id", "prompt"], "variants")
    variants = {
        (qid, int(vid)): p
        for qid, vid, p in zip(v["query_id"], v["variant_id"], v["prompt"], strict=True)
    }
    s = _table(data / "splits.parquet", ["query_id", "split"], "splits")
    split_of = dict(zip(s["query_id"], s["split"], strict=True))
    files = sorted((data / "outcomes").glob("*.parquet"))
    if not files:
        raise InputDataError(f"no outcome files under {str(data / 'outcomes')!r}")
    if params is None or not Path(params).is_file():
        return Build(data, queries, variants, split_of, files)  # no params: the defaults
    return Build(data, queries, variants, split_of, files, load_params(params))


class JsonlWriters:
    """One JSONL file per key, written to `<name>.tmp` and renamed on `close()`; rows
    counted per file. On an error nothing half-written is left under its final name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.handles: dict[str, IO[str]] = {}
        self.rows: dict[str, int] = {}

    def write(self, rel: str, row: dict[str, Any]) -> None:
        fh = self.handles.get(rel)
        if fh is None:
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.handles[rel] = open(f"{path}.tmp", "w", encoding="utf-8")  # noqa: SIM115
            self.rows[rel] = 0
        fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        self.rows[rel] += 1

    def close(self) -> dict[str, int]:
        for rel, fh in self.handles.items():
            fh.close()
            os.replace(f"{self.root / rel}.tmp", self.root / rel)
        self.handles = {}
        return dict(sorted(self.rows.items()))

    def abort(self) -> None:
        for rel, fh in self.handles.items():
            fh.close()
            Path(f"{self.root / rel}.tmp").unlink(missing_ok=True)
        self.handles = {}


def finite(x: Any) -> float | None:
    """A float for JSON, None for null or NaN (JSON has no NaN)."""
    if x is None:
        return None
    f = float(x)
    return f if f == f and f not in (float("inf"), float("-inf")) else None
