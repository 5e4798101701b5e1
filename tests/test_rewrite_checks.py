"""Rewrite equivalence checks on hand-made equivalent and non-equivalent pairs, the
`llm` reformulate method (scripted engine, and the real gemma model), and the
validation report's rejection counts."""

import math
import os
import re
from collections import Counter

import pandas as pd
import pytest

from dars.backends import GenResult
from dars.prompting import paraphrase, templates
from dars.prompting.rewrite_checks import (
    REASONS,
    CheckConfig,
    check_rewrite,
    code_parts,
    entities,
    identifiers,
    numbers,
    options,
    reason_code,
    structural_reasons,
)
from dars.stages import reformulate
from dars.stages.validate import variant_counts

CFG = CheckConfig()

NOAH = "Noah has 4 pencils. Zoe gives Noah 2 more pencils. How many pencils does Noah have now?"
PLANETS = "Which planet is the largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth"
CURIE = "In which year did Marie Curie win her first Nobel Prize?"
SPLIT = "What does `str.split` return when it is called as `text.split(',')`?"
HUMANEVAL = (
    "from typing import List\n\n\n"
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    '    """ Check if in given list of numbers, are any two numbers closer to each other than\n'
    "    given threshold.\n"
    "    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n"
    "    False\n"
    "    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)\n"
    "    True\n"
    '    """\n'
)

EQUIVALENT = [
    (
        "numeric",
        NOAH,
        "Zoe hands Noah 2 more pencils, and Noah already had 4 pencils. How many pencils "
        "does Noah have now?",
    ),
    (
        "choice",
        PLANETS,
        "Which of these planets is the biggest one?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth",
    ),
    ("exact", CURIE, "Marie Curie won her first Nobel Prize in which year?"),
    ("exact", SPLIT, "When you call it as `text.split(',')`, what does `str.split` give back?"),
    (
        "code",
        HUMANEVAL,
        HUMANEVAL.replace(
            "Check if in given list of numbers, are any two numbers closer to each other than\n"
            "    given threshold.",
            "Return whether any two numbers in the given list are closer to each other\n"
            "    than the given threshold.",
        ),
    ),
]

NOT_EQUIVALENT = [
    ("numeric", NOAH, NOAH.replace("2 more", "3 more"), "numbers"),
    ("numeric", NOAH, "Zoe gives Noah more pencils. How many pencils has Noah now?", "numbers"),
    ("numeric", NOAH, NOAH.replace("2 more", "2 more and 3 fewer"), "numbers"),
    ("numeric", NOAH, NOAH.replace("more pencils", "more pencils than Tess"), "entities"),
    ("numeric", NOAH, NOAH.replace("Zoe", "Mia"), "entities"),
    ("choice", PLANETS, PLANETS.replace("\nD. Earth", ""), "options"),
    ("choice", PLANETS, PLANETS.replace("B. Jupiter", "B. Saturn"), "options"),
    ("exact", CURIE, "In which year did Curie win her first Nobel Prize?", "entities"),
    ("exact", SPLIT, SPLIT.replace("`str.split`", "the method"), "identifiers"),
    ("code", HUMANEVAL, HUMANEVAL.replace("threshold: float", "threshold: int"), "code"),
    ("code", HUMANEVAL, HUMANEVAL.replace("    True\n", "    False\n", 1), "code"),
    ("numeric", NOAH, "Noah: 4, Zoe: 2?", "length_ratio"),
    ("numeric", NOAH, NOAH + " " + NOAH.replace("Noah has", "Noah keeps") * 2, "length_ratio"),
    ("numeric", NOAH, "   ", "empty"),
    ("numeric", NOAH, NOAH.replace(" ", "  "), "unchanged"),
]


