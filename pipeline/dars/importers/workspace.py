"""Write imported observations as a ready DARS workspace (shared by every importer).

An importer turns a source release into one observation frame (`OBS_COLUMNS`, one row
per scored generation) plus a split assignment. `write_workspace` maps that frame onto
the data contract and writes, under OUT:

    params.yaml                       one `models` entry per imported model (its source
                                      id), backend `imported`; `imported` records the source
    data/queries.parquet              query_id = sha256("<source>:<task>:<source id>")[:16];
                                      metadata JSON keeps `source_id` (and
                                      the importer's `query_metadata`)
    data/variants.parquet             the source's prompt variants (variant 0 = original)
    data/generations/<model>.parquet  file name = model_file_stem(model id)
    data/outcomes/<model>.parquet     the generations plus the source's score
    data/splits.parquet
    reports/import.json               counts, dropped rows by reason, source digests

Validation and aggregation are then the project's own stages, run by `dars import`.
Rows that cannot be mapped are dropped and counted by reason (`Drops`), with the file
and line (or row and column) of the first few; a row never costs another row.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from dars.core import schema
from dars.core.errors import InputDataError
from dars.core.io import model_file, model_file_stem, write_frame, write_json, write_text
from dars.core.params import check_all, parse, section
from dars.core.schema import query_id
from dars.core.splits import assign_splits

#: the observation frame every importer returns
OBS_COLUMNS = [
    "source_id",  # the source's query id
    "task",
    "query_prompt",  # the original prompt
    "variant_id",  # int, 0 = the original
    "variant_prompt",
    "model",  # the source's model id
    "order",  # sorts a pair's rows within a variant; sample_id = rank in this order
    "completion",  # None when the source has no output (a failed generation)
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "cost",
    "score",  # None exactly when the generation failed
]
EXAMPLES_PER_REASON = 3
IMPORTED = "imported"
DEFAULT_LAMBDA = 0.05  # the paper's defaults (DESIGN.md)
DEFAULT_BETA = 0.2


@dataclass
class Drops:
    """Rows left out, counted by reason, with where the first few were."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(where)

    def note(self, what: str, n: int = 1) -> None:
        """Something kept but filled in (for example a missing token count set to 0)."""
        if n:
            self.notes[what] += int(n)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "dropped 0 rows"
        parts = [
            f"{reason}: {n} (first at {', '.join(self.examples[reason])})"
            for reason, n in sorted(self.counts.items())
        ]
        return f"dropped {self.total} rows: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dropped": self.total,
            "by_reason": {
                r: {"rows": n, "first_at": self.examples[r]} for r, n in sorted(self.counts.items())
            },
            "filled_in": dict(sorted(self.notes.items())),
        }


@dataclass
class Imported:
    """What an importer read: observations, their split, and where they came from."""

    source: str  # importer name, e.g. "dars-release"
    obs: pd.DataFrame  # OBS_COLUMNS + extra columns
    extra_columns: list[str]  # source columns kept in generations/outcomes
    splits: pd.DataFrame | None  # source_id, task, split; None = the project's split
    drops: Drops
    files: list[Path]  # the source files read (their sha256 go into the report)
    license: str = "unknown"  # licence of the queries, as the source states it
    source_metadata: dict[str, Any] = field(default_factory=dict)
    lambda_cost: float = DEFAULT_LAMBDA
    beta_risk: float = DEFAULT_BETA
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    card_note: str = ""  # what the card must say about this source (e.g. n = 1)
    #: {view: {source_rows, imported_rows}} for a source with test views; the rows written
    #: per view are checked against `imported_rows` (write_workspace)
    views: dict[str, Any] | None = None
    #: aggregate settings the source records (prior_alpha, prior_beta, ci), over the defaults
    aggregate: dict[str, float] = field(default_factory=dict)
    #: (task, source id) -> source fields kept in the query's metadata JSON (e.g. the DARS
    #: release's question and context)
    query_metadata: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_model_names(models: list[str], *, what: str) -> None:
    """Two source ids must not map to one file name."""
    stems: dict[str, str] = {}
    for m in models:
        stem = model_file_stem(m)
        if stem in stems and stems[stem] != m:
            raise InputDataError(
                f"{what}: models {stems[stem]!r} and {m!r} would both be stored as "
                f"{stem}.parquet; rename one in the source"
            )
        stems[stem] = m


