"""Few-shot examples per grader, used by the sample stage for `prompting: few_shot`."""

from __future__ import annotations

from dars.core.errors import UnknownNameError
from dars.core.registry import unknown_name_message
from dars.prompting.templates import wrap

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
    # ```python block (the function body), as dars.prompting.format renders few-shot code.
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
    "math": (
        (
            "What is $\\frac{1}{2} + \\frac{1}{4}$?",
            "$\\frac{1}{2} = \\frac{2}{4}$, so the sum is $\\frac{2}{4} + \\frac{1}{4} = "
            "\\frac{3}{4}$.\nFinal Answer: $\\frac{3}{4}$",
        ),
    ),
    "f1": (
        (
            "The Bears opened with a 32-yard field goal by Robbie Gould. Chicago then scored "
            "on a 12-yard run by Matt Forte.\n\nQuestion: Who scored for Chicago?",
            "Gould kicked the field goal and Forte ran for the score.\n"
            "Answer: Robbie Gould | Matt Forte",
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
