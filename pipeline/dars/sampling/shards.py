"""Checkpoint shards: one Parquet file per finished work unit, named by a content hash.

All shard naming lives here. A shard's name hashes everything that determines its
content (model fingerprint, N, seed, query, variant, rendered prompt: `shard_key`), so a
changed parameter never reuses a stale shard. Units that a backend decodes together in a
fixed group also hash their group (`group_key`, `grouped_shard_key`); an adaptive run's
shards are named by round and query (`round_shard_path`). Shards are written
atomically (`dars.core.io.write_table`: a temporary file, then a rename). A kill between
the two leaves a `.<name>.parquet.<random>.tmp` file; `remove_temp_files` deletes those
when the next run starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from dars.core import schema
from dars.core.params import ModelConfig, SampleConfig

log = logging.getLogger(__name__)
SHARD_FORMAT = 1
TEMP_GLOB = ".*.parquet.*.tmp"  # dars.core.io's atomic-write temporaries of shards


def shard_key(
    *, config: ModelConfig, sample: SampleConfig, query_id: str, variant_id: int, prompt: str
) -> str:
    blob = json.dumps(
        {
            "format": SHARD_FORMAT,
            "model": config.name,
            "config": config.fingerprint_fields(),
            "n": sample.n,
            "seed": sample.seed,
            "query_id": query_id,
            "variant_id": variant_id,
            "prompt": prompt,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def group_key(members: list[str], *, slots: int) -> str:
    """The key of a fixed group: its members' `shard_key`s, in order, and the slot count."""
    blob = json.dumps({"slots": slots, "members": members})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def grouped_shard_key(key: str, *, group: str) -> str:
    """The shard key of a unit (`shard_key`) decoded in a fixed group (`group_key`)."""
    return hashlib.sha256(f"{key}|{group}".encode()).hexdigest()[:24]


def shard_path(shard_dir: Path, key: str) -> Path:
    return shard_dir / f"{key}.parquet"


def round_shard_path(folder: Path, r: int, query_id: str) -> Path:
    """An adaptive run's shard of round `r` for one query (`dars.sampling.adaptive`; the
    run's folder is named by `adaptive.run_key`)."""
    return folder / f"r{r:04d}-{hashlib.sha256(query_id.encode()).hexdigest()[:16]}.parquet"


class ShardUnit(Protocol):
    """What `load_done` reads of a work unit (`dars.sampling.units.WorkUnit`)."""

    @property
    def query_id(self) -> str: ...
    @property
    def variant_id(self) -> int: ...
    @property
    def shard(self) -> Path: ...


def load_shard(path: Path, *, n: int, query_id: str, variant_id: int) -> pa.Table | None:
    """A shard is used only if it is readable and holds exactly the expected keys."""
    try:
        table = pq.read_table(path, schema=schema.SAMPLED)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        log.warning("corrupt checkpoint shard %s (%s): redoing it", path, exc)
        return None
    d = table.select(["query_id", "variant_id", "sample_id"]).to_pydict()
    if (
        d["sample_id"] != list(range(n))
        or set(d["query_id"]) != {query_id}
        or set(d["variant_id"]) != {variant_id}
    ):
        log.warning("checkpoint shard %s has unexpected keys: redoing it", path)
        return None
    return table


def load_done(units: Sequence[ShardUnit], *, n: int) -> dict[Path, pa.Table]:
    """The complete, valid shards of `units`; torn or unexpected shards are deleted."""
    tables: dict[Path, pa.Table] = {}
    for u in units:
        if u.shard.exists():
            t = load_shard(u.shard, n=n, query_id=u.query_id, variant_id=u.variant_id)
            if t is None:
                u.shard.unlink()
            else:
                tables[u.shard] = t
    return tables


def remove_temp_files(folders: Iterable[Path]) -> int:
    """Delete the temporary files a killed run left in `folders` (searched recursively);
    returns how many. Only the sample stage of one model writes into its folder, so a
    temporary file found when that stage starts belongs to a run that is gone."""
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for tmp in sorted(folder.rglob(TEMP_GLOB)):
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary shard file(s) left by an interrupted run", removed)
    return removed