def _with_ids(imp: Imported) -> pd.DataFrame:
    obs = imp.obs.copy()
    obs["query_id"] = [
        query_id(source=f"{imp.source}:{t}", source_id=s)
        for t, s in zip(obs["task"], obs["source_id"], strict=True)
    ]
    obs["variant_id"] = obs["variant_id"].astype("int64")
    obs = obs.sort_values(["query_id", "model", "variant_id", "order"], kind="stable").reset_index(
        drop=True
    )
    obs["sample_id"] = obs.groupby(["query_id", "model", "variant_id"]).cumcount().astype("int64")
    return obs


def queries_table(obs: pd.DataFrame, imp: Imported) -> pd.DataFrame:
    q = obs.drop_duplicates("query_id")[["query_id", "task", "query_prompt", "source_id"]]
    meta = [
        json.dumps(
            {**imp.query_metadata.get((t, s), {}), "source_id": s, "source": imp.source},
            sort_keys=True,
        )
        for t, s in zip(q["task"], q["source_id"], strict=True)
    ]
    if "reference" in obs.columns:  # the source's gold answer, where it ships one
        first = obs.dropna(subset=["reference"]).drop_duplicates("query_id")
        ref = q["query_id"].map(first.set_index("query_id")["reference"]).fillna("")
    else:
        ref = pd.Series("", index=q.index)  # the source ships scores, not references
    return pd.DataFrame(
        {
            "query_id": q["query_id"].to_numpy(),
            "task": q["task"].to_numpy(),
            "prompt": q["query_prompt"].to_numpy(),
            "reference": ref.to_numpy(),
            "grader": schema.IMPORTED_GRADER,
            "source": [f"{imp.source}:{t}" for t in q["task"]],
            "license": imp.license,
            "metadata": meta,
        }
    ).sort_values("query_id", kind="stable")


def variants_table(obs: pd.DataFrame, imp: Imported) -> pd.DataFrame:
    v = obs.drop_duplicates(["query_id", "variant_id"])[
        ["query_id", "variant_id", "variant_prompt"]
    ]
    # every query has its original as variant 0, even if the source sampled only rewrites
    q = obs.drop_duplicates("query_id")[["query_id", "query_prompt"]]
    missing0 = q[~q["query_id"].isin(v.loc[v["variant_id"] == 0, "query_id"])]
    v0 = pd.DataFrame(
        {
            "query_id": missing0["query_id"],
            "variant_id": 0,
            "variant_prompt": missing0["query_prompt"],
        }
    )
    v = pd.concat([v, v0], ignore_index=True)
    out = pd.DataFrame(
        {
            "query_id": v["query_id"].to_numpy(),
            "variant_id": v["variant_id"].astype("int64").to_numpy(),
            "prompt": v["variant_prompt"].to_numpy(),
            "method": imp.source,
            "accepted": True,
            "reject_reason": None,
        }
    )
    return out.sort_values(["query_id", "variant_id"], kind="stable").reset_index(drop=True)


