"""The `template` rewriter: deterministic instruction templates plus surface rewrites.

The variant `prompt` is the FULL user message sent to the model: an instruction template
wrapped around the problem. The method combines
(a) instruction templates, 6 per grader, that all ask for the same answer format
    (`Answer: <number>` / `Answer: <letter>` / `Answer: <answer>` / a ```python block);
    code templates keep the HumanEval prompt verbatim (signature, docstring, examples);
(b) for queries from the arithmetic generator, surface rewrites: the structured problem in
    `metadata` is re-rendered in another style (`dars.tasks.arithmetic.render`), which
    keeps every number and the answer.
Variant i uses template i % T and, for arithmetic, surface style i % S. The `method`
column says which: `original`, `template:2`, `template:1+surface:3`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from dars.core.errors import InputDataError, ParamsError
from dars.prompting.rewriters import REWRITERS, variant_row
from dars.prompting.templates import TEMPLATES, wrap
from dars.tasks import arithmetic


def arithmetic_problem(query: Mapping[str, Any]) -> dict[str, Any] | None:
    """The structured problem of an arithmetic-generator query, else None."""
    if query["source"] != arithmetic.SOURCE:
        return None
    try:
        problem = json.loads(query["metadata"])
        arithmetic.validate_problem(problem)
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise InputDataError(
            f"Query {query['query_id']!r} from {arithmetic.SOURCE!r} has no "
            f"valid structured problem in its metadata: {exc}"
        ) from exc
    return problem


def max_variants(*, grader: str, has_surface: bool) -> int:
    """Distinct (template, surface) pairs reachable by variant i -> (i % T, i % S)."""
    n_templates = len(TEMPLATES[grader])
    return math.lcm(n_templates, arithmetic.N_STYLES) if has_surface else n_templates


def method_name(*, template: int, surface: int) -> str:
    if template == 0 and surface == 0:
        return "original"
    if surface == 0:
        return f"template:{template}"
    return f"template:{template}+surface:{surface}"


@REWRITERS.register("template")
def template_variants(
    *, query: Mapping[str, Any], k: int, instructions: str = "templates"
) -> list[dict[str, Any]]:
    """K distinct template (+ surface) variants of one query; variant 0 the original."""
    grader = query["grader"]
    problem = arithmetic_problem(query)
    available = max_variants(grader=grader, has_surface=problem is not None)
    if instructions == "final_answer":  # one instruction: only surface rewrites differ
        available = arithmetic.N_STYLES if problem is not None else 1
    if k > available:
        raise ParamsError(
            f"Parameter 'reformulate.k' = {k} is more than the {available} distinct "
            f"rewrites the 'template' method has for query {query['query_id']!r} "
            f"(task {query['task']!r}, grader {grader!r}); use k <= {available}"
        )
    n_templates = len(TEMPLATES[grader])
    rows = []
    for i in range(k):
        template = 0 if instructions == "final_answer" else i % n_templates
        surface = i % arithmetic.N_STYLES if problem is not None else 0
        text = (
            arithmetic.render(problem, surface)
            if problem is not None and surface
            else query["prompt"]
        )
        rows.append(
            variant_row(
                query_id=query["query_id"],
                variant_id=i,
                prompt=wrap(
                    grader=grader, template=template, problem=text, instructions=instructions
                ),
                method=method_name(template=template, surface=surface),
            )
        )
    prompts = [r["prompt"] for r in rows]
    if len(set(prompts)) != len(prompts):  # cannot happen with distinct templates; guard
        raise ParamsError(
            f"Parameter 'reformulate.k' = {k}: the 'template' method gives only "
            f"{len(set(prompts))} distinct rewrites for query "
            f"{query['query_id']!r}; use a smaller k"
        )
    return rows