def test_extractors():
    assert numbers("1,000 apples, 3.5 kg, -2 and 1/2 cup") == [1000, 3.5, -2, 0.5]
    assert numbers("version v2 and x3") == []  # digits glued to letters are not numbers
    assert entities(NOAH) == {"Noah", "Zoe"}
    assert entities(CURIE) == {"Marie", "Curie", "Nobel", "Prize"}
    assert {"str.split", "text.split"} <= identifiers(SPLIT)
    assert options(PLANETS) == ["A. Mars", "B. Jupiter", "C. Venus", "D. Earth"]
    parts = code_parts(HUMANEVAL)
    assert parts[0].startswith("def has_close_elements(") and "False" in parts and "True" in parts


@pytest.mark.parametrize("grader, original, candidate", EQUIVALENT)
def test_equivalent_rewrites_pass_the_structural_checks(grader, original, candidate):
    assert structural_reasons(original, candidate, grader=grader, config=CFG) == []


@pytest.mark.parametrize("grader, original, candidate, reason", NOT_EQUIVALENT)
def test_non_equivalent_rewrites_are_rejected_with_their_reason(
    grader, original, candidate, reason
):
    reasons = structural_reasons(original, candidate, grader=grader, config=CFG)
    assert reason in {reason_code(r) for r in reasons}, reasons
    assert {reason_code(r) for r in reasons} <= set(REASONS)


def bag_of_words(texts):
    """A stand-in embedder for fast tests: unit-normalised word counts."""
    vocab: dict[str, int] = {}
    rows = []
    for t in texts:
        c = Counter(re.findall(r"\w+", t.lower()))
        rows.append(c)
        for w in c:
            vocab.setdefault(w, len(vocab))
    out = []
    for c in rows:
        v = [0.0] * len(vocab)
        for w, n in c.items():
            v[vocab[w]] = float(n)
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        out.append([x / norm for x in v])
    return out


def test_similarity_threshold_is_applied():
    cand = "Noah 4 Zoe 2 stock market report for the next quarter of the year, pencils"
    assert structural_reasons(NOAH, cand, grader="numeric", config=CFG) == []
    reasons = check_rewrite(NOAH, cand, grader="numeric", config=CFG, embed=bag_of_words)
    assert [reason_code(r) for r in reasons] == ["similarity"]
    lax = CheckConfig(min_similarity=0.0)
    assert check_rewrite(NOAH, cand, grader="numeric", config=lax, embed=bag_of_words) == []


# --------------------------------------------------------------------------- llm method


class ScriptedEngine:
    """Returns the scripted texts in order (a stand-in for an engine, for fast tests)."""

    name, revision = "scripted", "test"

    def __init__(self, texts):
        self.texts = list(texts)
        self.prompts = []

    def generate_variant(self, requests):
        self.prompts += [r.prompt for r in requests]
        return [
            GenResult(
                completion=self.texts.pop(0),
                prompt_tokens=1,
                completion_tokens=1,
                finish_reason="stop",
                latency_s=0.0,
            )
            for _ in requests
        ]


def paraphraser(texts, attempts=2):
    from dars.core.params import ModelConfig

    return reformulate.LLMParaphraser(
        config=ModelConfig(name="scripted", backend="simulated"),
        backend=ScriptedEngine(texts),
        embed=bag_of_words,
        checks=CheckConfig(min_similarity=0.5),
        attempts=attempts,
    )


QUERY = {"query_id": "q1", "task": "t", "grader": "numeric", "prompt": NOAH, "reference": "6"}


def test_llm_method_keeps_rejected_candidates_with_their_reason():
    good = "Zoe gives Noah 2 more pencils; Noah had 4 pencils. How many pencils does Noah have now?"
    texts = [
        NOAH.replace("2", "5"),
        good,
        good,
        "Noah has 4 pencils. Zoe gives Noah 2 more. How many pencils does Noah have at this point?",
    ]
    p = paraphraser(texts)
    rows = reformulate.reformulate([QUERY], method="llm", k=3, paraphraser=p)
    got = [(r["variant_id"], r["accepted"], reason_code(r["reject_reason"] or "")) for r in rows]
    assert got == [
        (0, True, ""),
        (1, False, "numbers"),
        (2, True, ""),
        (3, False, "duplicate"),
        (4, True, ""),
    ]
    assert rows[0]["prompt"] == templates.wrap(grader="numeric", template=0, problem=NOAH)
    assert rows[2]["prompt"] == templates.wrap(grader="numeric", template=0, problem=good)
    assert all(pp.endswith("Original:\n" + NOAH + "\nRewrite:\n") for pp in p.backend.prompts)


