"""DuckDB helpers for the table stages: a memory-capped connection and Parquet sources
(the checked read of a file's schema is `dars.core.io.parquet_schema`). DuckDB reads
only the columns a query names and spills to disk past its memory limit, so the table
stages run on 100M-row tables in bounded memory.

The memory cap and thread count change only speed and memory, never results; they come
from `DARS_DUCKDB_MEMORY` (default "2GB") and `DARS_DUCKDB_THREADS` (default: DuckDB's
own choice, the number of cores).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

DEFAULT_MEMORY = "2GB"


def connect(
    *, memory_limit: str | None = None, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a memory cap and a private spill folder."""
    con = duckdb.connect(database=":memory:")
    limit = memory_limit or os.environ.get("DARS_DUCKDB_MEMORY") or DEFAULT_MEMORY
    con.execute(f"SET memory_limit = '{limit}'")
    n = threads or os.environ.get("DARS_DUCKDB_THREADS")
    if n:
        con.execute(f"SET threads = {int(n)}")
    con.execute(f"SET temp_directory = {quote(spill_folder())}")
    con.execute("SET preserve_insertion_order = false")
    return con


_SPILL: list[str] = []


def spill_folder() -> str:
    """One private spill folder per process, removed when the process exits."""
    if not _SPILL:
        _SPILL.append(tempfile.mkdtemp(prefix="dars-duckdb-"))
        atexit.register(shutil.rmtree, _SPILL[0], ignore_errors=True)
    return _SPILL[0]


def quote(text: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def read_parquet(paths: Sequence[str | Path]) -> str:
    """A `read_parquet([...])` table expression over `paths` (columns unified by name)."""
    files = ", ".join(quote(Path(p).as_posix()) for p in paths)
    return f"read_parquet([{files}], union_by_name = true)"


def record_batches(con: duckdb.DuckDBPyConnection, sql: str, rows: int) -> pa.RecordBatchReader:
    """A query's result as an Arrow reader of `rows` rows per batch (streamed)."""
    rel = con.sql(sql)
    reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
    return reader(rows)


def arrow_table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A query's result as one Arrow table."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()
