"""Write one published config as sharded Parquet, one set of shards per split, streamed.

Layout: `<config>/<split>-00000-of-00003.parquet`, ... (the Hub's naming), declared in
the card's `configs:` block by the glob `<config>/<split>-*.parquet`. A shard is closed
once it holds `max_shard_bytes` of Parquet (default 500 MB, the `datasets` library's
`push_to_hub` default shard size; the Hub recommends files under 20 GB). Rows are sorted
by the config's key columns, as before sharding.

The rows are read through DuckDB (`ORDER BY` the keys, joined to the split assignment)
and fetched in record batches, so memory does not grow with the table: DuckDB sorts
within its memory cap and spills past it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dars.core import duck
from dars.core.errors import EmptySplitError, InputDataError
from dars.core.schema import KEYS, SPLITS

DEFAULT_MAX_SHARD_MB = 500
BATCH_ROWS = 65_536
SPLIT_COLUMN = "__dars_split"


def split_map(splits: pa.Table) -> dict[str, str]:
    """query_id -> split name, from the split stage's table (unknown names refused)."""
    ids = splits.column("query_id").to_pylist()
    names = splits.column("split").to_pylist()
    bad = sorted({s for s in names if s not in SPLITS})
    if bad:
        raise InputDataError(f"splits hold unknown split names {bad}; valid: {list(SPLITS)}")
    return dict(zip(ids, names, strict=True))


def present_splits(splits: Mapping[str, str]) -> tuple[str, ...]:
    """The splits that hold at least one query, in contract order."""
    used = set(splits.values())
    return tuple(s for s in SPLITS if s in used)


def data_files_glob(config: str, split: str) -> str:
    return f"{config}/{split}-*.parquet"


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


@dataclass
class SplitShards:
    """The shards of one split: written files (in order), rows and bytes."""

    files: list[Path] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


class _RollingWriter:
    """Parquet shards of one split, a new file once the current one is big enough."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, max_bytes: int) -> None:
        self.folder, self.split, self.schema, self.max_bytes = folder, split, schema, max_bytes
        self.out = SplitShards()
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._path = self.folder / f".{self.split}-{len(self.out.files):05d}.parquet.part"
            self._writer = pq.ParquetWriter(self._path, self.schema)
        self._writer.write_table(table)
        self.out.rows += table.num_rows
        if self._path is not None and self._path.stat().st_size >= self.max_bytes:
            self._close()

    def _close(self) -> None:
        if self._writer is not None and self._path is not None:
            self._writer.close()
            self.out.files.append(self._path)
            self._writer, self._path = None, None

    def finish(self) -> SplitShards:
        """Close the last shard and give every shard its final `-of-N` name."""
        self._close()
        final = []
        for i, part in enumerate(self.out.files):
            target = self.folder / shard_name(self.split, i, len(self.out.files))
            os.replace(part, target)
            final.append(target)
            self.out.bytes += target.stat().st_size
        self.out.files = final
        return self.out


def table_schema(paths: Sequence[Path]) -> pa.Schema:
    """The published schema: the columns of all files by name (first file's type wins),
    without pandas metadata."""
    fields: dict[str, pa.Field] = {}
    for p in paths:
        for f in pq.read_schema(p):
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()))


def write_config(
    *,
    config: str,
    paths: Sequence[Path],
    splits_path: Path,
    out_dir: Path,
    max_shard_bytes: int,
    batch_rows: int = BATCH_ROWS,
) -> tuple[pa.Schema, dict[str, SplitShards]]:
    """Write `<out_dir>/<config>/<split>-*.parquet` from the rows of `paths` (Parquet),
    assigned to splits by `query_id` through `splits_path`. Returns the schema and the
    shards per split (a split with no rows has no files). A shard is closed after the
    batch (`batch_rows` rows) that takes it past `max_shard_bytes`."""
    schema = table_schema(paths)
    folder = out_dir / config
    folder.mkdir(parents=True, exist_ok=True)
    writers = {s: _RollingWriter(folder, s, schema, max_shard_bytes) for s in SPLITS}
    keys = ", ".join(f"t.{duck.ident(k)}" for k in KEYS[config])
    cols = ", ".join(f"t.{duck.ident(f.name)}" for f in schema)
    assigned = f"SELECT DISTINCT query_id, split FROM read_parquet({duck.quote(splits_path)})"
    sql = (
        f"SELECT s.split AS {SPLIT_COLUMN}, {cols} FROM {duck.read_parquet(paths)} t "
        f"LEFT JOIN ({assigned}) s USING (query_id) ORDER BY {keys}"
    )
    con = duck.connect()
    try:
        reader = duck.record_batches(con, sql, batch_rows)
        for batch in reader:
            table = pa.Table.from_batches([batch])
            split = table.column(SPLIT_COLUMN)
            if split.null_count:
                missing = pc.unique(pc.filter(table.column("query_id"), pc.is_null(split)))
                raise InputDataError(
                    f"{config} has rows for query ids that data/splits.parquet does not assign "
                    f"to a split, e.g. {missing.to_pylist()[:5]}; rebuild the split stage"
                )
            rows = table.drop_columns([SPLIT_COLUMN]).cast(schema)
            for s, writer in writers.items():
                writer.write(rows.filter(pc.equal(split, s)))
    finally:
        con.close()
    return schema, {s: w.finish() for s, w in writers.items()}


@dataclass
class Written:
    """What `write_configs` wrote: per config, its schema and rows/bytes per split."""

    schemas: dict[str, pa.Schema] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    bytes: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        return sum(sum(b.values()) for b in self.bytes.values())


def write_configs(
    *,
    sources: Mapping[str, Sequence[Path]],
    splits_path: Path,
    assignment: Mapping[str, str],
    out_dir: Path,
    max_shard_bytes: int,
) -> Written:
    """`write_config` for every config of `sources` (config -> its Parquet files). Every
    split that holds a query (`assignment`) must get rows in every config: the Hub loader
    cannot read an empty Parquet split (EmptySplitError otherwise)."""
    out = Written()
    present = present_splits(assignment)
    for c, paths in sources.items():
        out.schemas[c], written = write_config(
            config=c,
            paths=paths,
            splits_path=splits_path,
            out_dir=out_dir,
            max_shard_bytes=max_shard_bytes,
        )
        out.rows[c] = {s: written[s].rows for s in present}
        out.bytes[c] = {s: written[s].bytes for s in present}
        for s in present:
            if written[s].rows == 0:
                raise EmptySplitError(
                    f"split {s!r} of config {c!r} would have no rows ({len(assignment)} "
                    f"queries assigned as {dict(sorted(Counter(assignment.values()).items()))}"
                    "); the Hub loader cannot read an empty Parquet split. The "
                    f"{c} input lacks rows for that split's queries: rebuild it"
                )
    return out
