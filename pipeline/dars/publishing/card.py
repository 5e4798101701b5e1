"""The dataset card: its settings, its YAML header (`configs:` and `dataset_info` for every
config and split, so `datasets.load_dataset(<repo or folder>, "labels", split="test")`
works with no loading script), the context of numbers the template shows, and the
rendering. The template is rendered with `jinja2.StrictUndefined`, so a missing value
fails the stage instead of printing blank."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

import dars
from dars.core import schema
from dars.core.errors import CardRenderError
from dars.core.params import ParamsSource, dataset_version, get, model_config, section
from dars.labels import utility as W
from dars.publishing import shards
from dars.publishing.shards import Written, present_splits
from dars.publishing.summaries import (
    metric_table,
    router_summary,
    source_licences,
    validation_summary,
)

CONFIGS = ("queries", "variants", "labels", "outcomes", "generations")
CONTRACT = {
    "queries": schema.QUERIES,
    "variants": schema.VARIANTS,
    "labels": schema.LABELS,
    "outcomes": schema.OUTCOMES,
    "generations": schema.GENERATIONS,
}
DEFAULT_CONFIG = "labels"  # `load_dataset(repo)` without a config name loads this one
# Hub size categories (number of rows of the largest config)
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


# ---------------------------------------------------------------------------- settings


def utility_weights(params: ParamsSource) -> dict[str, W.Weight]:
    """`aggregate.lambda_cost` / `beta_risk` (a number or task -> number), as the labels,
    train, evaluate and `dars bench` use them; recorded in MANIFEST.json (`utility`)."""
    agg = section(params, "aggregate")
    return {k: W.weight(getattr(agg, k)) for k in ("lambda_cost", "beta_risk")}


def card_settings(params: ParamsSource) -> dict[str, Any]:
    """The `card` section of params.yaml plus `dataset_version`, checked."""
    out: dict[str, Any] = {"dataset_version": dataset_version(params)}
    return out | dataclasses.asdict(section(params, "card"))


def size_category(n_rows: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if n_rows < bound:
            return name
    return "n>1T"


def model_provenance(params: ParamsSource, models: Sequence[str]) -> list[dict[str, Any]]:
    """Per model: its upstream id and the licence terms it is used under, from
    `card.models.<model>: {upstream_id, license}` in params.yaml ("not stated" if absent;
    the schema checks the entries)."""
    given = section(params, "card").models
    missing = "**not stated** (set card.models in params.yaml)"
    return [
        {
            "model": name,
            "backend": model_config(params, name).backend,
            "upstream_id": str((given.get(name) or {}).get("upstream_id") or missing),
            "license": str((given.get(name) or {}).get("license") or missing),
        }
        for name in models
    ]


# ---------------------------------------------------------------------------- header


def card_header(
    *,
    settings: Mapping[str, Any],
    features: Mapping[str, datasets.Features],
    split_rows: Mapping[str, Mapping[str, int]],
    split_bytes: Mapping[str, Mapping[str, int]],
) -> str:
    """The YAML header: license, task categories, size, configs and dataset_info (the
    splits of each config are those of `split_rows`)."""
    largest = max(sum(rows.values()) for rows in split_rows.values())
    data = DatasetCardData(
        license=settings["license"],
        pretty_name=settings["pretty_name"],
        task_categories=settings["task_categories"] or None,
        tags=settings["tags"] or None,
        size_categories=[size_category(largest)],
    )
    MetadataConfigs(
        {
            c: {
                "data_files": [
                    {"split": s, "path": shards.data_files_glob(c, s)} for s in split_rows[c]
                ],
                **({"default": True} if c == DEFAULT_CONFIG else {}),
            }
            for c in CONFIGS
        }
    ).to_dataset_card_data(data)
    infos = {}
    for c in CONFIGS:
        sd = SplitDict()
        for s in split_rows[c]:
            sd.add(SplitInfo(name=s, num_bytes=split_bytes[c][s], num_examples=split_rows[c][s]))
        infos[c] = DatasetInfo(
            features=features[c],
            splits=sd,
            download_size=sum(split_bytes[c].values()),
            dataset_size=sum(split_bytes[c].values()),
        )
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return data.to_yaml()


# ---------------------------------------------------------------------------- context


def card_context(
    *,
    params: ParamsSource,
    settings: Mapping[str, Any],
    models: Sequence[str],
    queries: pa.Table,
    written: Written,
    assignment: Mapping[str, str],
    tables: Mapping[str, Any],
    report: Mapping[str, Any],
    metrics: Mapping[str, Any],
    routers: Sequence[Path],
    router_rows: Sequence[Mapping[str, Any]],
    left_out: Sequence[Path],
) -> dict[str, Any]:
    """Every value the template may show. `tables`: `summaries.table_summaries`;
    `routers`/`router_rows`/`left_out`: the published routers (`publishing.routers`)."""
    features = {c: datasets.Features.from_arrow_schema(written.schemas[c]) for c in CONFIGS}
    counts, stats = tables["counts"], tables["label_stats"]
    router_bytes = sum(r["size"] for r in router_rows)
    data_bytes = written.data_bytes
    sample, reformulate = section(params, "sample"), section(params, "reformulate")
    imported = section(params, "imported")  # all defaults (source "") outside `dars import`
    return {
        **settings,
        "header": card_header(
            settings=settings,
            features=features,
            split_rows=written.rows,
            split_bytes=written.bytes,
        ),
        "package_version": dars.__version__,
        "contract_version": schema.CONTRACT_VERSION,
        "configs": CONFIGS,
        "splits": present_splits(assignment),
        "split_rows": written.rows,
        "columns": {c: [(f.name, str(f.type)) for f in written.schemas[c]] for c in CONFIGS},
        "n_queries": queries.num_rows,
        "n_models": len(models),
        "models": list(models),
        "k": reformulate.k,
        "reformulate_method": reformulate.method,
        "n": sample.n,
        "sample_seed": sample.seed,
        "max_retries": sample.max_retries,
        "sampling_strategy": dataclasses.asdict(section(params, "sampling")),
        # the raw task map (its keys are checked by each loader); not `section(params,
        # "prepare")`, which would make the card depend on the quarantine settings too
        "tasks": get(params, "prepare.tasks"),
        "aggregate": dataclasses.asdict(section(params, "aggregate")),
        "utility": utility_weights(params),
        "utility_text": {k: W.describe(v) for k, v in utility_weights(params).items()},
        "split_params": dataclasses.asdict(section(params, "split")),
        "n_generations": counts["n_generations"],
        "n_failed": counts["n_failed"],
        "backends": counts["backends"],
        "simulated": "simulated" in counts["backends"] or "simulated" in counts["label_backends"],
        "sampling": tables["sampling"],
        "grading": tables["grading"],
        "grade_statuses": schema.GRADE_STATUSES,
        "label_stats": stats,
        "validation": validation_summary(report),
        "licences": source_licences(queries),
        "routers": list(router_rows),
        "router_metrics": metric_table(metrics),
        "router_summary": router_summary(metrics, routers),
        "router_types": sorted({t for r in router_rows for t in r["trusted"]}),
        "router_bytes": router_bytes,
        "data_bytes": data_bytes,
        "router_share": router_bytes / max(1, router_bytes + data_bytes),
        "max_router_share": settings["max_router_share"],
        "routers_left_out": [f.name for f in left_out],
        "model_provenance": model_provenance(params, models),
        "imported": dataclasses.asdict(imported) if imported.source else None,
        "single_observation": max(s["n_max"] for s in stats) == 1 if stats else False,
        "default_config": DEFAULT_CONFIG,
    }


# ---------------------------------------------------------------------------- render


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def render_card(*, template_path: str | Path, context: Mapping[str, Any]) -> str:
    """Render the Jinja template; an undefined value or a broken header fails loudly."""
    template_path = Path(template_path)
    if not template_path.exists():
        raise CardRenderError(f"card template {str(template_path)!r} does not exist")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_path.parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["f"] = _fmt
    try:
        text = env.get_template(template_path.name).render(**context)
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f" (line {lineno})" if lineno else ""
        raise CardRenderError(
            f"card template {str(template_path)!r} failed to render{where}: {exc}"
        ) from exc
    try:
        card = DatasetCard(text)
    except ValueError as exc:
        raise CardRenderError(
            f"card rendered from {str(template_path)!r} has an invalid YAML header: {exc}"
        ) from exc
    if card.data.get("configs") is None:
        raise CardRenderError(
            f"card rendered from {str(template_path)!r} has no `configs:` in its YAML header; "
            "the template must start with '---\\n{{ header }}---'"
        )
    return text


def previous_changes(
    *,
    params: ParamsSource,
    queries: pa.Table,
    labels: Path,
    outcomes: Sequence[Path],
    assignment: Mapping[str, str],
    metrics: Mapping[str, Any],
) -> tuple[str, dict[str, Any]] | None:
    """`card.previous`: the "Changes since" section and the manifest's `previous` record
    (`dars.versioning.report.card_changes`), or None when it is not set. It compares
    whole tables in memory, so the tables are read only when it is set."""
    if section(params, "card").previous is None:
        return None
    # imported here: the comparison (scipy.stats and all) costs about 1 s to import, which
    # every card run without `card.previous` would pay
    from dars.versioning.report import card_changes

    outcome_tables = [pq.read_table(p) for p in outcomes]
    return card_changes(
        params=params,
        queries=queries,
        labels=pq.read_table(labels),
        outcomes=pa.concat_tables(outcome_tables, promote_options="default"),
        splits=assignment,
        router_metrics=metrics,
        contract_version=schema.CONTRACT_VERSION,
        package_version=dars.__version__,
    )
