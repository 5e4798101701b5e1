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

The card header holds a `configs:` block mapping every config and split to its Parquet
shards (`<config>/<split>-*.parquet`), so
`datasets.load_dataset(<repo or folder>, "labels", split="test")` works with no loading
script. Rows go to a split by their `query_id` through data/splits.parquet.
Tables are streamed (DuckDB over the Parquet files, `dars.publishing.shards` and
`dars.publishing.summaries`), so memory does not grow with the generations and outcomes.
Every number in the card comes from the build; the template is rendered with
`jinja2.StrictUndefined`, so a missing value fails the stage instead of printing blank.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

import dars
from dars.core import duck, schema
from dars.core.errors import CardRenderError, EmptySplitError, InputDataError, ParamsError
from dars.core.io import model_file, write_json, write_text
from dars.core.params import (
    dataset_version,
    get,
    load_params,
    model_config,
    model_names,
    section,
)
from dars.labels import utility as W
from dars.publishing import shards, summaries
from dars.publishing.manifest import MANIFEST, file_digest, lock_digest, lock_file_md5s
from dars.versioning.report import card_changes

CONFIGS = ("queries", "variants", "labels", "outcomes", "generations")
CONTRACT = {
    "queries": schema.QUERIES,
    "variants": schema.VARIANTS,
    "labels": schema.LABELS,
    "outcomes": schema.OUTCOMES,
    "generations": schema.GENERATIONS,
}
ROUTERS_DIR = "routers"
DEFAULT_CONFIG = "labels"  # `load_dataset(repo)` without a config name loads this one
ROUTER_METRICS = "metrics.json"
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
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


def utility_weights(params: dict[str, Any]) -> dict[str, W.Weight]:
    """`aggregate.lambda_cost` / `beta_risk` (a number or task -> number), as the labels,
    train, evaluate and `dars bench` use them; recorded in MANIFEST.json (`utility`)."""
    agg = section(params, "aggregate")
    return {k: W.weight(getattr(agg, k)) for k in ("lambda_cost", "beta_risk")}


