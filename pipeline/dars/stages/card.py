"""The `card` stage: write `publish/`, a complete Hugging Face dataset repository.

Layout (another command, `dars bench`, reads it; keep it stable):

    publish/README.md                    the dataset card, rendered from dataset_card.md
    publish/<config>/<split>-NNNNN-of-NNNNN.parquet
                                         config in queries|variants|labels|outcomes|
                                         generations, split in train|validation|test
                                         (a split no query is assigned to is left out,
                                         e.g. validation in the DARS preset); shards of
                                         at most `card.max_shard_mb` (default 500 MB)
    publish/routers/*.skops              the reference routers: the DARS-supervised one and
                                         single-shot repeat 0 of each router (the other
                                         repeats stay in models/)
    publish/routers/metrics.json         their test metrics (metrics/routers.json)
    publish/MANIFEST.json                sha256 of every file, dvc.lock provenance,
                                         params.yaml, package and dataset version

Rows go to a split by their `query_id` through data/splits.parquet. The work is in
`dars.publishing`: `shards` (streamed sharded Parquet), `summaries` (DuckDB numbers),
`routers`, `card` (header, context, rendering) and `manifest`; the folder is written
atomically (`dars.core.io.atomic_directory`). The module is longer than the ~80 lines
of the other stages only because the card reads thirteen inputs: `run()` names each once
and hands it, by keyword, to those library calls; it holds no rendering, packaging or
hashing of its own.
"""

from __future__ import annotations

from pathlib import Path

from dars.core import schema
from dars.core.io import (
    atomic_directory,
    model_file,
    parquet_schema,
    read_json,
    read_table,
    write_json,
    write_text,
)
from dars.core.params import load_params, model_names
from dars.labels import utility as W
from dars.publishing import card as C
from dars.publishing import manifest as M
from dars.publishing import routers as R
from dars.publishing import shards, summaries
from dars.validation.gate import require_passed


def run(
    *,
    params_path: str,
    template: str,
    queries: str,
    labels: str,
    splits: str,
    variants: str,
    generations_dir: str,
    outcomes_dir: str,
    validation: str,
    models_dir: str,
    router_metrics: str,
    lock: str | None,
    out: str,
) -> Path:
    params = load_params(params_path)
    settings = C.card_settings(params)
    models = model_names(params)
    q_table = read_table(queries, required=schema.names(schema.QUERIES), what="queries")
    sources = {
        "queries": [Path(queries)],
        "variants": [Path(variants)],
        "labels": [Path(labels)],
        "outcomes": [model_file(outcomes_dir, m) for m in models],
        "generations": [model_file(generations_dir, m) for m in models],
    }
    parquet_schema(labels, required=schema.names(schema.LABELS), what="labels")
    parquet_schema(variants, required=schema.names(schema.VARIANTS), what="variants")
    for c in ("generations", "outcomes"):
        for m, path in zip(models, sources[c], strict=True):
            parquet_schema(path, required=schema.names(C.CONTRACT[c]), what=f"{c}[{m}]")
    assignment = shards.split_map(read_table(splits, required=["query_id", "split"], what="splits"))
    report = require_passed(validation, refusing="write the card")
    routers = R.published_router_files(models_dir)
    metrics = read_json(router_metrics, what="router metrics", hint="the evaluate stage writes it")
    lock_data = M.read_lock(lock)

    with atomic_directory(out) as tmp:
        written = shards.write_configs(
            sources=sources,
            splits_path=Path(splits),
            assignment=assignment,
            out_dir=tmp,
            max_shard_bytes=int(settings["max_shard_mb"] * 1_000_000),
        )
        routers, left_out = R.within_budget(
            routers,
            data_bytes=written.data_bytes,
            share=settings["max_router_share"],
            metrics=metrics,
        )
        router_rows = R.package_routers(
            routers, models_dir=models_dir, metrics=metrics, out_dir=tmp
        )
        tables = summaries.table_summaries(
            params=params,
            models=models,
            generations=sources["generations"],
            outcomes=sources["outcomes"],
            labels=Path(labels),
            queries=Path(queries),
        )
        context = C.card_context(
            params=params,
            settings=settings,
            models=models,
            queries=q_table,
            written=written,
            assignment=assignment,
            tables=tables,
            report=report,
            metrics=metrics,
            routers=routers,
            router_rows=router_rows,
            left_out=left_out,
        )
        text = C.render_card(template_path=template, context=context)
        changes = C.previous_changes(
            params=params,
            queries=q_table,
            labels=Path(labels),
            outcomes=sources["outcomes"],
            assignment=assignment,
            metrics=metrics,
        )
        if changes:
            text = text.rstrip("\n") + "\n\n" + changes[0]
        write_text(text, tmp / "README.md")

        index = Path(models_dir) / "index.json"
        inputs = [Path(queries), Path(variants), Path(labels), Path(splits), Path(validation)]
        inputs += [Path(router_metrics), *sources["generations"], *sources["outcomes"]]
        inputs += routers + ([index] if index.exists() else []) + [Path(template)]
        manifest = M.build_manifest(
            folder=tmp,
            settings=settings,
            params_path=Path(params_path),
            lock_path=Path(lock) if lock is not None else None,
            inputs=M.input_provenance(paths=inputs, lock=lock_data),
        )
        manifest["utility"] = {k: W.as_json(v) for k, v in context["utility"].items()}
        if changes:
            manifest["previous"] = changes[1]
        write_json(manifest, tmp / M.MANIFEST)
    total = sum(f["size"] for f in manifest["files"].values())
    print(
        f"card: {len(manifest['files'])} files ({total / 1e6:.2f} MB) -> {out}/ "
        f"(dataset_version {settings['dataset_version']}; "
        + ", ".join(f"{c}={sum(written.rows[c].values())}" for c in C.CONFIGS)
        + " rows)"
        + ("  [SIMULATED build: not publishable]" if context["simulated"] else "")
    )
    return Path(out)
