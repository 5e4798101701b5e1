"""Validation of the build's tables with Great Expectations, on bounded memory.

The tables are never loaded whole: the Parquet files are opened as views of one DuckDB
database (`workspace`), the cross-table rules are computed there as `chk_*` columns and
small derived tables (`derived`), and the GX suites (`suites`) run against a GX SQL data
source over that database (`gx_run`), so every rule shows up in the Data Docs. The JSON
report is assembled by `report`.
"""
