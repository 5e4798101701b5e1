"""The publish folder's MANIFEST.json and the hashes it records.

`dars card` writes `publish/MANIFEST.json` (sha256 and size of every file, the md5 of
every input next to the md5 dvc.lock records for it); `dars publish` and consumers check
a folder against it. Both use these helpers, so they hash the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

import dars
from dars.core import schema
from dars.core.errors import InputDataError

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


def read_lock(path: str | Path | None) -> dict[str, Any]:
    """dvc.lock as a mapping ({} for None: a workspace outside DVC, e.g. one `dars import`
    wrote)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise InputDataError(
            f"dvc.lock file {str(path)!r} does not exist; the card stage runs under `dvc repro`"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise InputDataError(f"dvc.lock file {str(path)!r} does not hold a mapping")
    return data


def manifest_files(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.relative_to(folder).as_posix(): {
            "sha256": file_digest(p, "sha256"),
            "size": p.stat().st_size,
        }
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def input_provenance(*, paths: Iterable[Path], lock: Mapping[str, Any]) -> dict[str, Any]:
    """md5 of every input file next to the md5 dvc.lock records for it (if any)."""
    recorded = lock_file_md5s(lock)
    out = {}
    for p in sorted(set(paths)):
        key = p.as_posix()
        out[key] = {"md5": file_digest(p, "md5"), "dvc_lock_md5": recorded.get(key)}
    return out


def build_manifest(
    *,
    folder: Path,
    settings: Mapping[str, Any],
    params_path: Path,
    lock_path: Path | None,
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "dataset_version": settings["dataset_version"],
        "repo_id": settings["repo_id"],
        "package": "dars",
        "package_version": dars.__version__,
        "contract_version": schema.CONTRACT_VERSION,
        "params_yaml": params_path.read_text(encoding="utf-8"),
        "params_sha256": file_digest(params_path, "sha256"),
        "dvc_lock": (
            {
                "path": lock_path.as_posix(),
                "inputs_sha256": lock_digest({k: v.get("dvc_lock_md5") for k, v in inputs.items()}),
            }
            if lock_path is not None
            else None
        ),
        "inputs": dict(inputs),
        "files": manifest_files(folder),
    }
