"""Stage `reformulate`: K deterministic, meaning-preserving variants per query."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from dars.core import schema
from dars.core.errors import InputDataError, ParamsError, UnknownNameError
from dars.prompting import template_rewriter, templates
from dars.prompting.few_shot import few_shot_examples
from dars.stages import prepare, reformulate
from dars.tasks import arithmetic

INTS = re.compile(r"\d+")
NUMERIC_0 = "Question: "
CODE_0 = (
    "Complete the following Python function. Reply with the full function in a "
    "```python code block.\n\n```python\n"
)


@pytest.fixture(scope="session")
def queries_path(tmp_path_factory) -> Path:
    """A real queries table: 4 arithmetic problems and 3 HumanEval problems."""
    root = tmp_path_factory.mktemp("queries")
    params = root / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "prepare": {
                    "tasks": {
                        "arith": {"kind": "arithmetic", "n": 4, "seed": 9, "difficulty": 2},
                        "humaneval": {"kind": "humaneval", "n": 3},
                    }
                }
            }
        )
    )
    out = root / "queries.parquet"
    prepare.run(
        params_path=params,
        out=out,
        quarantine_out=root / "quarantine.parquet",
        stats_out=root / "stats.json",
    )
    return out


def run(tmp_path: Path, queries: Path, section: dict) -> pd.DataFrame:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"reformulate": section}))
    out = tmp_path / "variants.parquet"
    reformulate.run(params_path=params, queries=queries, out=out)
    table = pq.read_table(out)
    assert table.schema.equals(schema.VARIANTS)
    return table.to_pandas()


def test_k_variants_per_query_with_unique_keys_and_distinct_prompts(tmp_path, queries_path):
    queries = pd.read_parquet(queries_path)
    v = run(tmp_path, queries_path, {"k": 6, "method": "template"})
    assert len(v) == 6 * len(queries)
    assert not v.duplicated(["query_id", "variant_id"]).any()
    for qid, group in v.groupby("query_id"):
        assert list(group["variant_id"]) == list(range(6))
        assert group["prompt"].is_unique, qid
    assert v["accepted"].all() and v["reject_reason"].isna().all()
    assert set(v["query_id"]) == set(queries["query_id"])


def test_variant_0_is_the_original_under_template_0(tmp_path, queries_path):
    queries = pd.read_parquet(queries_path).set_index("query_id")
    v = run(tmp_path, queries_path, {"k": 2})  # method defaults to template
    first = v[v.variant_id == 0]
    assert set(first["method"]) == {"original"}
    for _, row in first.iterrows():
        q = queries.loc[row["query_id"]]
        if q["grader"] == "numeric":
            assert row["prompt"] == NUMERIC_0 + q["prompt"]
        else:
            assert row["prompt"] == CODE_0 + q["prompt"] + "```"


def test_code_variants_keep_the_humaneval_prompt_verbatim(tmp_path, queries_path):
    queries = pd.read_parquet(queries_path).set_index("query_id")
    v = run(tmp_path, queries_path, {"k": 6})
    code = v[v.query_id.map(queries["grader"]) == "code"]
    assert len(code) == 3 * 6
    for _, row in code.iterrows():
        original = queries.loc[row["query_id"], "prompt"]
        assert f"```python\n{original}```" in row["prompt"]
        assert row["prompt"].endswith("```")  # the model continues inside the block
    assert list(code["method"][:6]) == ["original", *(f"template:{i}" for i in range(1, 6))]


def test_arithmetic_variants_are_surface_rewrites_that_keep_numbers(tmp_path, queries_path):
    queries = pd.read_parquet(queries_path).set_index("query_id")
    v = run(tmp_path, queries_path, {"k": 6})
    arith = v[v.query_id.map(queries["source"]) == arithmetic.SOURCE]
    assert list(arith["method"][:3]) == ["original", "template:1+surface:1", "template:2+surface:2"]
    for _, row in arith.iterrows():
        problem = json.loads(queries.loc[row["query_id"], "metadata"])
        numbers = [problem["start"], *(s["qty"] for s in problem["steps"])]
        assert [int(x) for x in INTS.findall(row["prompt"])] == numbers
        assert arithmetic.render(problem, int(row["variant_id"])) in row["prompt"]


def test_reformulate_is_deterministic(tmp_path, queries_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = run(tmp_path / "a", queries_path, {"k": 4})
    b = run(tmp_path / "b", queries_path, {"k": 4})
    pd.testing.assert_frame_equal(a, b)


def test_k_above_the_available_rewrites_is_a_params_error(tmp_path, queries_path):
    with pytest.raises(
        ParamsError, match=r"'reformulate.k' = 7 is more than the 6 distinct"
    ) as info:
        run(tmp_path, queries_path, {"k": 7})
    assert "query '" in str(info.value) and "use k <= 6" in str(info.value)
    assert not (tmp_path / "variants.parquet").exists()


def test_arithmetic_queries_have_more_rewrites(tmp_path):
    rows = [
        {
            "query_id": "q",
            "task": "a",
            "grader": "numeric",
            "source": arithmetic.SOURCE,
            "prompt": arithmetic.render(p, 0),
            "metadata": json.dumps(p),
        }
        for p in [arithmetic.generate_problem(seed=1, difficulty=3, index=0)]
    ]
    top = template_rewriter.max_variants(grader="numeric", has_surface=True)
    variants = reformulate.reformulate(rows, method="template", k=top)
    assert len({v["prompt"] for v in variants}) == top == 24
    with pytest.raises(ParamsError, match="reformulate.k"):
        reformulate.reformulate(rows, method="template", k=top + 1)


def test_broken_arithmetic_metadata_is_an_input_error():
    row = {
        "query_id": "q",
        "task": "a",
        "grader": "numeric",
        "source": arithmetic.SOURCE,
        "prompt": "x",
        "metadata": json.dumps({"start": 3}),
    }
    with pytest.raises(InputDataError, match="'q'"):
        reformulate.reformulate([row], method="template", k=2)


@pytest.mark.parametrize(
    "section, match",
    [
        ({"k": 2, "method": "llm", "llm": {"attempts": 0}}, "reformulate.llm.attempts"),
        ({"k": 2, "method": "templte"}, "Did you mean 'template'"),
        ({"k": 0}, "reformulate.k"),
        ({"method": "template"}, "'reformulate.k' are missing"),
    ],
)
def test_reformulate_params_errors(tmp_path, queries_path, section, match):
    with pytest.raises(ParamsError, match=match):
        run(tmp_path, queries_path, section)


def test_templates_ask_for_one_answer_format_per_grader():
    formats = {
        "choice": "'Answer: <letter>'",
        "exact": "'Answer: <answer>'",
        "math": "'Final Answer: <answer>'",
        "f1": "'Answer: <answer>'",
    }
    for grader in schema.GRADERS:
        ts = templates.TEMPLATES[grader]
        assert len(ts) >= 6 and len(set(ts)) == len(ts)
        for t in ts:
            if grader == "code":
                assert t.endswith("{code}") and "```python code block" in t
            elif grader == "numeric":  # short framings for small base models
                assert t.count("{problem}") == 1 and len(t) < 80
            else:
                assert formats[grader] in t and t.count("{problem}") == 1
            assert not INTS.search(t)  # templates add no numbers to the problem


def test_few_shot_examples():
    numeric = few_shot_examples("numeric")
    assert len(numeric) == 3
    generated = {
        arithmetic.render(arithmetic.generate_problem(seed=s, difficulty=d, index=i))
        for s in range(3)
        for d in (0, 1, 2, 3)
        for i in range(20)
    }
    for user, answer in numeric:
        assert user.startswith(NUMERIC_0)
        assert re.search(r"Answer: \d+$", answer)
        assert user.removeprefix(NUMERIC_0) not in generated
        assert not any(name in user for name in arithmetic.NAMES)
    # the worked answers are right
    assert [a.rsplit("Answer: ", 1)[1] for _, a in numeric] == ["7", "7", "10"]

    [(user, body)] = few_shot_examples("code")
    assert user.startswith(CODE_0) and user.endswith("```")
    stub = user.removeprefix(CODE_0).removesuffix("```")
    scope: dict = {}
    exec(stub + body, scope)  # the completion continues the stub into a working function
    assert scope["add_one"]([1, 2, 3]) == [2, 3, 4]

    for grader in ("choice", "exact"):
        assert few_shot_examples(grader)
    with pytest.raises(UnknownNameError, match="Did you mean 'numeric'"):
        few_shot_examples("numerc")
