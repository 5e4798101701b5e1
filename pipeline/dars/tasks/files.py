"""Source rows for the Hub-schema loaders: `datasets.load_dataset` for the Hub, and a
row-by-row reader for local JSON files.

Local JSON and JSON Lines are read by Python, one record at a time, not by Arrow's type
inference. Arrow infers one type per column for the whole file, so one odd row decides
the fate of every row: a single list-valued answer among integers made `datasets` turn
all answers into one type and every row was quarantined, and one lone UTF-16 surrogate
failed the whole file with a message that named no row. Here each record keeps its own
types, and a line that is not valid UTF-8 or not valid JSON becomes one `Bad` record
(reason + field) that the loader quarantines; the other rows are kept.

Bytes that are not UTF-8 are decoded with `surrogateescape`, so a row that holds them
carries lone surrogates and is quarantined as `invalid_utf8` by `prepare` (a lone
surrogate written as a JSON escape, `"\\ud800"`, ends up the same way).

Parquet (typed columns, no inference) goes through `datasets`' packaged `parquet` builder.
"""

from __future__ import annotations

import glob
import gzip
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dars.core.errors import InputDataError, MissingExtraError, ParamsError

JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


@dataclass(frozen=True)
class Bad:
    """A source record that could not be read: quarantined with this reason and field."""

    reason: str
    field: str
    raw: str


def unreadable(record: Any, *, row_index: int, grader: str, source: str, license: str) -> Any:
    """A quarantined Candidate for a record that is a `Bad` line or not a JSON object, or
    None for a record a loader can read."""
    from dars.tasks.base import Candidate, Rejection

    if isinstance(record, Bad):
        reject, raw = Rejection(reason=record.reason, field=record.field), record.raw
    elif not isinstance(record, Mapping):
        reject, raw = Rejection(reason="wrong_type", field="record"), record
    else:
        return None
    return Candidate(
        row_index=row_index,
        source_id=None,
        prompt=None,
        reference=None,
        grader=grader,
        source=source,
        license=license,
        reject=reject,
        raw=raw,
    )


def file_list(data_files: Any, *, split: str, key: str) -> list[str]:
    """`data_files` as a list of paths: a path, a list of paths, or {split: path(s)}."""
    if isinstance(data_files, Mapping):
        if split not in data_files:
            raise ParamsError(
                f"Parameter '{key}.data_files' has no files for split {split!r}; "
                f"it has splits {sorted(map(str, data_files))}"
            )
        data_files = data_files[split]
    if isinstance(data_files, str):
        data_files = [data_files]
    if (
        not isinstance(data_files, Sequence)
        or not data_files
        or not all(isinstance(f, str) and f for f in data_files)
    ):
        raise ParamsError(
            f"Parameter '{key}.data_files' = {data_files!r} is not a path, a list of paths "
            "or a mapping split -> path(s)"
        )
    out: list[str] = []
    for pattern in data_files:
        if glob.has_magic(pattern):
            matched = sorted(glob.glob(pattern, recursive=True))
            if not matched:
                raise InputDataError(
                    f"Parameter '{key}.data_files' pattern {pattern!r} matches no file"
                )
            out.extend(matched)
        else:
            out.append(pattern)
    return out


