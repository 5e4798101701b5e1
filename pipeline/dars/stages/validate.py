"""`validate` stage: Great Expectations suites over queries, variants, generations and
outcomes, plus coverage (every accepted variant x model has exactly N samples) and the
per-model error rate.

Cross-table rules (referential integrity, "score is null exactly when status == error",
coverage) are computed with pandas into derived columns named `chk_*` or into small
derived tables, and GX expects them to hold, so every rule shows up in the Data Docs.

The JSON report is deterministic (no timestamps, sorted keys) so that DVC outputs are
reproducible; it is written even when validation fails, and then the stage raises
ValidationFailedError naming the table, the expectation and example rows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from dars.core import params as P
from dars.core.errors import InputDataError, ValidationFailedError
from dars.core.io import model_file, model_file_stem, read_frame, write_json
from dars.core.schema import (
    CONTRACT_VERSION,
    GEN_STATUSES,
    GRADE_STATUSES,
    GRADERS,
    IMPORTED_GRADER,
    KEYS,
    QUERIES,
    VARIANTS,
    names,
)

# The contract's minimum columns (DESIGN.md, "Data contract, v1") and which may be null.
QUERY_COLUMNS = names(QUERIES)
VARIANT_COLUMNS = names(VARIANTS)
GENERATION_COLUMNS = [
    "query_id",
    "variant_id",
    "model",
    "sample_id",
    "seed",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "status",
    "error",
]
OUTCOME_COLUMNS = GENERATION_COLUMNS + ["score", "parsed", "grade_status"]
NULLABLE = {
    "queries": frozenset(),
    "variants": frozenset({"reject_reason"}),
    "generations": frozenset({"completion", "error"}),
    "outcomes": frozenset({"completion", "error", "score", "parsed"}),
}
COVERAGE_KEYS = ["table", "model", "query_id", "variant_id"]
SITE_NAME = "dars"
MESSAGE_EXAMPLES = 3


@dataclass(frozen=True)
class ValidateConfig:
    n: int
    max_error_rate: float
    max_unexpected_examples: int
    models: tuple[str, ...]
    # adaptive sampling: (min_per_pair, max_per_pair) rows per (query, model) instead of
    # exactly n per accepted variant; None for uniform builds
    per_pair: tuple[int, int] | None = None

    @property
    def max_sample_id(self) -> int:
        return (self.per_pair[1] if self.per_pair else self.n) - 1


@dataclass(frozen=True)
class TableCheck:
    """One GX suite run over one in-memory table."""

    name: str
    frame: pd.DataFrame
    expectations: tuple[Any, ...]
    index_columns: tuple[str, ...]


# --------------------------------------------------------------------------- params


def read_config(params: dict[str, Any]) -> ValidateConfig:
    n = P.sample_config(params).n
    v = P.section(params, "validate")
    s = P.section(params, "sampling")
    # adaptive: the sampler's per-pair counts; imported (`dars import`): the source's
    per_pair = (s.min_per_pair, s.max_per_pair) if s.strategy in ("adaptive", "imported") else None
    return ValidateConfig(
        n=n,
        max_error_rate=float(v.max_error_rate),
        max_unexpected_examples=v.max_unexpected_examples,
        models=tuple(P.model_names(params)),
        per_pair=per_pair,
    )


# --------------------------------------------------------------------------- inputs


def read_model_tables(
    *, folder: str | Path, models: Sequence[str], what: str
) -> dict[str, pd.DataFrame]:
    """One `<model>.parquet` per listed model; a missing one is an InputDataError naming it."""
    folder = Path(folder)
    frames = {}
    for model in models:
        path = model_file(folder, model)
        if not path.exists():
            raise InputDataError(
                f"{what} file for model {model!r} ({str(path)!r}) does not exist; "
                f"params 'models' lists {list(models)}, so {str(folder)!r} needs one "
                "<model>.parquet each"
            )
        frames[model] = read_frame(path, what=f"{what} for model {model!r}")
    return frames


def ignored_files(*, folder: str | Path, models: Sequence[str]) -> list[str]:
    """Parquet files in a model folder for models that params does not list (not validated)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stems = {model_file_stem(m) for m in models}
    return sorted(p.name for p in folder.glob("*.parquet") if p.stem not in stems)


# --------------------------------------------------------------------------- derived columns


def _has(df: pd.DataFrame, *cols: str) -> bool:
    return all(c in df.columns for c in cols)


def _key_index(df: pd.DataFrame, cols: Sequence[str]) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(df[list(cols)].astype(object))


