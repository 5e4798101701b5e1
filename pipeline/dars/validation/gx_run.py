"""Running the GX suites: an ephemeral context, a SQL data source over the workspace's
DuckDB database, one validation definition per table, and the Data Docs site."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from dars.core.errors import InputDataError
from dars.validation.workspace import Relation, Workspace

SITE_NAME = "dars"


@dataclass(frozen=True)
class TableCheck:
    """One GX suite run over one table of the workspace."""

    name: str
    relation: Relation
    expectations: tuple[Any, ...]
    index_columns: tuple[str, ...]


class _DuckDBDialect(str):
    """The name GX compares dialects by (`in`) and the `.value` it reads from them."""

    value = "duckdb"


def keep_duckdb_connection() -> None:
    """Make GX keep one connection open for DuckDB, as it does for SQLite.

    GX opens and closes a SQLAlchemy connection around every query, except for the
    dialects in `_PERSISTED_CONNECTION_DIALECTS`; the DuckDB driver (duckdb_engine) drops
    a query's rows when its connection closes, so every metric would come back empty.
    GX 1.x has no public switch for this, so DuckDB is added to that list (idempotent)."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    current = getattr(engine, "_PERSISTED_CONNECTION_DIALECTS", None)
    if current is None:
        raise RuntimeError(
            "this great_expectations version has no _PERSISTED_CONNECTION_DIALECTS; the "
            "DuckDB data source of `dars validate` needs it (checked on GX 1.24)"
        )
    if not any(getattr(d, "value", d) == "duckdb" for d in current):
        engine._PERSISTED_CONNECTION_DIALECTS = (*current, _DuckDBDialect("duckdb"))


@contextlib.contextmanager
def quiet_gx() -> Iterator[None]:
    """Silence GX's logger for the duration (progress bars are off in the context config)."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_context(*, docs_dir: Path) -> Any:
    """An ephemeral (in-memory) GX context: no project files anywhere; the only files GX
    writes are the Data Docs site under `docs_dir`."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def result_format(*, columns: Collection[str], index_columns: Sequence[str], k: int) -> dict:
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": k}
    present = [c for c in index_columns if c in columns]
    if present:
        fmt["unexpected_index_column_names"] = present
    return fmt


def add_datasource(context: Any, ws: Workspace) -> Any:
    """A GX SQL data source over the workspace's DuckDB file (this process's own
    connection to it is closed first: GX opens it with the same settings)."""
    keep_duckdb_connection()
    ws.release()
    return context.data_sources.add_sql(
        name="dars",
        connection_string=ws.connection_string,
        kwargs={"connect_args": {"config": dict(ws.config)}},
    )


def close_datasource(datasource: Any) -> None:
    """Close GX's kept connection to the workspace file and dispose of its engine."""
    engine = datasource.get_execution_engine()
    conn = getattr(engine, "_connection", None)
    if conn is not None:
        conn.close()
        engine._connection = None
    engine.engine.dispose()


def run_check(*, context: Any, datasource: Any, check: TableCheck, k: int) -> list[Any]:
    """Run one suite over one table of the workspace; the results go to the context's
    (in-memory) results store, from which `build_data_docs` renders them. Returns the
    expectation results in suite order."""
    name = check.name.replace("/", "__")  # GX store keys take no '/' (model ids have one)
    asset = datasource.add_table_asset(name=name, table_name=check.relation.sql_name)
    batch = asset.add_batch_definition_whole_table(f"{name} (whole table)")
    suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=list(check.expectations))
    )
    vd = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    suite_result = vd.run(
        result_format=result_format(
            columns=check.relation.columns, index_columns=check.index_columns, k=k
        ),
    )
    order = {exp.id: i for i, exp in enumerate(suite.expectations)}
    return sorted(
        suite_result.results, key=lambda r: order.get(r.expectation_config.id, len(order))
    )


def prepare_docs_dir(docs_dir: Path) -> None:
    """Replace an earlier Data Docs site; refuse to delete a folder that is not one."""
    if docs_dir.is_file():
        raise InputDataError(f"Data Docs folder {str(docs_dir)!r} is a file")
    if docs_dir.is_dir() and any(docs_dir.iterdir()):
        if not (docs_dir / "index.html").exists():
            raise InputDataError(
                f"Data Docs folder {str(docs_dir)!r} is not empty and holds no Data Docs "
                "site (no index.html); refusing to delete it: give an empty or new folder"
            )
        shutil.rmtree(docs_dir)