def observation_tables(
    obs: pd.DataFrame, imp: Imported, revision: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    failed = obs["score"].isna()
    gen = pd.DataFrame(
        {
            "query_id": obs["query_id"],
            "variant_id": obs["variant_id"].astype("int64"),
            "model": obs["model"],
            "sample_id": obs["sample_id"].astype("int64"),
            "seed": np.int64(-1),  # not recorded by the source
            "completion": obs["completion"],
            "prompt_tokens": obs["prompt_tokens"].astype("int64"),
            "completion_tokens": obs["completion_tokens"].astype("int64"),
            "finish_reason": obs["finish_reason"].fillna("unknown").astype(str),
            "status": np.where(failed, "error", "ok"),
            "error": np.where(
                failed, f"no scored output in the {imp.source} source", np.array(None, dtype=object)
            ),
            "latency_s": 0.0,  # not recorded by the source
            "backend": IMPORTED,
            "revision": revision,
            "cost": obs["cost"].astype("float64"),
            "attempts": np.int64(1),
            "true_p": np.nan,
        }
    )
    for c in imp.extra_columns:
        gen[c] = obs[c].to_numpy()
    out = gen.copy()
    out["score"] = obs["score"].astype("float64")
    # the source's parsed answer and grade status where it ships them (e.g. DARS's
    # predicted_answer / parse_success), else none and ok/error
    out["parsed"] = obs["parsed"].to_numpy() if "parsed" in obs.columns else None
    out["grade_status"] = (
        obs["grade_status"].fillna("ok").to_numpy()
        if "grade_status" in obs.columns
        else np.where(failed, "error", "ok")
    )
    out.loc[failed.to_numpy(), "grade_status"] = "error"
    out["grade_detail"] = f"score from the {imp.source} source"
    return gen, out


def _schema_with_extras(base: pa.Schema, frame: pd.DataFrame, extras: list[str]) -> pa.Schema:
    fields = list(base)
    for c in extras:
        fields.append(pa.field(c, pa.Table.from_pandas(frame[[c]], preserve_index=False)[0].type))
    return pa.schema(fields)


def uniform_n(obs: pd.DataFrame, variants: pd.DataFrame, models: list[str]) -> int | None:
    """N when every variant x model has exactly N rows (a uniform build), else None."""
    per_variant = obs.groupby(["query_id", "model", "variant_id"]).size()
    if per_variant.nunique() != 1 or len(per_variant) != len(variants) * len(models):
        return None
    return int(per_variant.iloc[0])


def workspace_params(
    imp: Imported,
    *,
    models: list[str],
    per_pair: tuple[int, int],
    n_uniform: int | None,
    k: int,
    revision: str,
) -> dict[str, Any]:
    tasks = imp.obs.drop_duplicates(["task", "source_id"])["task"].value_counts().sort_index()
    aggregate: dict[str, Any] = {
        "prior_alpha": 0.5,
        "prior_beta": 0.5,
        "ci": 0.95,
        "lambda_cost": imp.lambda_cost,
        "beta_risk": imp.beta_risk,
        "max_error_rate": 1.0,  # the source decides what it kept; failures are counted
        **imp.aggregate,
    }
    return {
        "dataset_version": f"{imp.source}-{revision}",
        "imported": {
            "source": imp.source,
            "revision": revision,
            "files": [p.name for p in imp.files],
            "note": imp.card_note,
        },
        "prepare": {
            "tasks": {
                t: {"kind": IMPORTED, "source": imp.source, "n": int(n)} for t, n in tasks.items()
            }
        },
        "reformulate": {"k": int(k), "method": imp.source},
        "sample": {"n": int(n_uniform or 1), "seed": 0, "max_retries": 0},
        "sampling": (
            {"strategy": "uniform"}
            if n_uniform
            else {
                "strategy": IMPORTED,
                "min_per_pair": int(per_pair[0]),
                "max_per_pair": int(per_pair[1]),
            }
        ),
        "models": {m: {"backend": IMPORTED} for m in models},
        "validate": {"max_error_rate": 1.0, "max_unexpected_examples": 5},
        "aggregate": aggregate,
        "split": {"seed": 0, "fractions": {"train": 0.6, "validation": 0.2, "test": 0.2}},
        "routers": {
            "names": ["random", "best-single", "cheapest", "knn", "ridge", "mlp", "mf"],
            "features": "tfidf",
            "single_shot_repeats": 5,
            "seed": 0,
            "params": {"knn": {"n_neighbors": 10}, "mf": {"n_components": 2}},
        },
        "evaluate": {
            "bootstrap": 1000,
            "seed": 0,
            "ci": 0.95,
            "lambda_grid": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0],
        },
        "card": {
            "repo_id": f"local/{imp.source}-import",
            "pretty_name": f"{imp.source} imported into the DARS contract",
            "license": "other",
            "task_categories": ["text-generation", "text-classification"],
            "tags": ["llm-routing", "routing", "dars", imp.source],
            "models": {
                m: {
                    "upstream_id": m,
                    "license": "the model provider's terms (the source does not state them)",
                }
                for m in models
            },
        },
    }


def _check_views(imp: Imported, outcomes_dir: Path, models: list[str]) -> dict[str, Any] | None:
    """The rows per test view in the outcome files just written, checked against what the
    importer kept (`imp.views[view]['imported_rows']`); a mismatch is a bug, never data."""
    if imp.views is None:
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    written: Counter[str] = Counter()
    for m in models:
        t = pq.read_table(model_file(outcomes_dir, m), columns=["observation_type", "source_split"])
        t = t.filter(pc.equal(t["source_split"], "test"))
        for v, n in Counter(t["observation_type"].to_pylist()).items():
            written[str(v)] += n
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in imp.views.items()}
    for view, counts in out.items():
        if not isinstance(counts, dict):
            continue
        counts["written_rows"] = int(written.get(view, 0))
        if counts["written_rows"] != counts["imported_rows"]:
            raise InputDataError(
                f"{imp.source}: test view {view!r}: {counts['imported_rows']} rows kept but "
                f"{counts['written_rows']} written to {str(outcomes_dir)!r}"
            )
    return out


