"""Render a variant's user message into the text a completion engine sees.

gemma-3-270m as shipped is a *base* model (its GGUF has no chat template), so prompts
are completion-style: zero-shot is the message followed by a response cue, few-shot
prepends worked examples in the same format. Code prompts end inside the open code
block so the model continues the function body, as in the HumanEval protocol.

`chat` (for chat endpoints, e.g. the openai backend with `endpoint: chat`): the variant's
message is sent as it is, as the user turn (the instruction is already in it, e.g. the
`Final Answer:` line of `reformulate.instructions: final_answer`); no cue, no examples,
and no grader stop sequences (a reasoning model's answer has blank lines).
"""

from __future__ import annotations

RESPONSE_CUE = "Solution:"

# Stop sequences by grader (HumanEval's standard stops for code).
STOPS: dict[str, tuple[str, ...]] = {
    "numeric": ("\n\n", "\nQuestion:", "\nProblem:", "\nQ:"),
    "choice": ("\n\n", "\nQuestion:"),
    "exact": ("\n\n", "\nQuestion:"),
    "code": ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n```", "\n#"),
    # MATH and DROP answers follow multi-paragraph reasoning: no blank-line stop.
    "math": ("\nProblem:", "\nQuestion:"),
    "f1": ("\nPassage:", "\nQuestion:"),
}


def _open_code_block(text: str) -> str:
    body = text.rstrip()
    if body.endswith("```"):
        body = body[:-3].rstrip("\n")
    return body + "\n"


def render(
    *, message: str, grader: str, prompting: str, examples: list[tuple[str, str]] | None = None
) -> str:
    examples = examples or []
    if prompting == "chat":
        return message
    if prompting == "zero_shot":
        examples = []
    if grader == "code":
        shots = "".join(f"{_open_code_block(u)}{a.rstrip()}\n```\n\n" for u, a in examples)
        return shots + _open_code_block(message)
    shots = "".join(f"{u.rstrip()}\n{RESPONSE_CUE} {a.strip()}\n\n" for u, a in examples)
    return f"{shots}{message.rstrip()}\n{RESPONSE_CUE}"


def stops_for(
    grader: str, extra: tuple[str, ...] = (), *, prompting: str = "zero_shot"
) -> tuple[str, ...]:
    if prompting == "chat":
        return tuple(extra)
    return STOPS.get(grader, STOPS["exact"]) + tuple(extra)
