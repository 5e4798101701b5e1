"""The reference routers in `publish/routers/`: which of the train stage's `.skops` files
are published (per router, the DARS-supervised one and single-shot repeat 0, within a
share of the repository's bytes), copied with their index and test metrics, each listed
with the types a consumer must trust to load it."""

from __future__ import annotations

import math
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dars.core.errors import InputDataError
from dars.core.io import read_json, write_json
from dars.publishing.summaries import is_number

ROUTERS_DIR = "routers"
ROUTER_METRICS = "metrics.json"


def json_safe(obj: Any) -> Any:
    """NaN and infinities -> null, so the published JSON is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def router_files(models_dir: str | Path) -> list[Path]:
    folder = Path(models_dir)
    if not folder.is_dir():
        raise InputDataError(
            f"models folder {str(folder)!r} does not exist; the train stage writes "
            "models/<router>-<supervision>.skops"
        )
    files = sorted(folder.glob("*.skops"))
    if not files:
        raise InputDataError(
            f"models folder {str(folder)!r} holds no .skops router files; "
            "the train stage writes models/<router>-<supervision>.skops"
        )
    return files


def published_router_files(models_dir: str | Path) -> list[Path]:
    """The routers that are published: per router, the DARS-supervised one and single-shot
    repeat 0 (by models/index.json when present, else by the train stage's file names)."""
    files = router_files(models_dir)
    index = Path(models_dir) / "index.json"
    entries = read_json(index, what="models index").get("routers") if index.exists() else None
    if isinstance(entries, list):
        keep = {
            e["path"]
            for e in entries
            if e.get("supervision") == "dars"
            or (e.get("supervision") == "single_shot" and int(e.get("repeat", 0)) == 0)
        }
        chosen = [f for f in files if f.name in keep]
    else:
        chosen = [f for f in files if f.name.endswith(("-dars.skops", "-single_shot-r0.skops"))]
    return chosen or files


def within_budget(
    files: Sequence[Path], *, data_bytes: int, share: float, metrics: Mapping[str, Any]
) -> tuple[list[Path], list[Path]]:
    """The routers that fit in `share` of the repository's data + router bytes: the
    DARS-supervised ones first, then single-shot, each by test utility (best first, from
    the router metrics); returns (kept, left out)."""
    budget = share / (1 - share) * data_bytes if share < 1 else math.inf

    def utility(f: Path) -> float:
        name = f.name.split("-dars.")[0].split("-single_shot-")[0]
        sup = "dars" if "-dars." in f.name else "single_shot"
        r = (metrics.get("routers") or {}).get(name) or {}
        value: Any = ((r.get(sup) or {}).get("utility") or {}).get("value")  # is_number checks
        return float(value) if is_number(value) and math.isfinite(value) else -math.inf

    order = sorted(files, key=lambda f: ("-dars." not in f.name, -utility(f), f.name))
    kept: list[Path] = []
    used = 0
    for f in order:
        if used + f.stat().st_size <= budget:
            kept.append(f)
            used += f.stat().st_size
    return sorted(kept), [f for f in files if f not in kept]


def untrusted_types(path: Path) -> list[str]:
    """Types a consumer must pass as `trusted=` to `skops.io.load` (checked, not loaded)."""
    from dars.core.skops_io import skops_io

    try:
        return sorted(skops_io().get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputDataError(
            f"router file {str(path)!r} is not a readable skops file: {exc}"
        ) from exc


def package_routers(
    files: Sequence[Path], *, models_dir: str | Path, metrics: Mapping[str, Any], out_dir: Path
) -> list[dict[str, Any]]:
    """Copy `files` to `<out_dir>/routers/` with models/index.json (listing only them) and
    the metrics (strict JSON); returns one row per file: path, size, types to trust."""
    folder = out_dir / ROUTERS_DIR
    folder.mkdir()
    rows = []
    for f in files:
        shutil.copyfile(f, folder / f.name)
        rows.append(
            {
                "file": f"{ROUTERS_DIR}/{f.name}",
                "size": f.stat().st_size,
                "trusted": untrusted_types(f),
            }
        )
    index = Path(models_dir) / "index.json"
    if index.exists():
        idx = read_json(index, what="models index")
        if isinstance(idx.get("routers"), list):  # list only the published files
            published = {f.name for f in files}
            idx["routers"] = [e for e in idx["routers"] if e.get("path") in published]
        write_json(idx, folder / "index.json")
    write_json(json_safe(metrics), folder / ROUTER_METRICS)
    return rows