def _membership(df: pd.DataFrame, ref: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """Row-wise: does this row's key `cols` exist in `ref`?"""
    return np.asarray(_key_index(df, cols).isin(_key_index(ref, cols)), dtype=bool)


def with_query_checks(*, queries: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    out = queries.copy()
    if _has(queries, "query_id") and _has(variants, "query_id", "variant_id", "accepted"):
        v0 = variants[(variants["variant_id"] == 0) & (variants["accepted"] == True)]  # noqa: E712
        out["chk_variant0_accepted"] = out["query_id"].isin(set(v0["query_id"])).to_numpy(bool)
    return out


def with_variant_checks(*, variants: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    out = variants.copy()
    if _has(variants, "query_id") and _has(queries, "query_id"):
        out["chk_query_exists"] = out["query_id"].isin(set(queries["query_id"])).to_numpy(bool)
    return out


def with_generation_checks(
    *, generations: pd.DataFrame, queries: pd.DataFrame, variants: pd.DataFrame
) -> pd.DataFrame:
    out = generations.copy()
    if _has(out, "query_id") and _has(queries, "query_id"):
        out["chk_query_exists"] = out["query_id"].isin(set(queries["query_id"])).to_numpy(bool)
    keys = ("query_id", "variant_id")
    if _has(out, *keys) and _has(variants, *keys):
        out["chk_variant_exists"] = _membership(out, variants, keys)
        if "accepted" in variants.columns:
            rejected = variants[variants["accepted"] != True]  # noqa: E712
            # an unknown variant fails chk_variant_exists, not this one
            out["chk_variant_accepted"] = ~_membership(out, rejected, keys)
    if _has(out, "status", "completion"):
        out["chk_completion_if_ok"] = (
            (out["status"] != "ok") | out["completion"].notna()
        ).to_numpy(bool)
    if _has(out, "status", "error"):
        out["chk_error_if_error"] = ((out["status"] != "error") | out["error"].notna()).to_numpy(
            bool
        )
    return out


def with_outcome_checks(
    *,
    outcomes: pd.DataFrame,
    generations: pd.DataFrame,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
) -> pd.DataFrame:
    out = with_generation_checks(generations=outcomes, queries=queries, variants=variants)
    if _has(out, "score", "status"):
        out["chk_score_null_iff_error"] = (
            out["score"].isna() == (out["status"] == "error")
        ).to_numpy(bool)
    keys = KEYS["outcomes"]
    if _has(out, *keys) and _has(generations, *keys):
        out["chk_in_generations"] = _membership(out, generations, keys)
    return out


def coverage_frame(
    *,
    variants: pd.DataFrame,
    tables: dict[tuple[str, str], pd.DataFrame],
    n: int,
    per_pair: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """One row per (table, model, accepted variant): how many rows it has, and whether its
    sample ids are exactly 0..n-1. status=error rows count as present.

    Adaptive builds (`per_pair` = (min, max) rows per (query, model)): a variant's sample
    ids must be exactly 0..n_rows-1 (any n_rows, 0 included), and `n_pair_rows` (the
    rows of its query x model) must lie in [min, max]."""
    cols = COVERAGE_KEYS + ["n_rows", "chk_sample_ids_complete"]
    if per_pair is not None:
        cols = cols + ["n_pair_rows"]
        n = per_pair[1]
    if not _has(variants, "query_id", "variant_id", "accepted"):
        return pd.DataFrame(columns=cols)
    is_accepted = variants["accepted"] == True  # noqa: E712 (nulls count as not accepted)
    accepted = variants.loc[is_accepted, ["query_id", "variant_id"]].drop_duplicates()
    parts = []
    for (table, model), df in tables.items():
        if not _has(df, "query_id", "variant_id", "sample_id"):
            continue  # the missing column fails that table's own suite
        in_range = df["sample_id"].between(0, n - 1)
        counts = (
            df.assign(_valid=df["sample_id"].where(in_range))
            .groupby(["query_id", "variant_id"], dropna=False)
            .agg(
                n_rows=("sample_id", "size"),
                n_valid=("_valid", "nunique"),
                id_max=("_valid", "max"),
            )
            .reset_index()
        )
        merged = accepted.merge(counts, on=["query_id", "variant_id"], how="left")
        # an accepted variant without any row has 0 rows: a count, not an imputed result
        merged[["n_rows", "n_valid"]] = merged[["n_rows", "n_valid"]].fillna(0).astype(int)
        if per_pair is None:
            merged["chk_sample_ids_complete"] = (merged["n_valid"] == n).to_numpy(bool)
        else:
            contiguous = (merged["n_valid"] == merged["n_rows"]) & (
                merged["id_max"].isna() | (merged["id_max"] == merged["n_rows"] - 1)
            )
            merged["chk_sample_ids_complete"] = contiguous.to_numpy(bool)
            merged["n_pair_rows"] = merged.groupby("query_id")["n_rows"].transform("sum")
        merged.insert(0, "model", model)
        merged.insert(0, "table", table)
        parts.append(merged[cols])
    if not parts:
        return pd.DataFrame(columns=cols)
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(COVERAGE_KEYS, kind="stable")
        .reset_index(drop=True)
    )


def error_rate_frame(*, generations: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for model, df in generations.items():
        if "status" not in df.columns:
            continue  # the missing column fails the generations suite
        n_rows = len(df)
        n_error = int((df["status"] == "error").sum())
        rate = n_error / n_rows if n_rows else math.nan
        rows.append({"model": model, "rows": n_rows, "n_error": n_error, "error_rate": rate})
    return pd.DataFrame(rows, columns=["model", "rows", "n_error", "error_rate"])


# --------------------------------------------------------------------------- expectations


def _derived(column: str, description: str) -> Any:
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], description=description)


def contract_expectations(
    *, frame: pd.DataFrame, columns: Sequence[str], nullable: frozenset[str], keys: Sequence[str]
) -> list[Any]:
    """Every contract column exists and is non-null where the contract says so; key unique;
    at least one row."""
    exps: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    exps += [gxe.ExpectColumnToExist(column=c) for c in columns]
    exps += [
        gxe.ExpectColumnValuesToNotBeNull(column=c)
        for c in columns
        if c not in nullable and c in frame.columns
    ]
    if _has(frame, *keys):
        exps.append(
            gxe.ExpectColumnValuesToBeUnique(column=keys[0])
            if len(keys) == 1
            else gxe.ExpectCompoundColumnsToBeUnique(column_list=list(keys))
        )
    return exps


def _if_present(frame: pd.DataFrame, exps: Sequence[tuple[str, Any]]) -> list[Any]:
    return [e for col, e in exps if col in frame.columns]


def queries_expectations(frame: pd.DataFrame) -> list[Any]:
    exps = contract_expectations(
        frame=frame, columns=QUERY_COLUMNS, nullable=NULLABLE["queries"], keys=KEYS["queries"]
    )
    return exps + _if_present(
        frame,
        [
            (
                "grader",
                gxe.ExpectColumnValuesToBeInSet(
                    column="grader", value_set=[*GRADERS, IMPORTED_GRADER]
                ),
            ),
            (
                "chk_variant0_accepted",
                _derived(
                    "chk_variant0_accepted",
                    "variant 0 (the original prompt) exists and is accepted",
                ),
            ),
        ],
    )


def variants_expectations(frame: pd.DataFrame) -> list[Any]:
    exps = contract_expectations(
        frame=frame, columns=VARIANT_COLUMNS, nullable=NULLABLE["variants"], keys=KEYS["variants"]
    )
    return exps + _if_present(
        frame,
        [
            ("variant_id", gxe.ExpectColumnValuesToBeBetween(column="variant_id", min_value=0)),
            (
                "accepted",
                gxe.ExpectColumnValuesToBeInSet(column="accepted", value_set=[True, False]),
            ),
            ("chk_query_exists", _derived("chk_query_exists", "query_id exists in queries")),
        ],
    )


def generations_expectations(
    frame: pd.DataFrame, *, model: str, n: int, table: str = "generations"
) -> list[Any]:
    columns = OUTCOME_COLUMNS if table == "outcomes" else GENERATION_COLUMNS
    exps = contract_expectations(
        frame=frame, columns=columns, nullable=NULLABLE[table], keys=KEYS[table]
    )
    return exps + _if_present(
        frame,
        [
            ("model", gxe.ExpectColumnValuesToBeInSet(column="model", value_set=[model])),
            (
                "status",
                gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(GEN_STATUSES)),
            ),
            ("variant_id", gxe.ExpectColumnValuesToBeBetween(column="variant_id", min_value=0)),
            (
                "sample_id",
                gxe.ExpectColumnValuesToBeBetween(column="sample_id", min_value=0, max_value=n - 1),
            ),
            (
                "prompt_tokens",
                gxe.ExpectColumnValuesToBeBetween(column="prompt_tokens", min_value=0),
            ),
            (
                "completion_tokens",
                gxe.ExpectColumnValuesToBeBetween(column="completion_tokens", min_value=0),
            ),
            ("latency_s", gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0)),
            ("cost", gxe.ExpectColumnValuesToBeBetween(column="cost", min_value=0)),
            (
                "true_p",
                gxe.ExpectColumnValuesToBeBetween(column="true_p", min_value=0, max_value=1),
            ),
            ("chk_query_exists", _derived("chk_query_exists", "query_id exists in queries")),
            (
                "chk_variant_exists",
                _derived("chk_variant_exists", "(query_id, variant_id) exists in variants"),
            ),
            (
                "chk_variant_accepted",
                _derived(
                    "chk_variant_accepted", "a sampled variant that exists is an accepted one"
                ),
            ),
            (
                "chk_completion_if_ok",
                _derived("chk_completion_if_ok", "completion is not null when status == 'ok'"),
            ),
            (
                "chk_error_if_error",
                _derived("chk_error_if_error", "error is not null when status == 'error'"),
            ),
        ],
    )


