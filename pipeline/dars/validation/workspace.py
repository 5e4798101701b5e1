"""A temporary DuckDB database that holds the tables under validation.

Small tables (queries, variants) are copied in; the per-model generations and outcomes
stay in their Parquet files and appear as views, so a 100M-row table is never loaded:
DuckDB scans the columns a query names, in bounded memory, and spills to the database's
spill folder past its memory cap. The database file lives in a private temporary folder
that is removed on close.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from dars.core import duck
from dars.core.errors import InputDataError
from dars.core.io import model_file, model_file_stem, parquet_schema


@dataclass(frozen=True)
class Relation:
    """One table of the workspace: its SQL name, its columns and its row count."""

    sql_name: str
    columns: tuple[str, ...]
    rows: int


def model_files(*, folder: str | Path, models: Sequence[str], what: str) -> dict[str, Path]:
    """One readable `<model>.parquet` per listed model; a missing one is an InputDataError
    naming it."""
    folder = Path(folder)
    files = {}
    for model in models:
        path = model_file(folder, model)
        if not path.exists():
            raise InputDataError(
                f"{what} file for model {model!r} ({str(path)!r}) does not exist; "
                f"params 'models' lists {list(models)}, so {str(folder)!r} needs one "
                "<model>.parquet each"
            )
        parquet_schema(path, what=f"{what} for model {model!r}")
        files[model] = path
    return files


def ignored_files(*, folder: str | Path, models: Sequence[str]) -> list[str]:
    """Parquet files in a model folder for models that params does not list (not validated)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stems = {model_file_stem(m) for m in models}
    return sorted(p.name for p in folder.glob("*.parquet") if p.stem not in stems)


class Workspace:
    """The DuckDB database file of one validation run (a context manager)."""

    def __init__(self, *, memory_limit: str | None = None, threads: int | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dars-validate-"))
        self.path = self.folder / "validate.duckdb"
        self.config: dict[str, Any] = {
            "memory_limit": memory_limit
            or os.environ.get("DARS_DUCKDB_MEMORY")
            or duck.DEFAULT_MEMORY,
            "temp_directory": str(self.folder / "spill"),
        }
        n = threads or os.environ.get("DARS_DUCKDB_THREADS")
        if n:
            self.config["threads"] = int(n)
        self.con: duckdb.DuckDBPyConnection | None = duckdb.connect(
            str(self.path), config=self.config
        )
        self._n = 0

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def connection_string(self) -> str:
        return f"duckdb:///{self.path.as_posix()}"

    def release(self) -> None:
        """Close this process's own connection (GX then opens the file with its own)."""
        if self.con is not None:
            self.con.close()
            self.con = None

    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            raise RuntimeError("the validation workspace is already released")
        return self.con.execute(sql)

    def new_name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def relation(self, sql_name: str) -> Relation:
        cols = [r[0] for r in self.execute(f"DESCRIBE {duck.ident(sql_name)}").fetchall()]
        rows = self.execute(f"SELECT count(*) FROM {duck.ident(sql_name)}").fetchall()[0][0]
        return Relation(sql_name, tuple(cols), int(rows))

    def copy_parquet(self, path: str | Path, *, prefix: str) -> Relation:
        """A small table, copied into the database."""
        name = self.new_name(prefix)
        self.execute(
            f"CREATE TABLE {duck.ident(name)} AS SELECT * FROM read_parquet({duck.quote(path)})"
        )
        return self.relation(name)

    def parquet_view(self, path: str | Path, *, prefix: str) -> Relation:
        """A large table, left in its file: a view over it (rows from the footer)."""
        name = self.new_name(prefix)
        self.execute(
            f"CREATE VIEW {duck.ident(name)} AS SELECT * FROM read_parquet({duck.quote(path)})"
        )
        schema = pq.read_schema(path)
        rows = pq.ParquetFile(path).metadata.num_rows
        return Relation(name, tuple(schema.names), int(rows))
