"""`dars import`: bring another release's scored generations into the data contract.

One file per source (`dars_release.py`, `routerbench.py`); `workspace.py` writes what
they read as a ready workspace (params.yaml + data/ + reports/import.json). The CLI then
runs the project's own `validate` and `aggregate` stages on it, so labels, routers,
metrics, the card and `dars bench` work on imported data unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dars.importers.workspace import Imported, write_workspace

SOURCES = ("dars-release", "routerbench")


def read_source(source: str, path: str | Path, *, allow_pickle: bool = False) -> Imported:
    """Read one source release (no files written)."""
    if source == "dars-release":
        from dars.importers.dars_release import read_release

        return read_release(path)
    if source == "routerbench":
        from dars.importers.routerbench import read_routerbench

        return read_routerbench(path, allow_pickle=allow_pickle)
    from dars.core.errors import UnknownNameError
    from dars.core.registry import unknown_name_message

    raise UnknownNameError(unknown_name_message("import source", source, list(SOURCES)))


def import_source(
    source: str, path: str | Path, *, out: str | Path, allow_pickle: bool = False
) -> dict[str, Any]:
    """Read `path` and write the workspace `out`; returns reports/import.json's content."""
    return write_workspace(read_source(source, path, allow_pickle=allow_pickle), out)


__all__ = ["SOURCES", "Imported", "import_source", "read_source", "write_workspace"]
