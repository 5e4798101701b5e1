"""The publish folder's MANIFEST.json and the hashes it records.

`dars card` writes `publish/MANIFEST.json` (sha256 and size of every file, the md5 of
every input next to the md5 dvc.lock records for it); `dars publish` and consumers check
a folder against it. Both use these helpers, so they hash the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST = "MANIFEST.json"


def file_digest(path: str | Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lock_digest(recorded: Mapping[str, Any]) -> str:
    """sha256 of what dvc.lock records for the card's inputs ({path: md5 or None},
    canonical JSON).

    Not of the whole file: while `dars card` runs, its own entry is the previous build's,
    and the other stages' entries hold code hashes the card does not depend on, so a hash
    of the file made the publish folder depend on build history and on code changes that
    DVC (rightly) does not rerun the card for."""
    text = json.dumps(dict(recorded), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_file_md5s(lock: Mapping[str, Any]) -> dict[str, str]:
    """path -> md5 for every single-file output dvc.lock records (directories skipped)."""
    found: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for entry in stage.get("outs") or []:
            md5 = entry.get("md5")
            if md5 and not md5.endswith(".dir"):
                found[str(entry["path"])] = md5
    return found