def outcomes_expectations(frame: pd.DataFrame, *, model: str, n: int) -> list[Any]:
    exps = generations_expectations(frame, model=model, n=n, table="outcomes")
    return exps + _if_present(
        frame,
        [
            ("score", gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1)),
            (
                "grade_status",
                gxe.ExpectColumnValuesToBeInSet(
                    column="grade_status", value_set=list(GRADE_STATUSES)
                ),
            ),
            (
                "chk_score_null_iff_error",
                _derived(
                    "chk_score_null_iff_error", "score is null exactly when status == 'error'"
                ),
            ),
            (
                "chk_in_generations",
                _derived(
                    "chk_in_generations", "the outcome's key exists in the model's generations"
                ),
            ),
        ],
    )


def coverage_expectations(*, n: int, per_pair: tuple[int, int] | None = None) -> list[Any]:
    if per_pair is not None:
        lo, hi = per_pair
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_pair_rows",
                min_value=lo,
                max_value=hi,
                description=f"adaptive sampling: every query x model has between "
                f"sampling.min_per_pair = {lo} and sampling.max_per_pair = {hi} rows "
                "(status=error rows count as present)",
            ),
            _derived("chk_sample_ids_complete", "a variant's sample ids are exactly 0..n_rows-1"),
        ]
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_rows",
            min_value=n,
            max_value=n,
            description=f"every accepted variant x model has exactly sample.n = {n} rows "
            "(status=error rows count as present)",
        ),
        _derived("chk_sample_ids_complete", f"sample ids are exactly 0..{n - 1}"),
    ]


