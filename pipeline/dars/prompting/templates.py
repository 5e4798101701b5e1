"""Instruction templates: the user message around a problem, several per grader.

The reformulate stage's `template` method builds variants from them, and the few-shot
examples (`dars.prompting.few_shot`) use template 0, so they show the expected answer
format.
"""

from __future__ import annotations

import re

from dars.core.params import INSTRUCTIONS  # noqa: F401  (re-exported: the instruction styles)
from dars.core.schema import GRADERS

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
    # the function inside the open block (dars.prompting.format opens it; HumanEval protocol).
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
    # MATH-500 (math-verify grades the last \boxed{} or the 'Final Answer:' line).
    "math": (
        "Solve the following math problem. End your reply with 'Final Answer: <answer>'."
        "\n\n{problem}",
        "{problem}\n\nWork it out step by step, then give the final answer on its own line "
        "as 'Final Answer: <answer>'.",
        "Here is a math problem.\n\n{problem}\n\nFinish your response with the line "
        "'Final Answer: <answer>'.",
        "Please solve the problem below. Show your reasoning and end with "
        "'Final Answer: <answer>'.\n\n{problem}",
        "Problem:\n{problem}\n\nWhat is the answer? Write it as 'Final Answer: <answer>'.",
        "Read the problem carefully and solve it.\n\n{problem}\n\nConclude with "
        "'Final Answer: <answer>'.",
    ),
    # DROP (token F1 on the 'Answer:' line; several spans separated by '|').
    "f1": (
        "Read the passage and answer the question. End your reply with 'Answer: <answer>'."
        "\n\n{problem}",
        "{problem}\n\nAnswer briefly, on a final line 'Answer: <answer>' (separate several "
        "answers with '|').",
        "Here is a passage with a question.\n\n{problem}\n\nFinish your response with the "
        "line 'Answer: <answer>'.",
        "Please answer the question about the passage below. Be brief and end with "
        "'Answer: <answer>'.\n\n{problem}",
        "{problem}\n\nWhat is the answer? Write your final answer as 'Answer: <answer>'.",
        "Read the passage carefully and answer the question.\n\n{problem}\n\nConclude with "
        "'Answer: <answer>'.",
    ),
}
assert set(TEMPLATES) == set(GRADERS)


def fence(code: str) -> str:
    """The prompt verbatim inside a ```python block (a newline added only if missing)."""
    return f"```python\n{code}{'' if code.endswith(chr(10)) else chr(10)}```"


# `reformulate.instructions: final_answer` (the DARS preset, params/dars.yaml): one chat-style
# instruction per grader asking for a last line `Final Answer: <...>`, after the problem
# (for DROP: the passage, then the question, then the instruction). Options written
# `(A) text` at the start of a line are shown as `A. text`. Graders without an entry use
# "*"; code keeps its first template (the fenced function).
FINAL_ANSWER: dict[str, str] = {
    "choice": "{problem}\n\nAnswer the multiple-choice question above. Think step by step, "
    "then end your response with a final line of the form 'Final Answer: <letter>', where "
    "<letter> is the letter of the correct option.",
    "f1": "{problem}\n\nAnswer the question using the passage above. Think step by step, "
    "then end your response with a final line of the form 'Final Answer: <answer>' "
    "(separate several answers with '|').",
    "*": "{problem}\n\nSolve the problem above. Think step by step, then end your response "
    "with a final line of the form 'Final Answer: <answer>'.",
}
_PAREN_OPTION = re.compile(r"^\(([A-Z])\)[ \t]*", re.MULTILINE)


def wrap(*, grader: str, template: int, problem: str, instructions: str = "templates") -> str:
    """The full user message: instruction template `template` of `grader` around `problem`
    (`instructions: final_answer`: the one chat instruction of FINAL_ANSWER)."""
    if instructions == "final_answer" and grader != "code":
        text = _PAREN_OPTION.sub(r"\1. ", problem)
        return FINAL_ANSWER.get(grader, FINAL_ANSWER["*"]).format(problem=text)
    return TEMPLATES[grader][template].format(problem=problem, code=fence(problem))
