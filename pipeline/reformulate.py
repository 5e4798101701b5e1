"""Stage `reformulate`: K meaning-preserving variants of every query (input-side
uncertainty).

Params (section `reformulate`):
- `k` (required, >= 1): variants per query; variant 0 is the original;
- `method` (default `template`): the rewriter. Only `template` exists; `llm` is planned.

The variant `prompt` is the FULL user message sent to the model: an instruction template
wrapped around the problem. The `template` method combines
(a) instruction templates, 6 per grader, that all ask for the same answer format
    (`Answer: <number>` / `Answer: <letter>` / `Answer: <answer>` / a ```python block);
    code templates keep the HumanEval prompt verbatim (signature, docstring, examples);
(b) for queries from the arithmetic generator, surface rewrites: the structured problem in
    `metadata` is re-rendered in another style (`pipeline.tasks.arithmetic.render`), which
    keeps every number and the answer.
Variant i uses template i % T and, for arithmetic, surface style i % S. The `method`
column says which: `original`, `template:2`, `template:1+surface:3`.

To add a rewriter (for example the LLM paraphraser): write a function
`(*, query: Mapping[str, str], k: int) -> list[dict]` returning K variant rows (variant 0
the original; rejected paraphrases with accepted=False and a reject_reason) and register
it with `@REWRITERS.register("<name>")`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import io
from pipeline.errors import InputDataError, ParamsError, UnknownNameError
from pipeline.params import get, load_params, reformulate_k
from pipeline.registry import Registry, unknown_name_message
from pipeline.schema import GRADERS, QUERIES, VARIANTS, names
from pipeline.tasks import arithmetic

# --- instruction templates -------------------------------------------------------------
# Placeholders: {problem} (the problem text); for `code`, {code} (the prompt in a fence).
TEMPLATES: dict[str, tuple[str, ...]] = {
    # Short framings: the CPU default model is a small *base* model, and long chatty
    # instructions measurably hurt it (0.19 vs 0.48 accuracy on difficulty-0 problems with
    # the same few-shot examples). All ask the same question; the answer format is shown
    # by the grader-independent `Answer:` cue of the few-shot examples.
    "numeric": (
        "Question: {problem}",
        "Problem: {problem}",
        "Q: {problem}",
        "Word problem: {problem}",
        "Question: {problem}\nGive the final answer as 'Answer: <number>'.",
        "Solve this problem. {problem}",
    ),
    # Every code template ENDS with the fenced prompt, so a completion engine continues
    # the function inside the open block (pipeline.prompting opens it; HumanEval protocol).
    "code": (
        "Complete the following Python function. Reply with the full function in a "
        "```python code block.\n\n{code}",
        "Finish the implementation of this Python function. Return the complete function "
        "inside a ```python code block.\n\n{code}",
        "Write the Python function below so that it does what its docstring says. Reply "
        "with the whole function in a ```python code block.\n\n{code}",
        "Implement the Python function below. Keep the signature and docstring unchanged, "
        "and reply with the full function in a ```python code block.\n\n{code}",
        "Here is the start of a Python function. Complete it and give the full function in "
        "a ```python code block.\n\n{code}",
        "You are given a Python function stub with its docstring. Provide a complete, "
        "working implementation of the full function in a ```python code block.\n\n{code}",
    ),
    "choice": (
        "Answer the following multiple-choice question. End your reply with "
        "'Answer: <letter>'.\n\n{problem}",
        "{problem}\n\nThink about each option, then give the letter of the correct one on "
        "its own line as 'Answer: <letter>'.",
        "Here is a multiple-choice question.\n\n{problem}\n\nFinish your response with the "
        "line 'Answer: <letter>'.",
        "Please choose the correct option below. Explain briefly and end with "
        "'Answer: <letter>'.\n\n{problem}",
        "Question:\n{problem}\n\nWhich option is correct? Write your final answer as "
        "'Answer: <letter>'.",
        "Read the question and the options carefully.\n\n{problem}\n\nConclude with "
        "'Answer: <letter>'.",
    ),
    "exact": (
        "Answer the following question. End your reply with 'Answer: <answer>'.\n\n{problem}",
        "{problem}\n\nThink it through, then give the final answer on its own line as "
        "'Answer: <answer>'.",
        "Here is a question.\n\n{problem}\n\nFinish your response with the line "
        "'Answer: <answer>'.",
        "Please answer the question below. Be brief and end with 'Answer: <answer>'.\n\n{problem}",
        "Question:\n{problem}\n\nWhat is the answer? Write your final answer as "
        "'Answer: <answer>'.",
        "Read the question carefully and answer it.\n\n{problem}\n\nConclude with "
        "'Answer: <answer>'.",
    ),
}
assert set(TEMPLATES) == set(GRADERS)

# Methods that are designed but not built yet: asking for one fails with this note.
PLANNED_METHODS = {
    "llm": "an LLM paraphraser with a meaning-equivalence check; rejected paraphrases will "
    "be kept with accepted=False and a reject_reason",
}

Rewriter = Callable[..., list[dict[str, Any]]]
REWRITERS: Registry[Rewriter] = Registry("reformulate method")


def fence(code: str) -> str:
    """The prompt verbatim inside a ```python block (a newline added only if missing)."""
    return f"```python\n{code}{'' if code.endswith(chr(10)) else chr(10)}```"


def wrap(*, grader: str, template: int, problem: str) -> str:
    """The full user message: instruction template `template` of `grader` around `problem`."""
    return TEMPLATES[grader][template].format(problem=problem, code=fence(problem))


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


def variant_row(*, query_id: str, variant_id: int, prompt: str, method: str) -> dict[str, Any]:
    return {
        "query_id": query_id,
        "variant_id": variant_id,
        "prompt": prompt,
        "method": method,
        "accepted": True,
        "reject_reason": None,
    }


@REWRITERS.register("template")
def template_variants(*, query: Mapping[str, Any], k: int) -> list[dict[str, Any]]:
    """K distinct template (+ surface) variants of one query; variant 0 the original."""
    grader = query["grader"]
    problem = arithmetic_problem(query)
    available = max_variants(grader=grader, has_surface=problem is not None)
    if k > available:
        raise ParamsError(
            f"Parameter 'reformulate.k' = {k} is more than the {available} distinct "
            f"rewrites the 'template' method has for query {query['query_id']!r} "
            f"(task {query['task']!r}, grader {grader!r}); use k <= {available}"
        )
    n_templates = len(TEMPLATES[grader])
    rows = []
    for i in range(k):
        template = i % n_templates
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
                prompt=wrap(grader=grader, template=template, problem=text),
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


def rewriter(method: Any) -> Rewriter:
    if method in PLANNED_METHODS:
        raise ParamsError(
            f"Parameter 'reformulate.method' = {method!r} is not implemented yet "
            f"({PLANNED_METHODS[method]}). Valid methods: {', '.join(REWRITERS.names())}."
        )
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


def reformulate(rows: list[dict[str, Any]], *, method: str, k: int) -> list[dict[str, Any]]:
    fn = rewriter(method)
    return [v for query in rows for v in fn(query=query, k=k)]


def run(*, params_path: str | Path, queries: str | Path, out: str | Path) -> dict[str, Any]:
    params = load_params(params_path)
    k = reformulate_k(params)
    method = get(params, "reformulate.method", "template")
    rewriter(method)  # fail on a bad method before reading any data
    df = io.read_frame(queries, required=names(QUERIES), what="queries")
    rows = df[names(QUERIES)].to_dict("records")
    check_queries(rows, path=str(queries))
    variants = reformulate(rows, method=method, k=k)
    io.write_table(pa.Table.from_pylist(variants, schema=VARIANTS), out)
    return {"queries": len(rows), "variants": len(variants), "k": k, "method": method}


# --- few-shot examples (used by the sample stage for `prompting: few_shot`) -------------

_FEW_SHOT_PROBLEMS = {
    # Short worked examples: gemma-3-270m (a base model) copies the "a op b = c" then
    # "Answer: c" pattern; longer prose examples made it ramble (measured: 0.125 vs 0.475
    # accuracy on difficulty-0 problems). Names are not the generator's names.
    "numeric": (
        (
            "Pia has 3 apples. Kofi gives Pia 4 more apples. How many apples does Pia have now?",
            "3 + 4 = 7.\nAnswer: 7",
        ),
        (
            "Jun has 9 cards. Jun gives 2 cards to Tess. How many cards does Jun have now?",
            "9 - 2 = 7.\nAnswer: 7",
        ),
        (
            "Tess has 5 shells. Kofi gives Tess 5 more shells. How many shells does Tess have now?",
            "5 + 5 = 10.\nAnswer: 10",
        ),
    ),
    # The assistant turn of a code example is the text that follows the prompt inside the
    # ```python block (the function body), as pipeline.prompting renders few-shot code.
    "code": (
        (
            "def add_one(values: list[int]) -> list[int]:\n"
            '    """Return a new list with every element increased by one.\n'
            "    >>> add_one([1, 2, 3])\n"
            "    [2, 3, 4]\n"
            '    """\n',
            "    return [v + 1 for v in values]\n",
        ),
    ),
    "choice": (
        (
            "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth",
            "Mercury orbits closest to the Sun.\nAnswer: B",
        ),
    ),
    "exact": (
        (
            "What is the chemical symbol of gold?",
            "Gold's symbol comes from the Latin 'aurum'.\nAnswer: Au",
        ),
    ),
}


def few_shot_examples(grader: str) -> list[tuple[str, str]]:
    """Hand-written (user, assistant) pairs for few-shot prompting, per grader. The user
    turn uses instruction template 0, so the examples show the expected answer format."""
    if grader not in _FEW_SHOT_PROBLEMS:
        raise UnknownNameError(unknown_name_message("grader", grader, sorted(_FEW_SHOT_PROBLEMS)))
    return [
        (wrap(grader=grader, template=0, problem=problem), answer)
        for problem, answer in _FEW_SHOT_PROBLEMS[grader]
    ]
