"""Columnar I/O: atomic Parquet writes (temp file + rename), checked reads, and the
file name of a model's table."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dars.core.errors import InputDataError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def model_file_stem(model: str) -> str:
    """The file name stem of a model's table: the name itself when it is already safe
    (letters, digits, '.', '_', '-'), else '/' -> '__' and any other character -> '_'.
    So `google/gemma-3-12b-it` is stored as `google__gemma-3-12b-it.parquet` while the
    tables' `model` column keeps the id."""
    if not model or model in (".", ".."):
        raise InputDataError(f"model name {model!r} cannot name a file")
    return _UNSAFE.sub("_", model.replace("/", "__"))


def model_file(folder: str | Path, model: str) -> Path:
    """`<folder>/<model_file_stem(model)>.parquet`."""
    return Path(folder) / f"{model_file_stem(model)}.parquet"


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
