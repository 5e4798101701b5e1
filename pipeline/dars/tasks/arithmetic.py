"""Seeded arithmetic word problems (our own generator, kind `arithmetic`).

Each problem is a structured object (a person, an item, a starting quantity and a list of
operations) that is stored in the query's `metadata`. `render(problem, style)` turns it
into text; every style keeps every number and the answer, and only changes the sentence
templates, the order (question first or last) and the names, so `reformulate` can ask the
SAME problem in several surface forms.

Difficulty 1: one operation, small numbers. 2: two operations. 3: three operations with
larger numbers. Answers are positive integers: no subtraction below 1, no division with a
remainder. Generation uses one `random.Random` per problem, seeded from
(seed, difficulty, index), so a problem does not depend on `n` or on global random state.

Settings (under `prepare.tasks.<task>`): `n` (required), `seed` (default 0),
`difficulty` (0: one small addition or subtraction; 1, 2 or 3 operations; default 1).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dars.core.errors import ParamsError
from dars.tasks.base import TASK_LOADERS, Candidate, check_keys, int_param

SOURCE = "dars/arithmetic"
LICENSE = "Apache-2.0"
GRADER = "numeric"
GENERATOR = "dars/arithmetic"
VERSION = 1

NAMES = (
    "Maya",
    "Liam",
    "Ava",
    "Noah",
    "Zoe",
    "Ethan",
    "Lena",
    "Omar",
    "Ivy",
    "Ravi",
    "Nora",
    "Felix",
    "Aisha",
    "Hugo",
    "Mei",
    "Diego",
)
ITEMS = (
    "apples",
    "marbles",
    "stickers",
    "books",
    "pencils",
    "cookies",
    "stamps",
    "shells",
    "cards",
    "coins",
)
OPS = ("add", "sub", "mul", "div")


@dataclass(frozen=True)
class Level:
    n_ops: int
    start_lo: int
    start_hi: int
    addsub_hi: int  # largest quantity added or taken away
    muldiv_hi: int  # largest factor or divisor
    cap: int  # no intermediate quantity above this
    ops: tuple[str, ...] = OPS  # operations this level may use


LEVELS = {
    0: Level(n_ops=1, start_lo=2, start_hi=9, addsub_hi=5, muldiv_hi=2, cap=20, ops=("add", "sub")),
    1: Level(n_ops=1, start_lo=2, start_hi=20, addsub_hi=10, muldiv_hi=5, cap=100),
    2: Level(n_ops=2, start_lo=2, start_hi=30, addsub_hi=20, muldiv_hi=5, cap=300),
    3: Level(n_ops=3, start_lo=20, start_hi=200, addsub_hi=150, muldiv_hi=9, cap=5000),
}

# --- surface forms -------------------------------------------------------------------
# Four sentence-template families. Placeholders: {name}, {other}, {item}, {n}.
_START = (
    "{name} has {n} {item}.",
    "At first, {name} owns {n} {item}.",
    "{name} starts the day with {n} {item}.",
    "In the beginning there are {n} {item} in {name}'s collection.",
)
_STEP = {
    "add": (
        "{other} gives {name} {n} more {item}.",
        "Then {name} receives {n} more {item} from {other}.",
        "{name} gets another {n} {item} from {other}.",
        "Later, {other} hands {name} {n} extra {item}.",
    ),
    "sub": (
        "{name} gives {n} {item} to {other}.",
        "Then {name} hands {n} {item} over to {other}.",
        "{other} receives {n} {item} from {name}.",
        "Later, {name} passes {n} {item} on to {other}.",
    ),
    "mul": (
        "{name} then ends up with {n} times as many {item} as before.",
        "After that, the number of {item} {name} has grows to {n} times what it was.",
        "{name}'s pile of {item} becomes {n} times as large.",
        "Next, {name} multiplies the number of {item} by {n}.",
    ),
    "div": (
        "{name} splits the {item} into {n} equal groups and keeps only one group.",
        "Then {name} divides the {item} evenly into {n} piles and keeps just one pile.",
        "{name} keeps one of {n} equal parts of the {item} and gives the rest away.",
        "Next, {name} shares the {item} out into {n} equal shares and keeps a single share.",
    ),
}
_QUESTION_LAST = (
    "How many {item} does {name} have now?",
    "How many {item} does {name} end up with?",
    "What is the number of {item} {name} has at the end?",
    "Now, how many {item} does {name} have?",
)
_QUESTION_FIRST = (
    "How many {item} will {name} have after the following?",
    "Find the number of {item} {name} has at the end of this story.",
    "Work out how many {item} {name} ends up with.",
    "Determine how many {item} {name} has once everything below has happened.",
)
# style -> (template family, question first?, name shift). Style 0 is the original.
# Every style differs from every other in (family, question first), so all are distinct.
STYLES = (
    (0, False, 0),
    (1, False, 1),
    (2, False, 2),
    (3, False, 3),
    (0, True, 4),
    (1, True, 5),
    (2, True, 6),
    (3, True, 7),
)
N_STYLES = len(STYLES)
_NAME_STRIDE = 3  # style s renames NAMES[i] -> NAMES[(i + 3 * shift) % 16], a bijection


def solve(problem: Mapping[str, Any]) -> int:
    """The answer, recomputed from the structured problem."""
    value = int(problem["start"])
    for step in problem["steps"]:
        value = apply_op(value=value, op=step["op"], qty=int(step["qty"]))
    return value


def apply_op(*, value: int, op: str, qty: int) -> int:
    if op == "add":
        return value + qty
    if op == "sub":
        return value - qty
    if op == "mul":
        return value * qty
    if op == "div":
        if value % qty:
            raise ValueError(f"{value} is not divisible by {qty}")
        return value // qty
    raise ValueError(f"unknown operation {op!r}; valid: {', '.join(OPS)}")


def _feasible_ops(*, value: int, level: Level) -> list[tuple[str, int, int]]:
    """(op, lowest qty, highest qty) for every operation that keeps the answer a positive
    integer within the level's cap."""
    ops = []
    if value + 2 <= level.cap:
        ops.append(("add", 2, min(level.addsub_hi, level.cap - value)))
    if value >= 3:
        ops.append(("sub", 2, min(level.addsub_hi, value - 1)))
    if value * 2 <= level.cap:
        ops.append(("mul", 2, min(level.muldiv_hi, level.cap // value)))
    if any(value % q == 0 for q in range(2, min(level.muldiv_hi, value) + 1)):
        ops.append(("div", 2, min(level.muldiv_hi, value)))
    return [o for o in ops if o[0] in level.ops]


def generate_problem(*, seed: int, difficulty: int, index: int) -> dict[str, Any]:
    """One structured problem; a pure function of (seed, difficulty, index)."""
    if difficulty not in LEVELS:
        raise ValueError(f"difficulty {difficulty!r} is not one of {sorted(LEVELS)}")
    level = LEVELS[difficulty]
    rng = random.Random(f"{GENERATOR}:v{VERSION}:{seed}:{difficulty}:{index}")
    name, *others = rng.sample(NAMES, 1 + level.n_ops)
    item = rng.choice(ITEMS)
    start = rng.randint(level.start_lo, level.start_hi)
    value = start
    steps: list[dict[str, Any]] = []
    for other in others:
        op, lo, hi = rng.choice(_feasible_ops(value=value, level=level))
        if op == "div":
            qty = rng.choice([q for q in range(lo, hi + 1) if value % q == 0])
        else:
            qty = rng.randint(lo, hi)
        step: dict[str, Any] = {"op": op, "qty": qty}
        if op in ("add", "sub"):
            step["other"] = other
        steps.append(step)
        value = apply_op(value=value, op=op, qty=qty)
    return {
        "generator": GENERATOR,
        "version": VERSION,
        "seed": seed,
        "difficulty": difficulty,
        "index": index,
        "name": name,
        "item": item,
        "start": start,
        "steps": steps,
        "answer": value,
    }


def validate_problem(problem: Any) -> None:
    """Raise ValueError naming what is wrong with a structured problem (from metadata)."""
    if not isinstance(problem, Mapping):
        raise ValueError(f"a problem must be a mapping, got {type(problem).__name__}")
    for key, kind in (
        ("name", str),
        ("item", str),
        ("start", int),
        ("steps", list),
        ("answer", int),
    ):
        if not isinstance(problem.get(key), kind):
            raise ValueError(
                f"problem field {key!r} must be {kind.__name__}, got {problem.get(key)!r}"
            )
    for i, step in enumerate(problem["steps"]):
        if not isinstance(step, Mapping) or step.get("op") not in OPS:
            raise ValueError(f"problem step {i} = {step!r} has no valid 'op' ({', '.join(OPS)})")
        if not isinstance(step.get("qty"), int):
            raise ValueError(f"problem step {i} = {step!r} has no integer 'qty'")
        if step["op"] in ("add", "sub") and not isinstance(step.get("other"), str):
            raise ValueError(f"problem step {i} = {step!r} has no 'other' person")
    if solve(problem) != problem["answer"]:
        raise ValueError(f"problem answer {problem['answer']} != recomputed {solve(problem)}")


def _rename(name: str, shift: int) -> str:
    if shift == 0 or name not in NAMES:
        return name
    return NAMES[(NAMES.index(name) + _NAME_STRIDE * shift) % len(NAMES)]


def render(problem: Mapping[str, Any], style: int = 0) -> str:
    """The problem as text in surface form `style` (0 = original, up to N_STYLES - 1).

    Every style states the same numbers in the same order of events and asks for the same
    answer; only wording, question position and names differ."""
    if isinstance(style, bool) or not isinstance(style, int) or not 0 <= style < N_STYLES:
        raise ValueError(f"style {style!r} is out of range; valid: 0..{N_STYLES - 1}")
    family, question_first, shift = STYLES[style]
    name = _rename(problem["name"], shift)
    item = problem["item"]
    story = [_START[family].format(name=name, n=problem["start"], item=item)]
    for step in problem["steps"]:
        other = _rename(step.get("other", ""), shift)
        story.append(
            _STEP[step["op"]][family].format(name=name, other=other, n=step["qty"], item=item)
        )
    if question_first:
        return " ".join([_QUESTION_FIRST[family].format(name=name, item=item), *story])
    return " ".join([*story, _QUESTION_LAST[family].format(name=name, item=item)])


def source_id(*, seed: int, difficulty: int, index: int) -> str:
    return f"d{difficulty}-s{seed}-{index}"


@TASK_LOADERS.register("arithmetic")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    check_keys(config, allowed=("kind", "n", "seed", "difficulty"), key=key)
    n = int_param(config, "n", key=key, lo=1)
    seed = int_param(config, "seed", key=key, default=0, lo=0)
    difficulty = int_param(config, "difficulty", key=key, default=1)
    if difficulty not in LEVELS:
        raise ParamsError(
            f"Parameter '{key}.difficulty' = {difficulty!r} is not valid; "
            f"allowed: {', '.join(map(str, sorted(LEVELS)))}"
        )
    assert n is not None and seed is not None
    return _candidates(n=n, seed=seed, difficulty=difficulty)


def _candidates(*, n: int, seed: int, difficulty: int) -> Iterator[Candidate]:
    for index in range(n):
        problem = generate_problem(seed=seed, difficulty=difficulty, index=index)
        yield Candidate(
            row_index=index,
            source_id=source_id(seed=seed, difficulty=difficulty, index=index),
            prompt=render(problem, 0),
            reference=str(problem["answer"]),
            grader=GRADER,
            source=SOURCE,
            license=LICENSE,
            metadata=problem,
        )
