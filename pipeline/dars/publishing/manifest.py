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


def lock_digest(lock: Mapping[str, Any], *, own_stage: str = "card") -> str:
    """sha256 of dvc.lock's entries for every stage but `own_stage` (canonical JSON).

    While `dars card` runs, DVC has updated the entries of the stages before it, but the
    card stage's own entry is still the previous build's. A hash of the whole file made
    the manifest, and so the publish folder, depend on what was built before."""
    stages = {k: v for k, v in (lock.get("stages") or {}).items() if k != own_stage}
    text = json.dumps(stages, sort_keys=True, separators=(",", ":"), default=str)
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