def file_format(path: str, *, key: str) -> str:
    name = path.lower()
    if name.endswith(JSON_SUFFIXES):
        return "json"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise ParamsError(
        f"Parameter '{key}.data_files' names {path!r}, whose format is not known; "
        f"valid endings: {', '.join(JSON_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def _read_bytes(path: str) -> bytes:
    if not Path(path).is_file():
        raise InputDataError(f"Data file {path!r} does not exist")
    try:
        data = Path(path).read_bytes()
        return gzip.decompress(data) if path.lower().endswith(".gz") else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputDataError(f"Data file {path!r} is not readable: {exc}") from exc


def _snippet(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more chars]"


def json_records(path: str) -> Iterator[Any]:
    """Every record of a JSON Lines file, or of a JSON file holding one array of records.

    A line that is not JSON is yielded as `Bad('invalid_json', 'record', ...)` and the
    reading goes on. A file that starts with `[` is read as one JSON array when it parses
    as one; otherwise (a JSON Lines file whose first record is an array) line by line."""
    text = _read_bytes(path).decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            yield from data
            return
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield Bad(reason="invalid_json", field="record", raw=_snippet(line))


def load_hub(
    *,
    path: str,
    name: str | None,
    split: str,
    revision: str | None,
    cache_dir: str | None,
    data_files: Any,
    key: str,
) -> Any:
    """`datasets.load_dataset(...)`, with a one-line error naming the dataset on failure."""
    try:
        import datasets
    except ImportError as exc:  # a core dependency, but say how to fix a broken install
        raise MissingExtraError(
            f"Task '{key}' needs the 'datasets' package: pip install datasets"
        ) from exc
    try:
        return datasets.load_dataset(
            path, name, split=split, data_files=data_files, revision=revision, cache_dir=cache_dir
        )
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        raise InputDataError(
            f"Could not load Hugging Face dataset {path!r} (name={name!r}, "
            f"split={split!r}, data_files={data_files!r}) for '{key}': {exc}"
        ) from exc


def source_rows(
    *,
    path: str,
    name: str | None,
    split: str,
    data_files: Any,
    revision: str | None,
    cache_dir: str | None,
    key: str,
) -> list[Any]:
    """The rows of one split, in source order: dicts, or `Bad` records.

    Without `data_files` the split comes from the Hub (`datasets.load_dataset(path, name,
    split=...)`). With `data_files` (local files in the Hub schema, as tests use) JSON
    files are read row by row and parquet files through `datasets`' parquet builder."""
    if data_files is None:
        ds = load_hub(
            path=path,
            name=name,
            split=split,
            revision=revision,
            cache_dir=cache_dir,
            data_files=None,
            key=key,
        )
        return list(ds)
    files = file_list(data_files, split=split, key=key)
    formats = {file_format(f, key=key) for f in files}
    if len(formats) > 1:
        raise ParamsError(
            f"Parameter '{key}.data_files' mixes JSON and parquet files; use one format"
        )
    if formats == {"json"}:
        return [record for f in files for record in json_records(f)]
    for f in files:
        if not Path(f).is_file():
            raise InputDataError(f"Data file {f!r} does not exist")
    ds = load_hub(
        path="parquet",
        name=None,
        split="train",
        revision=None,
        cache_dir=cache_dir,
        data_files=files,
        key=key,
    )
    return list(ds)


# --- settings and sampling shared by the Hub-schema loaders (gpqa, math, drop) ------------

HUB_KEYS = ("kind", "path", "name", "split", "n", "seed", "data_files", "revision", "cache_dir")


@dataclass(frozen=True)
class HubSettings:
    path: str
    name: str | None
    split: str
    n: int | None
    seed: int
    data_files: Any
    revision: str | None
    cache_dir: str | None


def hub_settings(
    config: Mapping[str, Any],
    *,
    key: str,
    path: str,
    name: str | None,
    split: str,
    extra: tuple[str, ...] = (),
) -> HubSettings:
    """The common settings of a Hub-schema loader, with that loader's defaults; `extra`
    names the loader's own settings (it reads them itself)."""
    from dars.tasks.base import check_keys, int_param, str_param

    check_keys(config, allowed=HUB_KEYS + extra, key=key)
    got_path = str_param(config, "path", key=key, default=path)
    got_split = str_param(config, "split", key=key, default=split)
    seed = int_param(config, "seed", key=key, default=0, lo=0)
    assert got_path is not None and got_split is not None and seed is not None
    data_files = config.get("data_files")
    if data_files is not None:
        file_list(data_files, split=got_split, key=key)  # fail early on a bad value
    return HubSettings(
        path=got_path,
        name=str_param(config, "name", key=key, default=name, allow_none=True),
        split=got_split,
        n=int_param(config, "n", key=key, default=None, lo=1, allow_none=True),
        seed=seed,
        data_files=data_files,
        revision=str_param(config, "revision", key=key, default=None, allow_none=True),
        cache_dir=str_param(config, "cache_dir", key=key, default=None, allow_none=True),
    )


def rows_for(settings: HubSettings, *, key: str) -> list[Any]:
    return source_rows(
        path=settings.path,
        name=settings.name,
        split=settings.split,
        data_files=settings.data_files,
        revision=settings.revision,
        cache_dir=settings.cache_dir,
        key=key,
    )


def sample_indices(
    strata: Sequence[str], *, n: int | None, seed: int, salt: str, key: str
) -> list[int]:
    """Row indices to keep, in source order: all rows when `n` is None, else a seeded
    sample of `n` rows, stratified by `strata` (one label per row) with proportional
    allocation (largest remainder; ties broken by stratum name). A pure function of
    (strata, n, seed, salt), so the same settings draw the same rows."""
    import random

    total = len(strata)
    if n is None or n >= total:
        if n is not None and n > total:
            raise ParamsError(
                f"Parameter '{key}.n' = {n} asks for more than the {total} source rows; "
                f"use n <= {total} or null for all"
            )
        return list(range(total))
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(strata):
        groups.setdefault(label, []).append(i)
    quotas = {g: n * len(rows) / total for g, rows in groups.items()}
    alloc = {g: int(q) for g, q in quotas.items()}
    left = n - sum(alloc.values())
    for g in sorted(groups, key=lambda g: (-(quotas[g] - alloc[g]), g))[:left]:
        alloc[g] += 1
    chosen: list[int] = []
    for g in sorted(groups):
        rng = random.Random(f"{salt}:{seed}:{g}")
        chosen.extend(rng.sample(groups[g], alloc[g]))
    return sorted(chosen)
