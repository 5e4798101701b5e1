"""The data contract, v1, as pyarrow schemas. The listed columns are the minimum;
stages may add more (for example `backend`, `true_p` on simulated rows)."""

from __future__ import annotations

import hashlib

import pyarrow as pa

CONTRACT_VERSION = "1"

GRADERS = ("numeric", "choice", "code", "exact", "math", "f1")
#: the grader of queries brought in by `dars import`: their scores come from the source
IMPORTED_GRADER = "imported"
GRADE_STATUSES = ("ok", "unparsable", "timeout", "sandbox_violation", "error")
GEN_STATUSES = ("ok", "error")
SPLITS = ("train", "validation", "test")


def query_id(*, source: str, source_id: str) -> str:
    """The contract's stable query id: the first 16 hex digits of
    sha256("<source>:<source id>"). `prepare` passes the loader's source (e.g.
    `openai/human-eval`) and the row's id in it; `dars import` passes
    "<importer>:<task>" as the source, because a release's own ids repeat across its
    tasks (the same id in two datasets), so the task must be part of the key."""
    return hashlib.sha256(f"{source}:{source_id}".encode()).hexdigest()[:16]


QUERIES = pa.schema(
    [
        ("query_id", pa.string()),
        ("task", pa.string()),
        ("prompt", pa.string()),
        ("reference", pa.string()),
        ("grader", pa.string()),
        ("source", pa.string()),
        ("license", pa.string()),
        ("metadata", pa.string()),
    ]
)

QUARANTINE = pa.schema(
    [
        ("task", pa.string()),
        ("source", pa.string()),
        ("row_index", pa.int64()),
        ("reason", pa.string()),
        ("field", pa.string()),
        ("raw", pa.string()),
    ]
)

VARIANTS = pa.schema(
    [
        ("query_id", pa.string()),
        ("variant_id", pa.int64()),
        ("prompt", pa.string()),
        ("method", pa.string()),
        ("accepted", pa.bool_()),
        ("reject_reason", pa.string()),
    ]
)

GENERATIONS = pa.schema(
    [
        ("query_id", pa.string()),
        ("variant_id", pa.int64()),
        ("model", pa.string()),
        ("sample_id", pa.int64()),
        ("seed", pa.int64()),
        ("completion", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        # beyond the minimum: provenance and cost
        ("backend", pa.string()),
        ("revision", pa.string()),
        ("cost", pa.float64()),
        ("attempts", pa.int64()),
        ("true_p", pa.float64()),  # simulated backend only (null otherwise)
    ]
)

# Measured wall-clock fields: never equal across two runs, so they are kept out of the
# DVC-tracked tables (two clean builds give the same dvc.lock) and go to the run log
# (dars.core.runlog, under .dars/runs/).
WALL_CLOCK = (("latency_s", pa.float64()),)

# What the sampler produces and checkpoints (untracked shards): the contract plus the
# wall-clock fields, which `dars sample` moves to its run log when it writes the table.
SAMPLED = pa.schema(list(GENERATIONS) + list(WALL_CLOCK))

OUTCOMES = pa.schema(
    list(GENERATIONS)
    + [
        ("score", pa.float64()),
        ("parsed", pa.string()),
        ("grade_status", pa.string()),
        ("grade_detail", pa.string()),
    ]
)

LABELS = pa.schema(
    [
        ("query_id", pa.string()),
        ("model", pa.string()),
        ("task", pa.string()),
        ("n", pa.int64()),  # valid (scored) observations used in the label
        ("n_total", pa.int64()),  # all observations, failed ones included
        ("n_error", pa.int64()),  # generations with status=error (score null)
        ("n_variants", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("var_within", pa.float64()),
        ("var_between", pa.float64()),
        ("alpha", pa.float64()),
        ("beta", pa.float64()),
        ("ci_low", pa.float64()),  # rewrite-population mean (docs/intervals.md)
        ("ci_high", pa.float64()),
        ("ci_low_fixed", pa.float64()),  # mean on the K drawn rewrites
        ("ci_high_fixed", pa.float64()),
        ("single_shot", pa.float64()),
        ("mean_cost", pa.float64()),
        ("cost_norm", pa.float64()),
        ("utility", pa.float64()),
        ("backend", pa.string()),
        ("true_p", pa.float64()),  # simulated only: mean true success probability
    ]
)

SPLIT = pa.schema(
    [
        ("query_id", pa.string()),
        ("task", pa.string()),
        ("split", pa.string()),
    ]
)

KEYS = {
    "queries": ["query_id"],
    "variants": ["query_id", "variant_id"],
    "generations": ["query_id", "variant_id", "model", "sample_id"],
    "outcomes": ["query_id", "variant_id", "model", "sample_id"],
    "labels": ["query_id", "model"],
    "splits": ["query_id"],
}


def names(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema]
