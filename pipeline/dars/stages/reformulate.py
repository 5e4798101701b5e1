"""Stage `reformulate`: K meaning-preserving variants of every query (input-side
uncertainty).

Params (section `reformulate`):
- `k` (required, >= 1): variants per query; variant 0 is the original;
- `method` (default `template`): the rewriter, `template` or `llm` (see below);
- `llm` (only for `method: llm`): `model` (a model configuration with the same keys as
  under `models:`, default gemma-3-270m through llama.cpp), `seed`, `attempts`
  (candidates drawn per wanted variant) and `checks` (`dars.prompting.rewrite_checks`);
- `instructions` (default `templates`): the instruction wrapped around every variant,
  `templates` (below) or `final_answer` (DARS's chat prompts: one instruction per grader
  asking for a last line `Final Answer: <...>`, options shown as `A. ...`;
  `dars.prompting.templates.FINAL_ANSWER`).

The variant `prompt` is the FULL user message sent to the model: an instruction template
wrapped around the problem. The `template` method combines
(a) instruction templates, 6 per grader, that all ask for the same answer format
    (`Answer: <number>` / `Answer: <letter>` / `Answer: <answer>` / a ```python block);
    code templates keep the HumanEval prompt verbatim (signature, docstring, examples);
(b) for queries from the arithmetic generator, surface rewrites: the structured problem in
    `metadata` is re-rendered in another style (`dars.tasks.arithmetic.render`), which
    keeps every number and the answer.
Variant i uses template i % T and, for arithmetic, surface style i % S. The `method`
column says which: `original`, `template:2`, `template:1+surface:3`.

The `llm` method asks a backend model (any backend of `dars.backends`) for
paraphrases of the problem text, completion-style with a few examples (the CPU model is
a small base model with no chat template), and wraps each in instruction template 0.
Every candidate must pass every check of `dars.prompting.rewrite_checks` (embedding
similarity, numbers, named entities, code identifiers, answer options, length ratio,
code signature and examples); a failing one is kept with accepted=False and its
reject_reason. It draws up to `attempts * (k - 1)` candidates to get k - 1 accepted
ones, so a query can end with fewer than k accepted variants.

To add a rewriter: write a function
`(*, query: Mapping[str, str], k: int, instructions: str) -> list[dict]` returning K
variant rows (variant 0 the original; rejected paraphrases with accepted=False and a
reject_reason) and register it with `@REWRITERS.register("<name>")`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from dars.core import io
from dars.core import params as params_schema
from dars.core.errors import InputDataError, ParamsError, UnknownNameError
from dars.core.params import ModelConfig, load_params
from dars.core.registry import Registry, unknown_name_message
from dars.core.schema import GRADERS, QUERIES, VARIANTS, names
from dars.prompting.rewrite_checks import CheckConfig
from dars.prompting.templates import INSTRUCTIONS, TEMPLATES, wrap
from dars.tasks import arithmetic

# Methods that are designed but not built yet: asking for one fails with this note.
PLANNED_METHODS: dict[str, str] = {}

Rewriter = Callable[..., list[dict[str, Any]]]
REWRITERS: Registry[Rewriter] = Registry("reformulate method")


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


def instructions_setting(params: Mapping[str, Any]) -> str:
    """`reformulate.instructions` (checked by the schema; `templates` without params)."""
    if not params or "reformulate" not in params:
        return "templates"
    value = params_schema.section(params, "reformulate").instructions
    assert value in INSTRUCTIONS
    return str(value)


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


def reformulate(
    rows: list[dict[str, Any]],
    *,
    method: str,
    k: int,
    params: dict[str, Any] | None = None,
    paraphraser: LLMParaphraser | None = None,
) -> list[dict[str, Any]]:
    fn = rewriter(method)
    extra: dict[str, Any] = {"instructions": instructions_setting(params or {})}
    if method == "llm":
        extra["paraphraser"] = paraphraser or LLMParaphraser.from_params(params or {})
    try:
        return [v for query in rows for v in fn(query=query, k=k, **extra)]
    finally:
        if method == "llm" and paraphraser is None:
            extra["paraphraser"].close()


# --- LLM paraphrases with an equivalence check ------------------------------------------

# (original, paraphrase) pairs shown to the rewriting model, per grader. Names and
# numbers are not the generator's.
PARAPHRASE_EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "numeric": (
        (
            "Pia has 3 apples. Kofi gives Pia 4 more apples. How many apples does Pia have now?",
            "Pia starts with 3 apples, and Kofi hands her 4 more apples. How many apples "
            "does Pia have now?",
        ),
        (
            "Jun has 9 cards. Jun gives 2 cards to Tess. How many cards does Jun have now?",
            "Jun owns 9 cards and passes 2 cards to Tess. How many cards does Jun have left?",
        ),
    ),
    "choice": (
        (
            "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth",
            "Of these planets, which one orbits nearest to the Sun?\nA. Venus\nB. Mercury\n"
            "C. Mars\nD. Earth",
        ),
    ),
    "exact": (
        (
            "What is the chemical symbol of gold?",
            "Which chemical symbol stands for gold?",
        ),
    ),
    "code": (
        (
            "def add_one(values: list[int]) -> list[int]:\n"
            '    """Return a new list with every element increased by one.\n'
            "    >>> add_one([1, 2, 3])\n"
            "    [2, 3, 4]\n"
            '    """\n',
            "def add_one(values: list[int]) -> list[int]:\n"
            '    """Give back a new list in which each element is one larger.\n'
            "    >>> add_one([1, 2, 3])\n"
            "    [2, 3, 4]\n"
            '    """\n',
        ),
    ),
}
PARAPHRASE_HEADER = (
    "Rewrite each text in other words. Keep its meaning, every number, every name, "
    "every answer option and all code exactly.\n\n"
)
DEFAULT_REWRITER_MODEL = params_schema.DEFAULT_REWRITER_MODEL


