"""Columnar I/O: atomic writes (a file: temp file + rename; a folder: temp folder +
rename), checked reads (Parquet, JSON) that name the file they fail on, and the file
name of a model's table."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


def _checked_parquet(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{what} file {str(path)!r} does not exist")
    return path


def _missing_columns(path: Path, what: str, names: list[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise InputDataError(
            f"{what} file {str(path)!r} lacks required columns {missing}; it has {names}"
        )


def parquet_schema(path: str | Path, *, required: Iterable[str] = (), what: str) -> pa.Schema:
    """The Parquet file's schema (footer only); a missing file, unreadable file or missing
    contract column is one InputDataError naming the file."""
    path = _checked_parquet(path, what)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not readable Parquet: {exc}") from exc
    _missing_columns(path, what, schema.names, required)
    return schema


def read_table(
    path: str | Path,
    *,
    required: Iterable[str] = (),
    what: str = "table",
    columns: list[str] | None = None,
) -> pa.Table:
    """A Parquet file as an Arrow table (`columns`: only those), checked like
    `parquet_schema`; the pandas metadata is dropped."""
    path = _checked_parquet(path, what)
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not readable Parquet: {exc}") from exc
    _missing_columns(path, what, table.column_names, required)
    return table.replace_schema_metadata(None)


def read_model_files(
    folder: str | Path,
    models: Iterable[str],
    *,
    required: list[str],
    optional: Iterable[str] = (),
    what: str = "outcomes",
    query_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every model's file under `folder` (`model_file`) as one frame: the `required`
    columns plus the `optional` ones a file has, and only the rows of `query_ids` when
    given (pyarrow filters the row groups). A missing, unreadable or short file is one
    InputDataError naming it (`what[model]`)."""
    ids = None if query_ids is None else sorted(set(query_ids))
    frames = []
    for m in models:
        path = model_file(folder, m)
        names = parquet_schema(path, required=required, what=f"{what}[{m}]").names
        cols = required + [c for c in optional if c in names]
        filters = None if ids is None else [("query_id", "in", ids)]
        try:
            frames.append(pq.read_table(path, columns=cols, filters=filters).to_pandas())
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputDataError(
                f"{what}[{m}] file {str(path)!r} is not readable Parquet: {exc}"
            ) from exc
    return pd.concat(frames, ignore_index=True)


def read_frame(path: str | Path, required: Iterable[str] = (), what: str = "table") -> pd.DataFrame:
    """Read a Parquet file and check that the contract columns are present."""
    path = _checked_parquet(path, what)
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not readable Parquet: {exc}") from exc
    _missing_columns(path, what, list(df.columns), required)
    return df


def read_json(path: str | Path, *, what: str, hint: str = "") -> Any:
    """A JSON file's content; a missing or malformed file is one InputDataError naming it
    (`hint`: what writes the file, appended to the message)."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.exists():
        raise InputDataError(f"{what} file {str(path)!r} does not exist{tail}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not valid JSON: {exc}") from exc


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Write a folder atomically: yields an empty temporary folder next to `target`;
    when the block ends without error, its contents get the usual permissions (0755
    folders, 0644 files: mkdtemp/mkstemp make them private) and it replaces `target`
    (which is removed first, if present). On any error the temporary folder is removed
    and `target` is left as it was. The remove-then-rename leaves a moment without
    `target`: a rename cannot replace a non-empty folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
# Fitted attributes that hold a memory address (a cache, meaningless once loaded in
# another process): scikit-learn's vectorisers remember id(stop_words).
_ADDRESS_ATTRIBUTES = frozenset({"_stop_words_id"})


def canonical_skops(data: bytes) -> bytes:
    """The same skops file, written reproducibly: skops names objects by their memory
    address (`__id__` and the `<id>.npy` entries) and stamps zip entries with the current
    time, so two saves of one model differ. Ids are renumbered in order of first
    appearance in schema.json, every entry gets a fixed time, and cached addresses
    (`_ADDRESS_ATTRIBUTES`) are dropped, so equal models give equal bytes."""
    import io as _io
    import zipfile

    src = zipfile.ZipFile(_io.BytesIO(data))
    tree = json.loads(src.read("schema.json"))
    ids: dict[int, int] = {}

    def number(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str) and value[:-4].isdigit():
                    ids.setdefault(int(value[:-4]), len(ids))
                number(value)
        elif isinstance(node, list):
            for value in node:
                number(value)

    def renamed(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = ids[value]
                elif key == "file" and isinstance(value, str) and value[:-4].isdigit():
                    out[key] = f"{ids[int(value[:-4])]}{value[-4:]}"
                else:
                    out[key] = renamed(value)
            return out
        if isinstance(node, list):
            return [renamed(v) for v in node]
        return node

    def forget_addresses(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: forget_addresses(v) for k, v in node.items() if k not in _ADDRESS_ATTRIBUTES}
        if isinstance(node, list):
            return [forget_addresses(v) for v in node]
        return node

    tree = forget_addresses(tree)
    number(tree)
    entries: dict[str, tuple[bytes, int]] = {}
    for info in src.infolist():
        name = info.filename
        stem, dot, ext = name.partition(".")
        if name == "schema.json":
            # compact: the C encoder (with `indent`, json falls back to pure Python)
            body = json.dumps(renamed(tree), separators=(",", ":")).encode()
        else:
            body = src.read(info)
            if stem.isdigit() and int(stem) in ids:
                name = f"{ids[int(stem)]}{dot}{ext}"
        entries[name] = (body, info.compress_type)
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name in sorted(entries):
            body, compress = entries[name]
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            dst.writestr(info, body)
    return buf.getvalue()