def card_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The `card` section of params.yaml plus `dataset_version`, checked."""
    out: dict[str, Any] = {"dataset_version": dataset_version(params)}
    return out | dataclasses.asdict(section(params, "card"))


def size_category(n_rows: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if n_rows < bound:
            return name
    return "n>1T"


def read_lock(path: str | Path | None) -> dict[str, Any]:
    if path is None:  # a workspace outside DVC (e.g. one `dars import` wrote)
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


# ---------------------------------------------------------------------------- tables


def read_table(path: str | Path, *, required: Iterable[str], what: str) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{what} file {str(path)!r} does not exist")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputDataError(f"{what} file {str(path)!r} is not readable Parquet: {exc}") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InputDataError(
            f"{what} file {str(path)!r} lacks contract columns {missing}; "
            f"it has {table.column_names}"
        )
    return table.replace_schema_metadata(None)


def split_map(splits: pa.Table) -> dict[str, str]:
    ids = splits.column("query_id").to_pylist()
    names = splits.column("split").to_pylist()
    bad = sorted({s for s in names if s not in schema.SPLITS})
    if bad:
        raise InputDataError(f"splits hold unknown split names {bad}; valid: {list(schema.SPLITS)}")
    return dict(zip(ids, names, strict=True))


def present_splits(splits: Mapping[str, str]) -> tuple[str, ...]:
    """The splits that hold at least one query, in contract order."""
    used = set(splits.values())
    return tuple(s for s in schema.SPLITS if s in used)


# ---------------------------------------------------------------------------- summaries


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def source_licences(queries: pa.Table) -> list[dict[str, Any]]:
    df = queries.select(["task", "source", "license", "grader"]).to_pandas()
    rows = []
    for (task, source, lic), g in df.groupby(["task", "source", "license"], sort=True):
        rows.append(
            {
                "task": task,
                "source": source,
                "license": lic,
                "queries": int(len(g)),
                "graders": sorted(g["grader"].unique().tolist()),
            }
        )
    return rows


def validation_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    tables = []
    for name, t in sorted((report.get("tables") or {}).items()):
        exps = t.get("expectations") or []
        tables.append(
            {
                "table": name,
                "rows": t.get("rows"),
                "expectations": len(exps),
                "passed": sum(bool(e.get("success")) for e in exps),
                "success": bool(t.get("success")),
            }
        )
    models = [
        {
            "model": m,
            "rows": c.get("rows"),
            "n_error": c.get("n_error"),
            "error_rate": c.get("error_rate"),
            "max_error_rate": c.get("max_error_rate"),
        }
        for m, c in sorted((report.get("model_counts") or {}).items())
    ]
    return {
        "success": bool(report.get("success")),
        "failed": list(report.get("failed") or []),
        "tables": tables,
        "expectations": sum(t["expectations"] for t in tables),
        "passed": sum(t["passed"] for t in tables),
        "models": models,
    }


VALUE_KEYS = ("value", "diff")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _metric_cell(leaf: Mapping[str, Any]) -> dict[str, Any]:
    key = next(k for k in VALUE_KEYS if k in leaf)
    return {
        "value": _num(leaf[key]),
        "ci_low": _num(leaf["ci_low"]) if _is_number(leaf.get("ci_low")) else None,
        "ci_high": _num(leaf["ci_high"]) if _is_number(leaf.get("ci_high")) else None,
        "p_value": _num(leaf["p_value"]) if _is_number(leaf.get("p_value")) else None,
    }


def metric_table(obj: Any) -> dict[str, Any]:
    """Router metrics JSON -> one row per system, one column per metric.

    A "system" is any object whose members are metric objects, i.e. objects with a
    numeric `value` (or `diff`) and optionally `ci_low`/`ci_high`/`p_value`; its row
    name is its path in the JSON. Numeric scalars elsewhere are listed as settings.
    """
    rows: list[dict[str, Any]] = []
    scalars: list[tuple[str, float]] = []
    columns: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            cells = {
                k: _metric_cell(v)
                for k, v in node.items()
                if isinstance(v, Mapping) and any(_is_number(v.get(x)) for x in VALUE_KEYS)
            }
            if cells:
                rows.append({"system": path, "cells": cells})
                columns.extend(k for k in cells if k not in columns)
            for k, v in node.items():
                if k not in cells:
                    walk(v, f"{path}/{k}" if path else str(k))
        elif _is_number(node):
            scalars.append((path, float(node)))

    walk(obj, "")
    return {"columns": columns, "rows": rows, "scalars": scalars}


def json_safe(obj: Any) -> Any:
    """NaN and infinities -> null, so the published JSON is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def published_router_files(models_dir: str | Path) -> list[Path]:
    """The routers that are published: per router, the DARS-supervised one and single-shot
    repeat 0 (by models/index.json when present, else by the train stage's file names)."""
    files = router_files(models_dir)
    index = Path(models_dir) / "index.json"
    entries = (
        json.loads(index.read_text(encoding="utf-8")).get("routers") if index.exists() else None
    )
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
        value = ((r.get(sup) or {}).get("utility") or {}).get("value")
        return float(value) if _is_number(value) and math.isfinite(value) else -math.inf

    order = sorted(files, key=lambda f: ("-dars." not in f.name, -utility(f), f.name))
    kept: list[Path] = []
    used = 0
    for f in order:
        if used + f.stat().st_size <= budget:
            kept.append(f)
            used += f.stat().st_size
    return sorted(kept), [f for f in files if f not in kept]


