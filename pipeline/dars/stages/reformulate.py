"""Stage `reformulate`: K meaning-preserving variants of every query (input-side
uncertainty).

Params (section `reformulate`):
- `k` (required, >= 1): variants per query; variant 0 is the original;
- `method` (default `template`): the rewriter, `template`
  (`dars.prompting.template_rewriter`) or `llm` (`dars.prompting.paraphrase`); the
  registry and how to add one: `dars.prompting.rewriters`;
- `llm` (only for `method: llm`): `model` (a model configuration with the same keys as
  under `models:`, default gemma-3-270m through llama.cpp), `seed`, `attempts`
  (candidates drawn per wanted variant) and `checks` (`dars.prompting.rewrite_checks`);
- `instructions` (default `templates`): the instruction wrapped around every variant,
  `templates` or `final_answer` (DARS's chat prompts: one instruction per grader
  asking for a last line `Final Answer: <...>`, options shown as `A. ...`;
  `dars.prompting.templates.FINAL_ANSWER`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from dars.core import io
from dars.core import params as params_schema
from dars.core.errors import InputDataError, ParamsError, UnknownNameError
from dars.core.params import ParamsSource, as_params, load_params
from dars.core.registry import unknown_name_message
from dars.core.schema import GRADERS, QUERIES, VARIANTS, names
from dars.prompting import template_rewriter  # noqa: F401  (registers `template`)
from dars.prompting.paraphrase import LLMParaphraser
from dars.prompting.rewriters import REWRITERS, Rewriter


def instructions_setting(params: ParamsSource | None) -> str:
    """`reformulate.instructions` (checked by the schema; `templates` without params)."""
    if params is None or not as_params(params).has("reformulate"):
        return "templates"
    return str(params_schema.section(params, "reformulate").instructions)


def rewriter(method: Any) -> Rewriter:
    try:
        return REWRITERS.get(method)
    except UnknownNameError as exc:
        raise ParamsError(f"Parameter 'reformulate.method': {exc}") from exc


def check_queries(rows: list[dict[str, Any]], *, path: str) -> None:
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row["grader"] not in GRADERS:
            raise InputDataError(
                f"queries file {path!r} row {i} (query {row['query_id']!r}) "
                + unknown_name_message("grader", row["grader"], sorted(GRADERS))
            )
        if row["query_id"] in seen:
            raise InputDataError(
                f"queries file {path!r} has query_id {row['query_id']!r} more than once"
            )
        seen.add(row["query_id"])


def reformulate(
    rows: list[dict[str, Any]],
    *,
    method: str,
    k: int,
    params: ParamsSource | None = None,
    paraphraser: LLMParaphraser | None = None,
) -> list[dict[str, Any]]:
    fn = rewriter(method)
    extra: dict[str, Any] = {"instructions": instructions_setting(params)}
    if method == "llm":
        extra["paraphraser"] = paraphraser or LLMParaphraser.from_params(params or {})
    try:
        return [v for query in rows for v in fn(query=query, k=k, **extra)]
    finally:
        if method == "llm" and paraphraser is None:
            extra["paraphraser"].close()


def run(*, params_path: str | Path, queries: str | Path, out: str | Path) -> dict[str, Any]:
    params = load_params(params_path)
    settings = params_schema.section(params, "reformulate")
    k, method = settings.k, settings.method
    rewriter(method)  # fail on a bad method before reading any data
    instructions_setting(params)
    df = io.read_frame(queries, required=names(QUERIES), what="queries")
    rows = df[names(QUERIES)].to_dict("records")
    check_queries(rows, path=str(queries))
    variants = reformulate(rows, method=method, k=k, params=params)
    io.write_table(pa.Table.from_pylist(variants, schema=VARIANTS), out)
    rejected = Counter(v["reject_reason"].split(":", 1)[0] for v in variants if not v["accepted"])
    stats = {"queries": len(rows), "variants": len(variants), "k": k, "method": method}
    stats |= {"accepted": sum(v["accepted"] for v in variants), "rejected": dict(rejected)}
    if method != "template":
        print(f"reformulate: {stats}")
    return stats
