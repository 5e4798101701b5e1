"""`dars export llmrouter OUT`: a build as LLMRouter's routing data (ulab-uiuc/LLMRouter,
`llmrouter/data/README.md`, "Routing Data JSONL").

    OUT/routing_data_{train,validation,test}.jsonl   one row per (query, model_name)
    OUT/query_data_{train,validation,test}.jsonl     one row per query
    OUT/llm_data.json                                one entry per model

A routing row holds LLMRouter's query fields (`task_name, query, ground_truth, metric,
choices, task_id`) and its response fields (`model_name, response, token_num,
input_tokens, output_tokens, response_time, performance, embedding_id, user_id, fig_id`),
with DARS's label in place of one graded response:

- `performance` = the label's mean quality over the K x N observations (`mean`), with
  `performance_std`, `performance_n`, `performance_ci_low/high` and `utility` beside it;
- `input_tokens` / `output_tokens` = the mean over the pair's valid generations, rounded
  (LLMRouter stores integers); `token_num` their sum; `response_time` the mean latency
  where the outcome files record it (null otherwise: latency is a run-log field, not a
  tracked column);
- cost: `cost` = the label's mean cost per query (the build's own unit), `cost_norm` the
  normalised cost the utility uses; `llm_data.json` gives each model's `input_price` and
  `output_price` per million tokens (LLMRouter's unit) from params.yaml's
  `price_per_1k_prompt` / `price_per_1k_completion` where the build has them (null else);
- `response` = the completion of sample 0 of variant 0 (what a one-sample dataset would
  have kept), null when that generation failed or was not sampled;
- `embedding_id` numbers the unique queries 0, 1, ... over all splits (LLMRouter's
  convention); no embedding file is written (LLMRouter computes its own);
- `task_id` = our query_id, so predictions made on this export can be scored with
  `dars bench --predictions`.

A pair whose label has no valid observation (every generation failed) is written with
`performance: null`: it is missing, not a wrong answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dars.core import duck
from dars.core.io import parquet_schema, write_json
from dars.core.params import model_config
from dars.exporters.build import JsonlWriters, finite, read_build

LABEL_COLUMNS = ["query_id", "model", "n", "mean", "std", "ci_low", "ci_high", "mean_cost"]
OPTIONAL_LABELS = ["cost_norm", "utility"]


def pair_usage(outcome_files: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(query_id, model) -> mean tokens and latency over valid generations, and the
    single-shot completion; one DuckDB group-by over the outcome files."""
    con = duck.connect()
    src = duck.read_parquet(outcome_files)
    # latency is a wall-clock field, kept out of the tracked tables (core.schema.WALL_CLOCK):
    # null unless a file has it
    has_latency = all("latency_s" in pq.read_schema(f).names for f in outcome_files)
    latency = "latency_s" if has_latency else "NULL::DOUBLE"
    sql = f"""
        SELECT query_id, model,
               avg(prompt_tokens) FILTER (WHERE score IS NOT NULL)     AS input_tokens,
               avg(completion_tokens) FILTER (WHERE score IS NOT NULL) AS output_tokens,
               avg({latency}) FILTER (WHERE score IS NOT NULL)         AS response_time,
               min(completion) FILTER (WHERE variant_id = 0 AND sample_id = 0
                                       AND score IS NOT NULL)          AS response
        FROM {src} GROUP BY query_id, model
    """
    t = duck.arrow_table(con, sql).to_pydict()
    return {
        (q, m): {
            "input_tokens": t["input_tokens"][i],
            "output_tokens": t["output_tokens"][i],
            "response_time": t["response_time"][i],
            "response": t["response"][i],
        }
        for i, (q, m) in enumerate(zip(t["query_id"], t["model"], strict=True))
    }


def _int(x: Any) -> int | None:
    return None if x is None else int(round(float(x)))


def export_llmrouter(
    *, data_dir: str | Path, params: str | Path | None, out: str | Path
) -> dict[str, Any]:
    b = read_build(data_dir, params)
    out = Path(out)
    path = b.data_dir / "labels.parquet"
    names = parquet_schema(path, required=LABEL_COLUMNS, what="labels").names
    usage = pair_usage(b.outcome_files)
    embedding_id = {qid: i for i, qid in enumerate(sorted(b.queries))}
    writers = JsonlWriters(out)
    models: set[str] = set()
    try:
        for qid in sorted(b.queries):
            split = b.split_of.get(qid)
            if split is not None:
                writers.write(f"query_data_{split}.jsonl", query_fields(b.queries[qid], qid))
        cols = LABEL_COLUMNS + [c for c in OPTIONAL_LABELS if c in names]
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=cols):
            lab = batch.to_pydict()
            for i, qid in enumerate(lab["query_id"]):
                split = b.split_of.get(qid)
                if split is None or qid not in b.queries:
                    continue
                model = lab["model"][i]
                models.add(model)
                u = usage.get((qid, model), {})
                tin, tout = _int(u.get("input_tokens")), _int(u.get("output_tokens"))
                row = {
                    **query_fields(b.queries[qid], qid),
                    "model_name": model,
                    "response": u.get("response"),
                    "token_num": None if tin is None or tout is None else tin + tout,
                    "input_tokens": tin,
                    "output_tokens": tout,
                    "response_time": finite(u.get("response_time")),
                    "api_key_used": "",
                    "performance": finite(lab["mean"][i]),
                    "performance_std": finite(lab["std"][i]),
                    "performance_n": int(lab["n"][i]),
                    "performance_ci_low": finite(lab["ci_low"][i]),
                    "performance_ci_high": finite(lab["ci_high"][i]),
                    "cost": finite(lab["mean_cost"][i]),
                    "cost_norm": finite(lab["cost_norm"][i]) if "cost_norm" in lab else None,
                    "utility": finite(lab["utility"][i]) if "utility" in lab else None,
                    "embedding_id": embedding_id[qid],
                    "user_id": None,
                    "fig_id": None,
                    "split": split,
                }
                writers.write(f"routing_data_{split}.jsonl", row)
    except BaseException:
        writers.abort()
        raise
    files = writers.close()
    declared = set(b.params.names)
    llm = {}
    for m in sorted(models):
        cfg = model_config(b.params, m) if m in declared else None
        llm[m] = {
            "model": m,
            "size": None,
            "feature": f"{m} ({cfg.backend if cfg else 'unknown'} backend)",
            "input_price": cfg.price_per_1k_prompt * 1000.0 if cfg else None,
            "output_price": cfg.price_per_1k_completion * 1000.0 if cfg else None,
        }
    write_json(llm, out / "llm_data.json")
    return {"format": "llmrouter", "out": str(out), "files": files, "models": sorted(models)}


def query_fields(q: dict[str, Any], qid: str) -> dict[str, Any]:
    """LLMRouter's query-data fields."""
    return {
        "task_name": q["task"],
        "query": q["prompt"],
        "ground_truth": q["reference"],
        "metric": q["grader"],
        "choices": None,
        "task_id": qid,
    }