def error_rate_expectations(*, max_error_rate: float) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="error_rate"),
        gxe.ExpectColumnValuesToBeBetween(
            column="error_rate",
            min_value=0,
            max_value=max_error_rate,
            description=f"share of status=error generations <= validate.max_error_rate "
            f"= {max_error_rate}",
        ),
    ]


def build_checks(
    *,
    cfg: ValidateConfig,
    queries: pd.DataFrame,
    variants: pd.DataFrame,
    generations: dict[str, pd.DataFrame],
    outcomes: dict[str, pd.DataFrame],
) -> list[TableCheck]:
    q = with_query_checks(queries=queries, variants=variants)
    v = with_variant_checks(variants=variants, queries=queries)
    checks = [
        TableCheck("queries", q, tuple(queries_expectations(q)), tuple(KEYS["queries"])),
        TableCheck("variants", v, tuple(variants_expectations(v)), tuple(KEYS["variants"])),
    ]
    for model, df in generations.items():
        g = with_generation_checks(generations=df, queries=queries, variants=variants)
        checks.append(
            TableCheck(
                f"generations[{model}]",
                g,
                tuple(generations_expectations(g, model=model, n=cfg.max_sample_id + 1)),
                tuple(KEYS["generations"]),
            )
        )
    for model, df in outcomes.items():
        o = with_outcome_checks(
            outcomes=df, generations=generations[model], queries=queries, variants=variants
        )
        checks.append(
            TableCheck(
                f"outcomes[{model}]",
                o,
                tuple(outcomes_expectations(o, model=model, n=cfg.max_sample_id + 1)),
                tuple(KEYS["outcomes"]),
            )
        )
    tables = {("generations", m): df for m, df in generations.items()}
    tables |= {("outcomes", m): df for m, df in outcomes.items()}
    cov = coverage_frame(variants=variants, tables=tables, n=cfg.n, per_pair=cfg.per_pair)
    checks.append(
        TableCheck(
            "coverage",
            cov,
            tuple(coverage_expectations(n=cfg.n, per_pair=cfg.per_pair)),
            tuple(COVERAGE_KEYS),
        )
    )
    err = error_rate_frame(generations=generations)
    checks.append(
        TableCheck(
            "error_rate",
            err,
            tuple(error_rate_expectations(max_error_rate=cfg.max_error_rate)),
            ("model",),
        )
    )
    return checks


