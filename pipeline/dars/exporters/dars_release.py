"""`dars export dars-release OUT`: a build in the DARS reference release's layout.

    OUT/metadata.json
    OUT/<task>/train_scored_generations.jsonl     our train and validation queries
    OUT/<task>/test_scored_generations.jsonl      our test queries
    OUT/<task>/metadata.json

so the authors' router scripts (AIGNLAI/DARS `methods/*.py --data-dir OUT --datasets
<task> ...`) run on our labels. Their loader reads, per row, `dataset, split, query_id,
model, score, cost, prompt_variant_id, decode_id, observation_type, original_question,
input_question, context` (it drops rows whose score or cost is not a number) and splits the
test rows into views by `observation_type`; no script reads metadata.json, which records
what the folder holds (models, K, N, row counts per view) and the utility weights that
`dars import dars-release` reads back.

Mapping (the inverse of `dars.importers.dars_release`):

- `prompt_variant_id` = variant_id - 1 (our original, variant 0, is their -1; our rewrite
  v is their v - 1); `decode_id` = sample_id. An imported release keeps its own columns
  (`prompt_variant_id`, `decode_id`, `observation_type`, the scoring fields), which are
  written back verbatim;
- `observation_type` of a test row: the original's rows are `decoding_variation` (the
  original x N decodes) and every rewrite's rows `prompt_variation`. A native build
  samples the full K x N grid on test queries, so its prompt_variation view holds N
  decodes per rewrite where the release holds one: their scripts then average more rows
  per pair, never fewer. Train rows carry no view (null);
- our `validation` queries go to the train file (the release has no validation split;
  each row's `dars_split` names ours);
- a failed generation (null score) is written with `score: null` and `status: "error"`:
  their loader drops it (never a wrong answer), our importer keeps it as a failure;
- `predicted_answer` = `parsed`, `parse_success` = the generation was graded and parsed
  (`grade_status == "ok"`), `gold_answer` = the query's `reference`, `score_type` =
  `dars_<grader>` for a native build.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from dars.core.io import write_json
from dars.core.params import dataset_version, get, section
from dars.exporters.build import Build, JsonlWriters, finite, read_build

REQUIRED = [
    "query_id",
    "model",
    "variant_id",
    "sample_id",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "status",
    "cost",
    "score",
    "parsed",
    "grade_status",
]
#: an imported release's own columns, written back as they came
KEPT = [
    "prompt_variant_id",
    "decode_id",
    "observation_type",
    "score_type",
    "parse_success",
    "predicted_answer",
    "gold_answer",
    "em",
    "error",
]
VIEWS = ("prompt_variation", "decoding_variation")


def _gold(text: Any) -> Any:
    """The reference as the release stores gold answers: a JSON list stays a list."""
    if isinstance(text, str) and text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def release_row(b: Build, cols: dict[str, list], i: int) -> tuple[str, dict[str, Any]] | None:
    """One outcome row -> (relative file, JSON row); None for a query with no split."""
    qid = cols["query_id"][i]
    split = b.split_of.get(qid)
    if split is None:
        return None
    q = b.queries[qid]
    variant, sample = int(cols["variant_id"][i]), int(cols["sample_id"][i])

    def kept(name: str, default: Any) -> Any:
        values = cols.get(name)
        return default if values is None or values[i] is None else values[i]

    their_split = "test" if split == "test" else "train"
    derived_view = None
    if their_split == "test":
        derived_view = "decoding_variation" if variant == 0 else "prompt_variation"
    score = finite(cols["score"][i])
    failed = score is None
    status = cols["grade_status"][i]
    cost = finite(cols["cost"][i])
    row = {
        "dataset": q["task"],
        "split": their_split,
        "query_id": qid,
        "model": cols["model"][i],
        "prompt_variant_id": int(kept("prompt_variant_id", variant - 1)),
        "decode_id": int(kept("decode_id", sample)),
        "observation_type": kept("observation_type", derived_view),
        "original_question": q["prompt"],
        "input_question": b.variants.get((qid, variant), q["prompt"]),
        "context": None,
        "output_text": cols["completion"][i],
        "finish_reason": cols["finish_reason"][i],
        "usage": {
            "prompt_tokens": int(cols["prompt_tokens"][i]),
            "completion_tokens": int(cols["completion_tokens"][i]),
            "total_tokens": int(cols["prompt_tokens"][i]) + int(cols["completion_tokens"][i]),
            "cost": cost,
        },
        "cost": cost,
        "score": score,
        "score_type": kept("score_type", f"dars_{q['grader']}"),
        "parse_success": bool(kept("parse_success", status == "ok" and not failed)),
        "predicted_answer": kept("predicted_answer", cols["parsed"][i]),
        "gold_answer": _gold(kept("gold_answer", q["reference"])),
        "status": "error" if failed else "ok",
        "dars_split": split,
        "variant_id": variant,
        "sample_id": sample,
    }
    if failed:
        row["error"] = kept("error", f"no valid generation (grade_status {status})")
    if cols.get("em") is not None:
        row["em"] = finite(cols["em"][i])
    return f"{q['task']}/{their_split}_scored_generations.jsonl", row


def export_release(
    *, data_dir: str | Path, params: str | Path | None, out: str | Path
) -> dict[str, Any]:
    b = read_build(data_dir, params)
    out = Path(out)
    writers = JsonlWriters(out)
    views: Counter[tuple[str, str]] = Counter()
    models: set[str] = set()
    decodes: Counter[str] = Counter()
    try:
        for cols in b.batches(REQUIRED, KEPT):
            for i in range(len(cols["query_id"])):
                made = release_row(b, cols, i)
                if made is None:
                    continue
                rel, row = made
                writers.write(rel, row)
                models.add(row["model"])
                if row["observation_type"]:
                    views[(row["dataset"], row["observation_type"])] += 1
                decodes[row["dataset"]] = max(decodes[row["dataset"]], row["decode_id"] + 1)
    except BaseException:
        writers.abort()
        raise
    files = writers.close()
    agg = section(b.params, "aggregate")  # a build without params: the defaults
    lam, beta = agg.lambda_cost, agg.beta_risk
    version = dataset_version(b.params) if b.params.has("dataset_version") else None
    tasks = sorted({rel.split("/")[0] for rel in files})
    k = Counter(qid for qid, _ in b.variants)
    for task in tasks:
        ids = [qid for qid, q in b.queries.items() if q["task"] == task]
        meta: dict[str, Any] = {
            "dataset": task,
            "source": "dars export dars-release",
            "dataset_version": version,
            "models": sorted(models),
            "num_prompt_variants": max((k[qid] for qid in ids), default=1) - 1,
            "include_original": True,
            "num_decodes": int(decodes[task]),
            "queries": {
                s: sum(1 for qid in ids if b.split_of.get(qid) == s)
                for s in ("train", "validation", "test")
            },
            "rows": {
                s: files.get(f"{task}/{s}_scored_generations.jsonl", 0) for s in ("train", "test")
            },
            "test_views": {v: views[(task, v)] for v in VIEWS},
        }
        for key, value in (("lambda_cost", lam), ("beta_risk", beta)):
            if isinstance(value, dict) and task in value:
                meta[key] = value[task]
        write_json(meta, out / task / "metadata.json")
    top = {
        "source": "dars export dars-release",
        "dataset_version": version,
        "datasets": tasks,
        "license": get(b.params, "card.license") if b.params.has("card") else None,
        "prior_alpha": agg.prior_alpha,
        "prior_beta": agg.prior_beta,
        "ci": agg.ci,
        "variant_ids": "prompt_variant_id = our variant_id - 1 (-1 = the original query)",
    }
    for key, value in (("lambda_cost", lam), ("beta_risk", beta)):
        if not isinstance(value, dict):
            top[key] = value
    write_json(top, out / "metadata.json")
    return {"format": "dars-release", "out": str(out), "files": files, "datasets": tasks}
