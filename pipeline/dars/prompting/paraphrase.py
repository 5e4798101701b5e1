"""The `llm` rewriter: paraphrases by a backend model, each checked for equivalence.

It asks a backend model (any backend of `dars.backends`) for paraphrases of the problem
text, completion-style with a few examples (the CPU model is a small base model with no
chat template), and wraps each in instruction template 0. Every candidate must pass
every check of `dars.prompting.rewrite_checks` (embedding similarity, numbers, named
entities, code identifiers, answer options, length ratio, code signature and examples);
a failing one is kept with accepted=False and its reject_reason. It draws up to
`attempts * (k - 1)` candidates to get k - 1 accepted ones, so a query can end with
fewer than k accepted variants. Settings: `reformulate.llm` (`model`, `seed`,
`attempts`, `checks`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from dars.core import params as params_schema
from dars.core.params import ModelConfig
from dars.prompting.rewrite_checks import CheckConfig
from dars.prompting.rewriters import REWRITERS, variant_row
from dars.prompting.templates import wrap

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
    def from_params(cls, params: params_schema.ParamsSource) -> LLMParaphraser:
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