def test_llm_method_spends_at_most_its_attempts():
    p = paraphraser([NOAH] * 10, attempts=2)
    rows = reformulate.reformulate([QUERY], method="llm", k=3, paraphraser=p)
    assert len(rows) == 1 + 2 * 2 and sum(r["accepted"] for r in rows) == 1
    assert {reason_code(r["reject_reason"]) for r in rows[1:]} == {"unchanged"}
    counts = variant_counts(pd.DataFrame(rows))
    assert counts == {
        "accepted": 1,
        "rejected": 4,
        "rejected_by_reason": {"unchanged": 4},
        "failed_checks": {"unchanged": 4},
    }


# --------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    from dars.prompting.rewrite_checks import load_embedder

    return load_embedder()


@pytest.mark.slow
def test_loading_minilm_leaves_the_hub_settings_alone(monkeypatch):
    """The model loads from local files only, without switching the whole process
    offline (that once broke a later Hub upload in the same test run)."""
    pytest.importorskip("sentence_transformers")
    from dars.prompting.rewrite_checks import load_embedder

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    embed = load_embedder()
    assert len(embed(["What is 2 + 2?"])[0]) == 384
    assert "HF_HUB_OFFLINE" not in os.environ
    assert "TRANSFORMERS_OFFLINE" not in os.environ


@pytest.mark.slow
@pytest.mark.parametrize("grader, original, candidate", EQUIVALENT)
def test_minilm_accepts_the_equivalent_pairs(minilm, grader, original, candidate):
    assert check_rewrite(original, candidate, grader=grader, config=CFG, embed=minilm) == []


@pytest.mark.slow
def test_minilm_rejects_an_unrelated_text_that_keeps_numbers_and_names(minilm):
    cand = "Noah and Zoe read the 4 o'clock news: 2 pencils makers merged. Any comment?"
    assert structural_reasons(NOAH, cand, grader="numeric", config=CFG) == []
    reasons = check_rewrite(NOAH, cand, grader="numeric", config=CFG, embed=minilm)
    assert [reason_code(r) for r in reasons] == ["similarity"]


@pytest.mark.slow
def test_llm_method_with_gemma_rejects_its_poor_paraphrases(minilm):
    pytest.importorskip("llama_cpp")
    from dars.backends import build_backend
    from dars.core.params import model_config

    raw = {**paraphrase.DEFAULT_REWRITER_MODEL, "max_tokens": 48}
    config = model_config({"models": {"gemma": raw}}, "gemma")
    p = reformulate.LLMParaphraser(
        config=config, backend=build_backend(config, {}), embed=minilm, checks=CFG, attempts=1
    )
    queries = [
        QUERY,
        {"query_id": "q2", "task": "t", "grader": "choice", "prompt": PLANETS, "reference": "B"},
    ]
    try:
        rows = reformulate.reformulate(queries, method="llm", k=3, paraphraser=p)
    finally:
        p.close()
    cands = [r for r in rows if r["variant_id"] > 0]
    assert len(cands) == 4  # attempts=1: exactly k - 1 candidates per query
    for r in cands:
        q = next(q for q in queries if q["query_id"] == r["query_id"])
        if r["accepted"]:
            body = r["prompt"].removeprefix("Question: ")
            got = check_rewrite(q["prompt"], body, grader=q["grader"], config=CFG, embed=minilm)
            assert got == []
        else:
            assert reason_code(r["reject_reason"]) in REASONS
    # gemma-3-270m is a small base model: on the multiple-choice question it invents
    # planets and options ("Mercury", "Sun"), which the checks reject (measured; llama.cpp
    # sampling is seeded)
    choice = [r for r in cands if r["query_id"] == "q2"]
    assert not any(r["accepted"] for r in choice), [r["prompt"] for r in choice]
