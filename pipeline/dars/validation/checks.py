"""Assemble the table checks (table + suite) in the workspace and run them: queries,
variants, each model's generations and outcomes, coverage and the error rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dars.core.io import parquet_schema
from dars.core.schema import CONTRACT_VERSION, KEYS
from dars.validation import derived, gx_run, report, suites
from dars.validation.config import ValidateConfig
from dars.validation.workspace import Relation, Workspace, ignored_files, model_files


def build_checks(
    ws: Workspace,
    *,
    cfg: ValidateConfig,
    queries: Relation,
    variants: Relation,
    generations: dict[str, tuple[Relation, Path]],
    outcomes: dict[str, tuple[Relation, Path]],
) -> list[gx_run.TableCheck]:
    TableCheck = gx_run.TableCheck
    q = derived.with_checks_small(
        ws, queries, derived.query_checks(queries=queries, variants=variants)
    )
    v = derived.with_checks_small(
        ws, variants, derived.variant_checks(variants=variants, queries=queries)
    )
    checks = [
        TableCheck(
            "queries", q, tuple(suites.queries_expectations(q.columns)), tuple(KEYS["queries"])
        ),
        TableCheck(
            "variants", v, tuple(suites.variants_expectations(v.columns)), tuple(KEYS["variants"])
        ),
    ]
    n = cfg.max_sample_id + 1
    # the per-model tables in DuckDB storage: the cross-table rules scan these, not the files
    copied: dict[str, Relation] = {}
    copied_outcomes: dict[str, Relation] = {}
    for model, (rel, path) in generations.items():
        g = derived.with_checks_large(
            ws, rel, path, derived.generation_checks(table=rel, queries=queries, variants=variants)
        )
        copied[model] = g
        checks.append(
            TableCheck(
                f"generations[{model}]",
                g,
                tuple(suites.generations_expectations(g.columns, model=model, n=n)),
                tuple(KEYS["generations"]),
            )
        )
    for model, (rel, path) in outcomes.items():
        rules = derived.outcome_checks(
            table=rel, generations=copied[model], queries=queries, variants=variants
        )
        o = derived.with_checks_large(ws, rel, path, rules)
        copied_outcomes[model] = o
        checks.append(
            TableCheck(
                f"outcomes[{model}]",
                o,
                tuple(suites.outcomes_expectations(o.columns, model=model, n=n)),
                tuple(KEYS["outcomes"]),
            )
        )
    tables = {("generations", m): r for m, r in copied.items()}
    tables |= {("outcomes", m): r for m, r in copied_outcomes.items()}
    cov = derived.coverage_table(
        ws, variants=variants, tables=tables, n=cfg.n, per_pair=cfg.per_pair
    )
    checks.append(
        TableCheck(
            "coverage",
            cov,
            tuple(suites.coverage_expectations(n=cfg.n, per_pair=cfg.per_pair)),
            tuple(derived.COVERAGE_KEYS),
        )
    )
    err = derived.error_rate_table(ws, generations=copied)
    checks.append(
        TableCheck(
            "error_rate",
            err,
            tuple(suites.error_rate_expectations(max_error_rate=cfg.max_error_rate)),
            ("model",),
        )
    )
    return checks


def validate_tables(
    *,
    cfg: ValidateConfig,
    queries: str | Path,
    variants: str | Path,
    generations_dir: str | Path,
    outcomes_dir: str | Path,
    report_path: str | Path,
    docs_dir: str | Path,
) -> tuple[dict[str, Any], list[str]]:
    """Run every suite; returns (the report, the table names in check order)."""
    parquet_schema(queries, what="queries")
    parquet_schema(variants, what="variants")
    gen_files = model_files(folder=generations_dir, models=cfg.models, what="generations")
    out_files = model_files(folder=outcomes_dir, models=cfg.models, what="outcomes")
    vcols = [c for c in ("accepted", "reject_reason") if c in pq.read_schema(variants).names]
    variant_counts = report.variant_counts(pq.read_table(variants, columns=vcols).to_pandas())

    docs = Path(docs_dir)
    gx_run.prepare_docs_dir(docs)
    k = cfg.max_unexpected_examples
    tables: dict[str, Any] = {}
    with Workspace() as ws:
        q = ws.copy_parquet(queries, prefix="queries")
        v = ws.copy_parquet(variants, prefix="variants")
        gens = {m: (ws.parquet_view(p, prefix="generations"), p) for m, p in gen_files.items()}
        outs = {m: (ws.parquet_view(p, prefix="outcomes"), p) for m, p in out_files.items()}
        checks = build_checks(ws, cfg=cfg, queries=q, variants=v, generations=gens, outcomes=outs)
        counts = report.model_counts(
            ws,
            generations={m: r for m, (r, _) in gens.items()},
            outcomes={m: r for m, (r, _) in outs.items()},
            max_error_rate=cfg.max_error_rate,
        )
        with gx_run.quiet_gx():
            context = gx_run.make_context(docs_dir=docs)
            datasource = gx_run.add_datasource(context, ws)
            for check in checks:
                results = gx_run.run_check(context=context, datasource=datasource, check=check, k=k)
                tables[check.name] = report.summarize_table(check, results, k=k)
            context.build_data_docs(site_names=[gx_run.SITE_NAME])
            gx_run.close_datasource(datasource)

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
        "variant_counts": variant_counts,
        "model_counts": counts,
        "failed": [
            f"{t}: {e['expectation']}({', '.join(e['columns'])})"
            for t in tables
            for e in tables[t]["expectations"]
            if not e["success"]
        ],
        "report_path": str(report_path),
        "data_docs": str(docs / "index.html"),
    }
    return result, [c.name for c in checks]
