"""Columnar I/O: atomic Parquet writes (temp file + rename) and checked reads."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dars.core.errors import InputDataError


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write a Parquet file atomically: a crash leaves the old file or none, never half."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_frame(df: pd.DataFrame, path: str | Path, schema: pa.Schema | None = None) -> Path:
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    if schema is None:
        table = table.replace_schema_metadata(None)
    return write_table(table, path)


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_frame(path: str | Path, required: Iterable[str] = (), what: str = "table") -> pd.DataFrame:
    """Read a Parquet file and check that the contract columns are present."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{what} file {str(path)!r} does not exist")
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not readable Parquet: {exc}") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputDataError(
            f"{what} file {str(path)!r} lacks required columns {missing}; it has {list(df.columns)}"
        )
    return df