def router_summary(metrics: Mapping[str, Any], files: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per router: its published files and test utility under both supervisions."""
    names = {f.name for f in files}
    rows = []
    for name, r in sorted((metrics.get("routers") or {}).items()):
        if not isinstance(r, Mapping):
            continue

        def cell(leaf: Any) -> dict[str, Any] | None:
            return _metric_cell(leaf) if isinstance(leaf, Mapping) else None

        d = (r.get("dars") or {}).get("utility")
        ss = (r.get("single_shot") or {}).get("utility")
        diff = (r.get("dars_minus_single_shot") or {}).get("utility")
        rows.append(
            {
                "router": name,
                "files": sorted(
                    n for n in (f"{name}-dars.skops", f"{name}-single_shot-r0.skops") if n in names
                ),
                "dars": cell(d),
                "single_shot": cell(ss),
                "single_shot_std": _num(ss.get("std")) if isinstance(ss, Mapping) else None,
                "diff": cell(diff),
            }
        )
    return rows


def model_provenance(params: dict[str, Any], models: Sequence[str]) -> list[dict[str, Any]]:
    """Per model: its upstream id and the licence terms it is used under, from
    `card.models.<model>: {upstream_id, license}` in params.yaml ("not stated" if absent)."""
    given = get(params, "card.models", {}) or {}
    if not isinstance(given, dict):
        raise ParamsError(f"Parameter 'card.models' = {given!r} must map model -> entry")
    rows = []
    for name in models:
        entry = given.get(name) or {}
        if not isinstance(entry, dict):
            raise ParamsError(
                f"Parameter 'card.models' entry for {name!r} = {entry!r} must be a mapping "
                "{upstream_id, license}"
            )
        missing = "**not stated** (set card.models in params.yaml)"
        rows.append(
            {
                "model": name,
                "backend": model_config(params, name).backend,
                "upstream_id": str(entry.get("upstream_id") or missing),
                "license": str(entry.get("license") or missing),
            }
        )
    return rows


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


def untrusted_types(path: Path) -> list[str]:
    """Types a consumer must pass as `trusted=` to `skops.io.load` (checked, not loaded)."""
    import skops.io as sio

    try:
        return sorted(sio.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputDataError(
            f"router file {str(path)!r} is not a readable skops file: {exc}"
        ) from exc


# ---------------------------------------------------------------------------- card


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


# ---------------------------------------------------------------------------- manifest


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


# ---------------------------------------------------------------------------- stage


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
    settings = card_settings(params)
    models = model_names(params)
    q_table = read_table(queries, required=schema.names(schema.QUERIES), what="queries")
    duck.parquet_schema(labels, required=schema.names(schema.LABELS), what="labels")
    duck.parquet_schema(variants, required=schema.names(schema.VARIANTS), what="variants")
    sources = {
        "queries": [Path(queries)],
        "variants": [Path(variants)],
        "labels": [Path(labels)],
        "generations": [model_file(generations_dir, m) for m in models],
        "outcomes": [model_file(outcomes_dir, m) for m in models],
    }
    for c in ("generations", "outcomes"):
        for m, path in zip(models, sources[c], strict=True):
            duck.parquet_schema(path, required=schema.names(CONTRACT[c]), what=f"{c}[{m}]")
    assignment = split_map(read_table(splits, required=["query_id", "split"], what="splits"))
    report_path = Path(validation)
    if not report_path.exists():
        raise InputDataError(
            f"validation report {validation!r} does not exist; run `dars validate`"
        )
    report = json.loads(report_path.read_text(encoding="utf-8"))
    routers = published_router_files(models_dir)
    metrics_path = Path(router_metrics)
    if not metrics_path.exists():
        raise InputDataError(
            f"router metrics file {router_metrics!r} does not exist; the evaluate stage writes it"
        )
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    lock_data = read_lock(lock)

    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        split_rows: dict[str, dict[str, int]] = {}
        split_bytes: dict[str, dict[str, int]] = {}
        features: dict[str, datasets.Features] = {}
        table_schemas: dict[str, pa.Schema] = {}
        for c in CONFIGS:
            table_schemas[c], written = shards.write_config(
                config=c,
                paths=sources[c],
                splits_path=Path(splits),
                out_dir=tmp,
                max_shard_bytes=int(settings["max_shard_mb"] * 1_000_000),
            )
            present = present_splits(assignment)
            split_rows[c] = {s: written[s].rows for s in present}
            split_bytes[c] = {s: written[s].bytes for s in present}
            for s in present:
                if written[s].rows == 0:
                    raise EmptySplitError(
                        f"split {s!r} of config {c!r} would have no rows ({len(assignment)} "
                        f"queries assigned as {dict(sorted(Counter(assignment.values()).items()))}"
                        "); the Hub loader cannot read an empty Parquet split. The "
                        f"{c} input lacks rows for that split's queries: rebuild it"
                    )
            features[c] = datasets.Features.from_arrow_schema(table_schemas[c])

        data_bytes = sum(sum(b.values()) for b in split_bytes.values())
        routers, left_out = within_budget(
            routers, data_bytes=data_bytes, share=settings["max_router_share"], metrics=metrics
        )
        (tmp / ROUTERS_DIR).mkdir()
        router_rows = []
        for f in routers:
            shutil.copyfile(f, tmp / ROUTERS_DIR / f.name)
            router_rows.append(
                {
                    "file": f"{ROUTERS_DIR}/{f.name}",
                    "size": f.stat().st_size,
                    "trusted": untrusted_types(f),
                }
            )
        index = Path(models_dir) / "index.json"
        if index.exists():
            idx = json.loads(index.read_text(encoding="utf-8"))
            if isinstance(idx.get("routers"), list):  # list only the published files
                published = {f.name for f in routers}
                idx["routers"] = [e for e in idx["routers"] if e.get("path") in published]
            write_json(idx, tmp / ROUTERS_DIR / "index.json")
        write_json(json_safe(metrics), tmp / ROUTERS_DIR / ROUTER_METRICS)

        router_bytes = sum(r["size"] for r in router_rows)
        con = duck.connect()
        try:
            counts = summaries.generation_counts(
                con, generations=sources["generations"], labels=Path(labels)
            )
            sampling = summaries.sampling_setup(
                con, params=params, generations=sources["generations"], models=models
            )
            grading = summaries.grading_summary(
                con, outcomes=sources["outcomes"], queries=Path(queries)
            )
            stats = summaries.label_stats(con, Path(labels))
        finally:
            con.close()
        context = {
            **settings,
            "header": card_header(
                settings=settings,
                features=features,
                split_rows=split_rows,
                split_bytes=split_bytes,
            ),
            "package_version": dars.__version__,
            "contract_version": schema.CONTRACT_VERSION,
            "configs": CONFIGS,
            "splits": present_splits(assignment),
            "split_rows": split_rows,
            "columns": {c: [(f.name, str(f.type)) for f in table_schemas[c]] for c in CONFIGS},
            "n_queries": q_table.num_rows,
            "n_models": len(models),
            "models": models,
            "k": int(get(params, "reformulate.k")),
            "reformulate_method": get(params, "reformulate.method", "template"),
            "n": int(get(params, "sample.n")),
            "sample_seed": get(params, "sample.seed"),
            "max_retries": get(params, "sample.max_retries", 1),
            "sampling_strategy": get(params, "sampling", {"strategy": "uniform"}),
            "tasks": get(params, "prepare.tasks"),
            "aggregate": get(params, "aggregate"),
            "utility": utility_weights(params),
            "utility_text": {k: W.describe(v) for k, v in utility_weights(params).items()},
            "split_params": get(params, "split"),
            "n_generations": counts["n_generations"],
            "n_failed": counts["n_failed"],
            "backends": counts["backends"],
            "simulated": "simulated" in counts["backends"]
            or "simulated" in counts["label_backends"],
            "sampling": sampling,
            "grading": grading,
            "grade_statuses": schema.GRADE_STATUSES,
            "label_stats": stats,
            "validation": validation_summary(report),
            "licences": source_licences(q_table),
            "routers": router_rows,
            "router_metrics": metric_table(metrics),
            "router_summary": router_summary(metrics, routers),
            "router_types": sorted({t for r in router_rows for t in r["trusted"]}),
            "router_bytes": router_bytes,
            "data_bytes": data_bytes,
            "router_share": router_bytes / max(1, router_bytes + data_bytes),
            "max_router_share": settings["max_router_share"],
            "routers_left_out": [f.name for f in left_out],
            "model_provenance": model_provenance(params, models),
            "imported": get(params, "imported", None),
            "single_observation": max(s["n_max"] for s in stats) == 1 if stats else False,
            "default_config": DEFAULT_CONFIG,
        }
        text = render_card(template_path=template, context=context)
        changes = None
        if settings.get("previous") is not None:
            # `card.previous`: a "Changes since" section; it compares whole tables in memory
            outcome_tables = [pq.read_table(p) for p in sources["outcomes"]]
            changes = card_changes(
                params=params,
                queries=q_table,
                labels=pq.read_table(labels),
                outcomes=pa.concat_tables(outcome_tables, promote_options="default"),
                splits=assignment,
                router_metrics=metrics,
                contract_version=schema.CONTRACT_VERSION,
                package_version=dars.__version__,
            )
        if changes:
            text = text.rstrip("\n") + "\n\n" + changes[0]
        write_text(text, tmp / "README.md")

        inputs = [Path(queries), Path(variants), Path(labels), Path(splits), report_path]
        inputs += [metrics_path]
        inputs += [model_file(generations_dir, m) for m in models]
        inputs += [model_file(outcomes_dir, m) for m in models]
        inputs += routers + ([index] if index.exists() else [])
        inputs += [Path(template)]
        manifest = build_manifest(
            folder=tmp,
            settings=settings,
            params_path=Path(params_path),
            lock_path=Path(lock) if lock is not None else None,
            inputs=input_provenance(paths=inputs, lock=lock_data),
        )
        manifest["utility"] = {k: W.as_json(v) for k, v in context["utility"].items()}
        if changes:
            manifest["previous"] = changes[1]
        write_json(manifest, tmp / MANIFEST)
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # mkstemp/mkdtemp make them private
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(f["size"] for f in manifest["files"].values())
    print(
        f"card: {len(manifest['files'])} files ({total / 1e6:.2f} MB) -> {target}/ "
        f"(dataset_version {settings['dataset_version']}; "
        + ", ".join(f"{c}={sum(split_rows[c].values())}" for c in CONFIGS)
        + " rows)"
        + ("  [SIMULATED build: not publishable]" if context["simulated"] else "")
    )
    return target
