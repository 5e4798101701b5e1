"""GPQA (kind `gpqa`): `Idavidrein/gpqa`, config `gpqa_diamond`, as four-option questions.

Settings (under `prepare.tasks.<task>`): `path` (default `Idavidrein/gpqa`), `name`
(default `gpqa_diamond`), `split` (default `train`, the only one), `n` (a seeded sample of
n questions; null = all), `seed` (default 0), `data_files` (local parquet or JSON in the
Hub schema, read instead of the Hub), `revision`, `cache_dir`, `option_style` (`paren`:
`(A) ...`, the default; `dot`: `A. ...`, as DARS's chat prompts list them). The Hub
dataset is gated: accept its terms and log in (`huggingface-cli login`) first.

Each row's four answers (`Correct Answer`, `Incorrect Answer 1..3`, whitespace trimmed)
are shuffled with a `random.Random` seeded from (seed, `Record ID`): the order depends on
nothing else (not on n or on the other rows), and over many questions the correct letter
falls on A-D about equally. The prompt is the question followed by the options as
`(A) ...` lines; the reference is the correct letter; the grader is `choice`.

Quarantined here: a missing or empty question or answer (`missing_field`), two answers
with the same text (`duplicate_options`: the question could not be graded by letter).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

from dars.core.errors import ParamsError
from dars.tasks import files
from dars.tasks.base import TASK_LOADERS, Candidate, Rejection, str_param

SOURCE = "Idavidrein/gpqa"
LICENSE = "CC-BY-4.0"
GRADER = "choice"
LETTERS = "ABCD"
ANSWER_COLUMNS = (
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
)
SHUFFLE_VERSION = 1  # bump if the shuffle ever changes: it changes every reference


def shuffle(answers: list[str], *, seed: int, record_id: str) -> tuple[list[str], str]:
    """(options in shown order, letter of the correct one); answers[0] is the correct one."""
    order = list(range(len(answers)))
    random.Random(f"gpqa:v{SHUFFLE_VERSION}:{seed}:{record_id}").shuffle(order)
    return [answers[i] for i in order], LETTERS[order.index(0)]


OPTION_STYLES = {"paren": "({letter}) {text}", "dot": "{letter}. {text}"}


def render(question: str, options: list[str], style: str = "paren") -> str:
    lines = [
        OPTION_STYLES[style].format(letter=letter, text=text)
        for letter, text in zip(LETTERS, options, strict=True)
    ]
    return question.strip() + "\n\n" + "\n".join(lines)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def to_candidate(
    *, record: Any, row_index: int, seed: int, dataset: str, style: str = "paren"
) -> Candidate:
    bad = files.unreadable(
        record, row_index=row_index, grader=GRADER, source=SOURCE, license=LICENSE
    )
    if bad is not None:
        return bad
    record_id = record.get("Record ID")
    question = record.get("Question")
    reject = None
    if _text(record_id) is None:
        reject = Rejection(reason="missing_field", field="Record ID")
    elif not isinstance(question, str):  # a non-string is judged by prepare (wrong_type)
        reject = Rejection(reason="missing_field", field="Question") if question is None else None
    answers = [_text(record.get(c)) for c in ANSWER_COLUMNS]
    prompt: Any = question
    reference: Any = None
    options: list[str] = []
    if reject is None:
        missing = [c for c, a in zip(ANSWER_COLUMNS, answers, strict=True) if a is None]
        if missing:
            reject = Rejection(reason="missing_field", field=missing[0])
        elif len(set(answers)) < len(answers):
            reject = Rejection(reason="duplicate_options", field="answers")
        elif isinstance(question, str):
            options, reference = shuffle(
                [a for a in answers if a is not None], seed=seed, record_id=str(record_id)
            )
            prompt = render(question, options, style)
    return Candidate(
        row_index=row_index,
        grader=GRADER,
        source=SOURCE,
        license=LICENSE,
        source_id=record_id,
        prompt=prompt,
        reference=reference if reject is None else None,
        metadata={
            "source_id": record_id,
            "source": SOURCE,
            "license": LICENSE,
            "dataset": dataset,
            "domain": record.get("High-level domain"),
            "subdomain": record.get("Subdomain"),
            "options": options,
            "shuffle_seed": seed,
        },
        reject=reject,
        raw=dict(record),
    )


@TASK_LOADERS.register("gpqa")
def load(*, task: str, config: Mapping[str, Any], key: str) -> Iterator[Candidate]:
    settings = files.hub_settings(
        config, key=key, path=SOURCE, name="gpqa_diamond", split="train", extra=("option_style",)
    )
    style = str_param(config, "option_style", key=key, default="paren")
    if style not in OPTION_STYLES:
        raise ParamsError(
            f"Parameter '{key}.option_style' = {style!r} is not valid; allowed: "
            + ", ".join(OPTION_STYLES)
        )
    return _candidates(settings, key=key, style=style)


def _candidates(settings: files.HubSettings, *, key: str, style: str) -> Iterator[Candidate]:
    """The rows are read on first use, after every task's settings have been checked."""
    rows = files.rows_for(settings, key=key)
    keep = files.sample_indices(
        ["all"] * len(rows), n=settings.n, seed=settings.seed, salt="gpqa", key=key
    )
    dataset = f"{settings.path}/{settings.name}" if settings.name else settings.path
    for i in keep:
        yield to_candidate(
            record=rows[i], row_index=i, seed=settings.seed, dataset=dataset, style=style
        )