def write_workspace(imp: Imported, out: str | Path) -> dict[str, Any]:
    """Map `imp` onto the contract under `out`; returns the import report."""
    out = Path(out)
    if not len(imp.obs):
        raise InputDataError(
            f"{imp.source}: no usable row in {[str(p) for p in imp.files]}; {imp.drops.summary()}"
        )
    obs = _with_ids(imp)
    models = sorted(obs["model"].unique())
    check_model_names(models, what=imp.source)
    digest = hashlib.sha256()
    for p in sorted(imp.files):
        digest.update(f"{p.name}:{file_sha256(p)}\n".encode())
    revision = digest.hexdigest()[:12]

    queries = queries_table(obs, imp)
    variants = variants_table(obs, imp)
    gen, outc = observation_tables(obs, imp, revision)
    pair_rows = obs.groupby(["query_id", "model"]).size()
    per_pair = (int(pair_rows.min()), int(pair_rows.max()))
    k = int(variants.groupby("query_id").size().max())

    data = out / "data"
    write_frame(queries, data / "queries.parquet", schema=schema.QUERIES)
    write_frame(variants, data / "variants.parquet", schema=schema.VARIANTS)
    gen_schema = _schema_with_extras(schema.GENERATIONS, gen, imp.extra_columns)
    out_schema = _schema_with_extras(schema.OUTCOMES, outc, imp.extra_columns)
    for m in models:
        sel = (gen["model"] == m).to_numpy()
        write_frame(gen[sel], model_file(data / "generations", m), schema=gen_schema)
        write_frame(outc[sel], model_file(data / "outcomes", m), schema=out_schema)

    views = _check_views(imp, data / "outcomes", models)
    params = workspace_params(
        imp,
        models=models,
        per_pair=per_pair,
        n_uniform=uniform_n(obs, variants, models),
        k=k,
        revision=revision,
    )
    # the file written is a params.yaml like any other: parsed and checked here
    checked = parse(params, str(out / "params.yaml"))
    check_all(checked)
    if imp.splits is not None:
        ids = {
            (t, s): query_id(source=f"{imp.source}:{t}", source_id=s)
            for t, s in zip(imp.splits["task"], imp.splits["source_id"], strict=True)
        }
        splits = pd.DataFrame(
            {
                "query_id": [
                    ids[(t, s)]
                    for t, s in zip(imp.splits["task"], imp.splits["source_id"], strict=True)
                ],
                "task": imp.splits["task"].to_numpy(),
                "split": imp.splits["split"].to_numpy(),
            }
        )
        splits = splits[splits["query_id"].isin(queries["query_id"])]
    else:
        split = section(checked, "split")
        splits = assign_splits(queries=queries, seed=split.seed, fractions=split.fractions)
    write_frame(
        splits.sort_values("query_id").reset_index(drop=True),
        data / "splits.parquet",
        schema=schema.SPLIT,
    )
    header = (
        f"# Written by `dars import {imp.source}` (revision {revision}). The data/ tables are\n"
        "# imported, not sampled: backend `imported` has no engine. Validate, aggregate,\n"
        "# split, train, evaluate and card read this file as in a build.\n"
    )
    write_text(
        header + yaml.safe_dump(params, sort_keys=False, allow_unicode=True), out / "params.yaml"
    )

    report = {
        "source": imp.source,
        "revision": revision,
        "files": {p.name: file_sha256(p) for p in sorted(imp.files)},
        "source_metadata": imp.source_metadata,
        "utility_weights": {
            "lambda_cost": imp.lambda_cost,
            "beta_risk": imp.beta_risk,
            "per_task": imp.per_task,  # recorded; aggregate uses the global pair for now
        },
        "queries": int(len(queries)),
        "models": models,
        "model_files": {m: model_file_stem(m) for m in models},
        "observations": int(len(obs)),
        "failed_generations": int(obs["score"].isna().sum()),
        "observations_per_pair": {"min": per_pair[0], "max": per_pair[1]},
        "splits": {str(k): int(v) for k, v in splits["split"].value_counts().sort_index().items()},
        **({"views": views} if views is not None else {}),
        **imp.drops.as_dict(),
    }
    write_json(report, out / "reports" / "import.json")
    return report
