"""`dars export FORMAT OUT`: write a build's tables in another tool's layout.

One file per format: `dars_release.py` (the DARS reference release's scored JSONL, which
the authors' router scripts read) and `llmrouter.py` (LLMRouter's routing JSONL). Both
read a build's data/ folder (the contract tables) with pyarrow, a row group at a time,
and write through `build.JsonlWriter` (atomic: a file appears whole or not at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FORMATS = ("dars-release", "llmrouter")


def export(
    fmt: str, *, data_dir: str | Path, params: str | Path | None, out: str | Path
) -> dict[str, Any]:
    """Write the build under `data_dir` (with its params.yaml, when given) to `out` in
    format `fmt`; returns what was written (files and row counts)."""
    if fmt == "dars-release":
        from dars.exporters.dars_release import export_release

        return export_release(data_dir=data_dir, params=params, out=out)
    if fmt == "llmrouter":
        from dars.exporters.llmrouter import export_llmrouter

        return export_llmrouter(data_dir=data_dir, params=params, out=out)
    from dars.core.errors import UnknownNameError
    from dars.core.registry import unknown_name_message

    raise UnknownNameError(unknown_name_message("export format", fmt, list(FORMATS)))


__all__ = ["FORMATS", "export"]
