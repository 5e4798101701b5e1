"""`dars import dars-release SRC_DIR`: the DARS reference release (scored JSONL).

Layout: `SRC_DIR/<dataset>/{train,test}_scored_generations.jsonl` (one folder per
source benchmark, e.g. gpqa, math, drop) plus `metadata.json` (in SRC_DIR or in a
dataset folder; kept verbatim in reports/import.json). A SRC_DIR that holds the two
JSONL files itself is one dataset named after the folder.

Each line is one scored generation with the fields
`query_id, model, prompt_variant_id, decode_id, observation_type, input_question,
output_text, score, cost, usage{prompt_tokens, completion_tokens, cost}, finish_reason`
(and, where present, `dataset, split, original_question, context`, and what the authors'
`dataset/score_generations.py` adds: `score_type, parse_success, predicted_answer,
gold_answer, em`). Mapping:

- task = the dataset folder (or the row's `dataset`); the query's prompt is
  `original_question` (else the original's `input_question`), with `context` before it
  when the row has one; queries keep the release's `query_id` as `source_id`;
- variant ids: the release numbers the original query `prompt_variant_id = -1` and its
  rewrites 0, 1, ...; the contract numbers the original 0. So variant_id =
  `prompt_variant_id + 1` (-1 -> 0, rewrite r -> r + 1), its prompt = `input_question`.
  The release's training rows are rewrites only (0..4 -> variants 1..5; the queries'
  variant 0 is written from `original_question` with no observation), so their
  `single_shot` label (sample 0 of variant 0) is null; the raw id stays as the column
  `prompt_variant_id`;
- sample_id = the rank of the row within (query, model, variant), ordered by
  `observation_type` then `decode_id`; both stay as columns (`observation_type` per row),
  so the two test views (`prompt_variation`: rewrites x 1 decode; `decoding_variation`:
  the original x N decodes) survive the import and `dars.labels.views` selects them by
  `observation_type`. A test row must name one of the two views, and a view's rows must
  have the matching id (prompt_variation: a rewrite; decoding_variation: -1); the rows
  per view are counted in reports/import.json (`views`) and checked against the rows
  written;
- the scoring fields go where the contract has a place: `predicted_answer` -> `parsed`;
  `parse_success = false` -> `grade_status = unparsable` (a scored wrong answer, as our own
  graders mark it); `gold_answer` -> the query's `reference` (JSON when it is a list, as
  for DROP); `score_type`, `parse_success`, `predicted_answer`, `gold_answer` and `em`
  are also kept verbatim as extra outcome columns;
- completion = `output_text`; tokens from `usage`; cost = `cost` (else `usage.cost`);
- `source_row`: each kept row's position in the release as read (dataset folders in
  name order, the train file before the test file, lines in order), an extra outcome
  column. `--protocol dars` orders rows by it, so its single-shot draw (pairs in first
  appearance, one `rng.integers` per pair) walks the rows in the authors' file order;
- the query's `question` and `context` as the authors' router scripts pick them
  (`build_query_text_table`: the first scored row of the query in file order; question =
  the first non-empty of `original_question, input_question, question, prompt`, context =
  of `context, passage`, both stripped) go into the query's metadata JSON, from which
  `--protocol dars` rebuilds their router text `context[:1200] + "\nQuestion: " +
  question`;
- a row with `status = "error"` (what `dars export dars-release` writes for a failed
  generation; the authors' files have no such field) is a failed generation even when it
  has an output: score null, never a wrong answer;
- aggregate settings: `prior_alpha`, `prior_beta` and `ci` of the top metadata.json where
  it has them (what `dars export dars-release` records), else 0.5 / 0.5 / 0.95;
- splits: the test file's queries are `test`; the train file's queries are cut into
  `train` and `validation` (10%, seeded hash of the id, grouped by query, stratified by
  task), because the release has no validation split and the publish layout needs one.

Dropped, counted by reason with file:line: lines that are not JSON objects, missing
fields, non-integer ids, a missing score on a row with an output (a row without
`output_text` and without a score is kept as a failed generation), a score that is not a
number in [0, 1], a duplicate (split, query, model, variant, decode, observation type),
and a query that appears in both train and test (its test rows).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from dars.core.errors import InputDataError
from dars.core.splits import assign_splits
from dars.importers.workspace import DEFAULT_BETA, DEFAULT_LAMBDA, OBS_COLUMNS, Drops, Imported

NAME = "dars-release"
FILES = {"train": "train_scored_generations.jsonl", "test": "test_scored_generations.jsonl"}
REQUIRED = ("query_id", "model", "prompt_variant_id", "decode_id", "input_question")
VALIDATION_FRACTION = 0.1
ORIGINAL = -1  # the release's prompt_variant_id of the original query
VIEWS = ("prompt_variation", "decoding_variation")
#: fields the authors' dataset/score_generations.py writes, kept verbatim per row
SCORING_COLUMNS = ["score_type", "parse_success", "predicted_answer", "gold_answer", "em"]
EXTRA_COLUMNS = [
    "source_row",
    "observation_type",
    "decode_id",
    "prompt_variant_id",
    "source_split",
    *SCORING_COLUMNS,
]


def find_datasets(src: Path) -> dict[str, dict[str, Path]]:
    """dataset name -> {split: jsonl path}; an unknown layout fails naming what is there."""
    if not src.is_dir():
        raise InputDataError(
            f"dars-release source {str(src)!r} is not a folder; expected "
            f"<folder>/<dataset>/{FILES['train']} and {FILES['test']}"
        )

    def files_in(d: Path) -> dict[str, Path]:
        return {s: d / f for s, f in FILES.items() if (d / f).is_file()}

    found = {d.name: files_in(d) for d in sorted(src.iterdir()) if d.is_dir() and files_in(d)}
    if not found and files_in(src):
        found = {src.name: files_in(src)}
    if not found:
        seen = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())[:10]
        raise InputDataError(
            f"unknown layout in {str(src)!r}: no <dataset>/{FILES['train']} or "
            f"<dataset>/{FILES['test']} (the DARS release layout); found {seen or 'no files'}"
        )
    return found


def read_metadata(src: Path, datasets: dict[str, dict[str, Path]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for where, path in [("", src / "metadata.json")] + [
        (name, src / name / "metadata.json") for name in datasets
    ]:
        if path.is_file():
            try:
                out[where or "."] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputDataError(
                    f"{str(path)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}): "
                    f"{exc.msg}"
                ) from exc
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_row(
    row: Any, *, task: str, split: str, where: str, drops: Drops
) -> dict[str, Any] | None:
    """One JSONL row -> one observation (OBS_COLUMNS + extras), or None (dropped)."""
    if not isinstance(row, dict):
        drops.add("not a JSON object", where)
        return None
    for key in REQUIRED:
        if row.get(key) is None:
            drops.add(f"missing field {key!r}", where)
            return None
    variant, decode = _int(row["prompt_variant_id"]), _int(row["decode_id"])
    if variant is None or variant < ORIGINAL:
        drops.add("prompt_variant_id is not an integer >= -1 (-1 = the original)", where)
        return None
    if decode is None or decode < 0:
        drops.add("decode_id is not an integer >= 0", where)
        return None
    obs_type = row.get("observation_type")
    obs_type = None if obs_type in (None, "") else str(obs_type)
    if split == "test":
        if obs_type not in VIEWS:
            drops.add(f"test row with observation_type not one of {list(VIEWS)}", where)
            return None
        if (obs_type == "decoding_variation") != (variant == ORIGINAL):
            drops.add(
                "observation_type does not match prompt_variant_id (decoding_variation = "
                "the original, -1; prompt_variation = a rewrite, >= 0)",
                where,
            )
            return None
    output = row.get("output_text")
    raw_score = row.get("score")
    failed = row.get("status") == "error"
    if raw_score is None or failed:
        if output is not None and not failed:
            drops.add("missing score", where)
            return None
        score = None  # no scored output: a failed generation, never a wrong answer
    else:
        score = _number(raw_score)
        if score is None or not math.isfinite(score):
            drops.add("score is not a number", where)
            return None
        if not 0.0 <= score <= 1.0:
            drops.add("score outside [0, 1]", where)
            return None
    usage = row.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    cost = _number(row.get("cost"))
    if cost is None:
        cost = _number(usage.get("cost"))
    if cost is None or cost < 0:
        drops.note("cost missing or negative in the source, set to 0")
        cost = 0.0
    tokens = {}
    for k in ("prompt_tokens", "completion_tokens"):
        t = _int(usage.get(k))
        if t is None or t < 0:
            drops.note(f"{k} missing in the source, set to 0")
            t = 0
        tokens[k] = t
    context = row.get("context")
    question = row.get("original_question")

    def with_context(text: str) -> str:
        return f"{context}\n\n{text}" if isinstance(context, str) and context.strip() else text

    gold = row.get("gold_answer")
    parse_ok = row.get("parse_success")
    dars_text = {
        "question": _first_text(row, ("original_question", "input_question", "question", "prompt")),
        "context": _first_text(row, ("context", "passage")),
    }
    predicted = row.get("predicted_answer")
    return {
        "source_id": str(row["query_id"]),
        "task": str(row.get("dataset") or task),
        "query_prompt": with_context(str(question)) if question is not None else None,
        "variant_id": variant - ORIGINAL,  # -1 (the original) -> 0, rewrite r -> r + 1
        "variant_prompt": with_context(str(row["input_question"])),
        "model": str(row["model"]),
        "order": 0,  # set once all rows are read: by observation_type, then decode_id
        "completion": None if output is None else str(output),
        "finish_reason": str(row.get("finish_reason") or "unknown"),
        "cost": cost,
        "score": score,
        "observation_type": obs_type,
        "decode_id": decode,
        "prompt_variant_id": variant,
        "source_split": split,
        "score_type": None if row.get("score_type") is None else str(row["score_type"]),
        "parse_success": parse_ok if isinstance(parse_ok, bool) else None,
        "predicted_answer": None if predicted is None else str(predicted),
        "gold_answer": _text(gold),
        "em": _number(row.get("em")),
        "dars_text": dars_text,
        "parsed": None if predicted is None or score is None else str(predicted),
        "grade_status": "error" if score is None else ("unparsable" if parse_ok is False else "ok"),
        **tokens,
    }


def _first_text(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The first of `keys` that holds a non-blank string, stripped; "" if none (the
    authors' `first_nonempty`)."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _text(value: Any) -> str | None:
    """A JSON value as the contract's text: strings as they are, lists/objects as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def read_jsonl(
    path: Path,
    *,
    name: str,
    task: str,
    split: str,
    drops: Drops,
    view_rows: Counter[str] | None = None,
) -> list[dict[str, Any]]:
    """The rows of one JSONL file; `name` is how messages call the file. `view_rows`
    counts the file's JSON objects by `observation_type` (before any row is dropped)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{name}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                drops.add("not valid JSON", f"{where} (column {exc.colno})")
                continue
            if view_rows is not None and isinstance(obj, dict):
                view_rows[str(obj.get("observation_type") or "")] += 1
            parsed = parse_row(obj, task=task, split=split, where=where, drops=drops)
            if parsed is not None:
                parsed["_where"] = where
                rows.append(parsed)
    return rows


def read_release(src: str | Path) -> Imported:
    src = Path(src)
    datasets = find_datasets(src)
    drops = Drops()
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    source_views: Counter[str] = Counter()
    for name, by_split in datasets.items():
        for split, path in by_split.items():
            files.append(path)
            shown = path.relative_to(src.parent).as_posix()
            rows += read_jsonl(
                path,
                name=shown,
                task=name,
                split=split,
                drops=drops,
                view_rows=source_views if split == "test" else None,
            )
    meta = read_metadata(src, datasets)
    files += [
        p
        for p in [src / "metadata.json", *(src / n / "metadata.json" for n in datasets)]
        if p.is_file()
    ]
    columns = [*OBS_COLUMNS, *EXTRA_COLUMNS, "parsed", "grade_status", "dars_text", "_where"]
    obs = pd.DataFrame(rows, columns=columns)
    obs["source_row"] = range(len(obs))  # `rows` is in the release's file order
    if len(obs):
        obs = _drop_conflicts(obs, drops)
        ordering = obs.sort_values(
            ["observation_type", "decode_id"], kind="stable", na_position="first"
        ).index
        obs.loc[ordering, "order"] = range(len(obs))
    # the query's original prompt: original_question, else the original's input_question
    v0 = obs[obs["variant_id"] == 0].drop_duplicates(["task", "source_id"])
    first = v0.set_index(["task", "source_id"])["variant_prompt"]
    key = pd.MultiIndex.from_frame(obs[["task", "source_id"]])
    fallback = pd.Series(first.reindex(key).to_numpy(), index=obs.index)
    obs["query_prompt"] = obs["query_prompt"].fillna(fallback)
    no_prompt = obs["query_prompt"].isna()
    for where in obs.loc[no_prompt, "_where"]:
        drops.add("query has neither original_question nor an original (id -1) row", where)
    obs = obs[~no_prompt]
    # the contract's reference: the release's gold answer (one per query)
    gold = obs.dropna(subset=["gold_answer"]).drop_duplicates(["task", "source_id"])
    ref = gold.set_index(["task", "source_id"])["gold_answer"]
    key = pd.MultiIndex.from_frame(obs[["task", "source_id"]])
    obs["reference"] = ref.reindex(key).to_numpy()
    test = obs[obs["source_split"] == "test"]
    views: dict[str, dict[str, int] | int] = {
        v: {
            "source_rows": int(source_views.get(v, 0)),
            "imported_rows": int((test["observation_type"] == v).sum()),
        }
        for v in VIEWS
    }
    pairs = test.groupby(["task", "source_id", "model"])["observation_type"].nunique()
    views["pairs"] = int(len(pairs))
    views["pairs_missing_a_view"] = int((pairs < len(VIEWS)).sum())
    splits = _splits(obs)
    lam, beta, per_task = utility_weights(meta)
    # their text row: the query's first row in file order among rows with a score
    first = obs.assign(_failed=obs["score"].isna()).sort_values(
        ["_failed", "source_row"], kind="stable"
    )
    first = first.drop_duplicates(["task", "source_id"])
    query_metadata = {
        (t, s): d
        for t, s, d in zip(first["task"], first["source_id"], first["dars_text"], strict=True)
    }
    return Imported(
        source=NAME,
        obs=obs.drop(columns=["_where", "dars_text"]).reset_index(drop=True),
        extra_columns=EXTRA_COLUMNS,
        splits=splits,
        drops=drops,
        files=files,
        license=_licence(meta),
        source_metadata=meta,
        lambda_cost=lam,
        beta_risk=beta,
        per_task=per_task,
        views=views,
        aggregate=aggregate_settings(meta),
        query_metadata=query_metadata,
        card_note=(
            "Imported from the DARS reference release: the scores, costs and token counts "
            "are the release's own; the test split keeps its prompt_variation and "
            "decoding_variation observations (column observation_type)."
        ),
    )


def _drop_conflicts(obs: pd.DataFrame, drops: Drops) -> pd.DataFrame:
    key = [
        "source_split",
        "task",
        "source_id",
        "model",
        "variant_id",
        "decode_id",
        "observation_type",
    ]
    dup = obs.duplicated(key, keep="first")
    for where in obs.loc[dup, "_where"]:
        drops.add("duplicate key", where)
    obs = obs[~dup]
    in_train = set(
        obs.loc[obs["source_split"] == "train", ["task", "source_id"]].itertuples(index=False)
    )
    both = (obs["source_split"] == "test") & pd.Series(
        [t in in_train for t in obs[["task", "source_id"]].itertuples(index=False)],
        index=obs.index,
    )
    for where in obs.loc[both, "_where"]:
        drops.add("query_id in both train and test", where)
    return obs[~both]


def _splits(obs: pd.DataFrame) -> pd.DataFrame:
    q = obs.drop_duplicates(["task", "source_id"])[["task", "source_id", "source_split"]]
    test = q[q["source_split"] == "test"]
    train = q[q["source_split"] == "train"]
    cut = assign_splits(
        queries=train.rename(columns={"source_id": "query_id"}),
        seed=0,
        fractions={
            "train": 1 - VALIDATION_FRACTION,
            "validation": VALIDATION_FRACTION,
            "test": 0.0,
        },
    ).rename(columns={"query_id": "source_id"})
    return pd.concat(
        [
            cut[["source_id", "task", "split"]],
            test.assign(split="test")[["source_id", "task", "split"]],
        ],
        ignore_index=True,
    )


def _licence(meta: dict[str, Any]) -> str:
    for m in meta.values():
        if isinstance(m, dict):
            for key in ("license", "licence"):
                if isinstance(m.get(key), str) and m[key].strip():
                    return m[key]
    return "unknown (see the DARS release)"


def aggregate_settings(meta: dict[str, Any]) -> dict[str, float]:
    """`prior_alpha`, `prior_beta` and `ci` of the top metadata.json where it records them
    (`dars export dars-release` does, so a round trip keeps the build's posterior)."""
    top = meta.get(".", {}) if isinstance(meta.get("."), dict) else {}
    out = {}
    for key, ok in (
        ("prior_alpha", lambda v: v > 0),
        ("prior_beta", lambda v: v > 0),
        ("ci", lambda v: 0 < v < 1),
    ):
        v = _number(top.get(key))
        if v is not None and math.isfinite(v) and ok(v):
            out[key] = v
    return out


def utility_weights(meta: dict[str, Any]) -> tuple[float, float, dict[str, dict[str, float]]]:
    """lambda and beta from metadata.json (`lambda`/`lambda_cost`, `beta`/`beta_risk`, and
    per dataset folder where a folder's metadata has them); the paper's 0.05 / 0.2 else."""

    def pick(m: dict[str, Any], names: tuple[str, ...]) -> float | None:
        for n in names:
            v = _number(m.get(n))
            if v is not None and v >= 0:
                return v
        return None

    top = meta.get(".", {}) if isinstance(meta.get("."), dict) else {}
    lam = pick(top, ("lambda_cost", "lambda"))
    beta = pick(top, ("beta_risk", "beta"))
    per_task = {}
    for name, m in meta.items():
        if name == "." or not isinstance(m, dict):
            continue
        t_lam, t_beta = pick(m, ("lambda_cost", "lambda")), pick(m, ("beta_risk", "beta"))
        if t_lam is not None or t_beta is not None:
            per_task[name] = {
                "lambda_cost": t_lam
                if t_lam is not None
                else (lam if lam is not None else DEFAULT_LAMBDA),
                "beta_risk": t_beta
                if t_beta is not None
                else (beta if beta is not None else DEFAULT_BETA),
            }
    return (
        lam if lam is not None else DEFAULT_LAMBDA,
        beta if beta is not None else DEFAULT_BETA,
        per_task,
    )
