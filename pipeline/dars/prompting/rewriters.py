"""The rewriter registry: a rewriter turns one query into its K variant rows, variant 0
the original (input-side uncertainty; the `reformulate` stage).

To add a rewriter: write a function
`(*, query: Mapping[str, str], k: int, instructions: str) -> list[dict]` returning K
variant rows (`variant_row`; variant 0 the original; rejected paraphrases with
accepted=False and a reject_reason) and register it with `@REWRITERS.register("<name>")`
in its own module under `dars.prompting`, which the stage imports. Built in:
`template` (`dars.prompting.template_rewriter`) and `llm` (`dars.prompting.paraphrase`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dars.core.registry import Registry

Rewriter = Callable[..., list[dict[str, Any]]]
REWRITERS: Registry[Rewriter] = Registry("reformulate method")


def variant_row(*, query_id: str, variant_id: int, prompt: str, method: str) -> dict[str, Any]:
    return {
        "query_id": query_id,
        "variant_id": variant_id,
        "prompt": prompt,
        "method": method,
        "accepted": True,
        "reject_reason": None,
    }