def paraphrase_prompt(*, grader: str, problem: str) -> str:
    """Completion-style few-shot prompt; the model continues after the last `Rewrite:`."""
    shots = "".join(
        f"Original:\n{o.strip()}\nRewrite:\n{r.strip()}\n\n"
        for o, r in PARAPHRASE_EXAMPLES.get(grader, PARAPHRASE_EXAMPLES["exact"])
    )
    return f"{PARAPHRASE_HEADER}{shots}Original:\n{problem.strip()}\nRewrite:\n"


def paraphrase_seed(*, seed: int, query_id: str, attempt: int) -> int:
    key = f"rewrite|{seed}|{query_id}|{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


class LLMParaphraser:
    """Draws paraphrase candidates from a backend model and checks each one."""

    def __init__(
        self,
        *,
        config: ModelConfig,
        backend: Any,
        embed: Any,
        checks: CheckConfig,
        seed: int = 0,
        attempts: int = 2,
    ) -> None:
        self.config, self.backend, self.embed = config, backend, embed
        self.checks, self.seed, self.attempts = checks, seed, attempts
        self.last_error = ""

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> LLMParaphraser:
        from dars.backends import build_backend
        from dars.prompting.rewrite_checks import load_embedder

        llm = params_schema.section(params, "reformulate").llm
        config = llm.model_config()
        seed, attempts, checks = llm.seed, llm.attempts, llm.checks
        embed = load_embedder()
        return cls(
            config=config,
            backend=build_backend(config, params),
            embed=embed,
            checks=checks,
            seed=seed,
            attempts=attempts,
        )

    def draw(self, *, query: Mapping[str, Any], attempts: Sequence[int]) -> list[str | None]:
        """One candidate per attempt number (None when the engine failed)."""
        from dars.backends import GenRequest
        from dars.core.errors import BackendError

        grader = query["grader"]
        prompt = paraphrase_prompt(grader=grader, problem=query["prompt"])
        # multi-paragraph problems (code, a DROP passage then its question, MATH) must not
        # stop at a blank line: the rewrite would lose everything after the first paragraph
        multi = grader in ("code", "f1", "math")
        stop = ("\nOriginal:",) if multi else ("\nOriginal:", "\n\n")
        reqs = [
            GenRequest(
                query_id=query["query_id"],
                variant_id=a,
                sample_id=a,
                seed=paraphrase_seed(seed=self.seed, query_id=query["query_id"], attempt=a),
                prompt=prompt,
                stop=stop,
                max_tokens=self.config.max_tokens_for(query.get("task")),
                temperature=self.config.temperature,
                top_p=self.config.top_p,
                grader=grader,
                reference=query.get("reference", ""),
            )
            for a in attempts
        ]
        try:
            results = self.backend.generate_variant(reqs)
        except BackendError as exc:
            self.last_error = str(exc)
            return [None] * len(reqs)
        self.last_error = next((str(r.error) for r in results if r.status != "ok"), "")
        return [r.completion if r.status == "ok" else None for r in results]

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close:
            close()


@REWRITERS.register("llm")
def llm_variants(
    *,
    query: Mapping[str, Any],
    k: int,
    paraphraser: LLMParaphraser,
    instructions: str = "templates",
) -> list[dict[str, Any]]:
    """Variant 0 the original; then checked LLM paraphrases until k - 1 are accepted or
    `attempts * (k - 1)` candidates are spent. Rejected ones are kept with their reason."""
    from dars.prompting.rewrite_checks import check_rewrite

    grader, original = query["grader"], query["prompt"]
    rows = [
        variant_row(
            query_id=query["query_id"],
            variant_id=0,
            prompt=wrap(grader=grader, template=0, problem=original, instructions=instructions),
            method="original",
        )
    ]
    accepted: set[str] = set()
    budget = paraphraser.attempts * (k - 1)
    tried = 0
    while len(accepted) < k - 1 and tried < budget:
        batch = list(range(tried, min(tried + (k - 1 - len(accepted)), budget)))
        for attempt, text in zip(batch, paraphraser.draw(query=query, attempts=batch), strict=True):
            tried += 1
            cand = (text or "").strip()
            if text is None:
                reasons = [f"generation_error: {paraphraser.last_error or 'engine failure'}"]
            elif " ".join(cand.split()) in accepted:
                reasons = ["duplicate: same as an accepted rewrite"]
            else:
                reasons = check_rewrite(
                    original,
                    cand,
                    grader=grader,
                    config=paraphraser.checks,
                    embed=paraphraser.embed,
                )
            ok = not reasons and len(accepted) < k - 1
            if ok:
                accepted.add(" ".join(cand.split()))
            row = variant_row(
                query_id=query["query_id"],
                variant_id=attempt + 1,
                prompt=(
                    wrap(grader=grader, template=0, problem=cand, instructions=instructions)
                    if cand
                    else ""
                ),
                method=f"llm:{paraphraser.config.name}",
            )
            row["accepted"] = ok
            row["reject_reason"] = None if ok else "; ".join(reasons)
            rows.append(row)
    return rows


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