# --------------------------------------------------------------------------- GX run


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


def result_format(*, frame: pd.DataFrame, index_columns: Sequence[str], k: int) -> dict:
    fmt: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": k}
    present = [c for c in index_columns if c in frame.columns]
    if present:
        fmt["unexpected_index_column_names"] = present
    return fmt


def run_check(*, context: Any, datasource: Any, check: TableCheck, k: int) -> list[Any]:
    """Run one suite over one table; the results go to the context's (in-memory) results
    store, from which `build_data_docs` renders them. Returns the expectation results in
    suite order."""
    name = check.name.replace("/", "__")  # GX store keys take no '/' (model ids have one)
    asset = datasource.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe(f"{name} (whole table)")
    suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=list(check.expectations))
    )
    vd = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    suite_result = vd.run(
        batch_parameters={"dataframe": check.frame},
        result_format=result_format(frame=check.frame, index_columns=check.index_columns, k=k),
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


# --------------------------------------------------------------------------- report


def plain(value: Any) -> Any:
    """JSON-safe, deterministic: numpy scalars -> Python, NaN -> None, containers recursed."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _columns(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[k] for k in ("column_A", "column_B") if k in kwargs]


def _exception(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for sub in info.values():  # keyed by metric
        msg = _exception(sub)
        if msg:
            return msg
    return None


def _keys_first(example: Any, checked: Sequence[str]) -> Any:
    """Order an example row as key columns first, then the checked value(s)."""
    if not isinstance(example, dict):
        return example
    return {k: v for k, v in example.items() if k not in checked} | {
        k: v for k, v in example.items() if k in checked
    }


def summarize_expectation(result: Any, *, k: int) -> dict[str, Any]:
    cfg = result.expectation_config
    kwargs = {
        key: val
        for key, val in cfg.kwargs.items()
        if key not in ("batch_id", "column", "column_list", "column_A", "column_B")
    }
    res = result.result or {}
    examples = res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list")
    summary = {
        "expectation": cfg.type,
        "columns": _columns(cfg.kwargs),
        "kwargs": kwargs,
        "success": bool(result.success),
        "element_count": res.get("element_count"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_examples": [
            _keys_first(x, _columns(cfg.kwargs)) for x in list(examples or [])[:k]
        ],
        "observed_value": res.get("observed_value"),
        "exception": _exception(result.exception_info),
    }
    if cfg.description:
        summary["description"] = cfg.description
    return plain(summary)


def summarize_table(check: TableCheck, results: Sequence[Any], *, k: int) -> dict[str, Any]:
    exps = [summarize_expectation(r, k=k) for r in results]
    return {
        "rows": len(check.frame),
        "success": all(e["success"] for e in exps),
        "expectations": exps,
    }


def model_counts(
    *,
    generations: dict[str, pd.DataFrame],
    outcomes: dict[str, pd.DataFrame],
    max_error_rate: float,
) -> dict[str, Any]:
    counts = {}
    for model, gen in generations.items():
        out = outcomes[model]
        n_error = int((gen["status"] == "error").sum()) if "status" in gen.columns else None
        grade = {s: 0 for s in GRADE_STATUSES}
        if "grade_status" in out.columns:
            vc = out["grade_status"].astype(object).fillna("<null>").value_counts()
            grade |= {str(s): int(c) for s, c in vc.items()}
        counts[model] = {
            "rows": len(gen),
            "outcome_rows": len(out),
            "n_error": n_error,
            "error_rate": (n_error / len(gen)) if (n_error is not None and len(gen)) else None,
            "max_error_rate": max_error_rate,
            "grade_status": dict(sorted(grade.items())),
        }
    return plain(counts)


def variant_counts(variants: pd.DataFrame) -> dict[str, Any]:
    """Accepted variants, and rejected ones (LLM rewrites) counted by reason: a
    `reject_reason` is "<reason>: <detail>[; <reason>: <detail>...]"; `rejected_by_reason`
    counts the first reason of each rejected variant, `failed_checks` every reason."""
    if not _has(variants, "accepted"):
        return {}
    accepted = variants["accepted"] == True  # noqa: E712
    reasons = (
        variants.loc[~accepted, "reject_reason"].astype(object).fillna("<none>").astype(str)
        if "reject_reason" in variants
        else pd.Series([], dtype=str)
    )
    parts = reasons.str.split("; ")
    first = parts.str[0].str.split(":").str[0].str.strip().value_counts()
    every = parts.explode().dropna().str.split(":").str[0].str.strip().value_counts()
    return plain(
        {
            "accepted": int(accepted.sum()),
            "rejected": int((~accepted).sum()),
            "rejected_by_reason": {str(k): int(v) for k, v in sorted(first.items())},
            "failed_checks": {str(k): int(v) for k, v in sorted(every.items())},
        }
    )


def _example_text(example: Any) -> str:
    if isinstance(example, dict):
        return ", ".join(f"{k}={v}" for k, v in example.items())
    return repr(example)


def failure_message(report: dict[str, Any], *, order: Sequence[str]) -> str:
    failures = [
        (t, e) for t in order for e in report["tables"][t]["expectations"] if not e["success"]
    ]
    table, exp = failures[0]
    head = (
        f"validation failed: table {table!r} expectation "
        f"{exp['expectation']}({', '.join(exp['columns'])})"
    )
    if exp.get("exception"):
        head += f" raised: {exp['exception']}"
    elif exp.get("unexpected_count"):
        examples = exp["unexpected_examples"][:MESSAGE_EXAMPLES]
        head += f" — {exp['unexpected_count']} unexpected rows"
        if examples:
            head += ", e.g. " + "; ".join(f"({_example_text(x)})" for x in examples)
    elif exp.get("observed_value") is not None:
        head += f" — observed {exp['observed_value']!r}"
    more = len(failures) - 1
    if more:
        head += f" (and {more} more failed expectation{'s' if more > 1 else ''})"
    return head + f"; see {report['report_path']!r}"


# --------------------------------------------------------------------------- stage


def run(
    *,
    params_path: str | Path,
    queries: str | Path,
    variants: str | Path,
    generations_dir: str | Path,
    outcomes_dir: str | Path,
    report: str | Path,
    docs_dir: str | Path,
) -> dict[str, Any]:
    cfg = read_config(P.load_params(params_path))
    queries_df = read_frame(queries, what="queries")
    variants_df = read_frame(variants, what="variants")
    gens = read_model_tables(folder=generations_dir, models=cfg.models, what="generations")
    outs = read_model_tables(folder=outcomes_dir, models=cfg.models, what="outcomes")

    checks = build_checks(
        cfg=cfg, queries=queries_df, variants=variants_df, generations=gens, outcomes=outs
    )
    docs = Path(docs_dir)
    prepare_docs_dir(docs)
    k = cfg.max_unexpected_examples
    tables = {}
    with quiet_gx():
        context = make_context(docs_dir=docs)
        datasource = context.data_sources.add_pandas(name="dars")
        for check in checks:
            results = run_check(context=context, datasource=datasource, check=check, k=k)
            tables[check.name] = summarize_table(check, results, k=k)
        context.build_data_docs(site_names=[SITE_NAME])

    result = {
        "contract_version": CONTRACT_VERSION,
        "success": all(t["success"] for t in tables.values()),
        "params": {
            "sample.n": cfg.n,
            "sampling.per_pair": list(cfg.per_pair) if cfg.per_pair else None,
            "validate.max_error_rate": cfg.max_error_rate,
            "validate.max_unexpected_examples": k,
        },
        "models": list(cfg.models),
        "ignored_files": {
            "generations": ignored_files(folder=generations_dir, models=cfg.models),
            "outcomes": ignored_files(folder=outcomes_dir, models=cfg.models),
        },
        "tables": tables,
        "variant_counts": variant_counts(variants_df),
        "model_counts": model_counts(
            generations=gens, outcomes=outs, max_error_rate=cfg.max_error_rate
        ),
        "failed": [
            f"{t}: {e['expectation']}({', '.join(e['columns'])})"
            for t in tables
            for e in tables[t]["expectations"]
            if not e["success"]
        ],
        "report_path": str(report),
        "data_docs": str(docs / "index.html"),
    }
    write_json(result, report)
    if not result["success"]:
        raise ValidationFailedError(failure_message(result, order=[c.name for c in checks]))
    return result
