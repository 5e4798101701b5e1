"""The validate stage: tiny valid tables pass; each single corruption fails with a message
that names the table and the expectation, and the report says success false."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dars.core import schema
from dars.core.errors import InputDataError, ParamsError, ValidationFailedError
from dars.core.io import write_frame
from dars.stages import validate

MODEL = "m1"
N = 2


# --------------------------------------------------------------------------- fixture builders


def make_queries() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": ["q0", "q1"],
            "task": ["arith", "arith"],
            "prompt": ["1+1?", "2+3?"],
            "reference": ["2", "5"],
            "grader": ["numeric", "numeric"],
            "source": ["gen", "gen"],
            "license": ["mit", "mit"],
            "metadata": ["{}", "{}"],
        }
    )


def make_variants() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query_id": ["q0", "q0", "q1", "q1", "q1"],
            "variant_id": [0, 1, 0, 1, 2],
            "prompt": ["1+1?", "one plus one?", "2+3?", "two plus three?", "off topic"],
            "method": ["original", "paraphrase", "original", "paraphrase", "paraphrase"],
            "accepted": [True, True, True, True, False],
            "reject_reason": [None, None, None, None, "meaning_changed"],
        }
    )


def make_generations(*, model: str = MODEL, n: int = N) -> pd.DataFrame:
    """Every accepted variant x n samples; one failed generation (error rate 1/8)."""
    keys = [("q0", 0), ("q0", 1), ("q1", 0), ("q1", 1)]
    rows = [
        {
            "query_id": q,
            "variant_id": v,
            "model": model,
            "sample_id": s,
            "seed": 100 + s,
            "completion": "The answer is 2",
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "finish_reason": "stop",
            "status": "ok",
            "error": None,
            "latency_s": 0.25,
            "backend": "simulated",
            "revision": "sim-1",
            "cost": 0.001,
            "attempts": 1,
            "true_p": 0.6,
        }
        for q, v in keys
        for s in range(n)
    ]
    df = pd.DataFrame(rows)
    return mark_error(df, row=len(df) - 1)


def mark_error(df: pd.DataFrame, *, row: int) -> pd.DataFrame:
    """A consistent failed generation: status error, message set, no completion (no score)."""
    df = df.copy()
    df.loc[row, ["status", "error", "completion", "finish_reason"]] = (
        "error",
        "engine timeout",
        None,
        "error",
    )
    df.loc[row, "completion_tokens"] = 0
    if "score" in df.columns:
        df.loc[row, ["score", "parsed", "grade_status"]] = (np.nan, None, "error")
    return df


def make_outcomes(generations: pd.DataFrame) -> pd.DataFrame:
    out = generations.copy()
    ok = out["status"] == "ok"
    out["score"] = np.where(ok, 1.0, np.nan)
    out.loc[ok & (out["sample_id"] == 1), "score"] = 0.0
    out["parsed"] = np.where(ok, "2", None)
    out["grade_status"] = np.where(ok, "ok", "error")
    out["grade_detail"] = None
    return out


@pytest.fixture(scope="session")
def tables() -> dict[str, pd.DataFrame]:
    gens = make_generations()
    return {
        "queries": make_queries(),
        "variants": make_variants(),
        "generations": gens,
        "outcomes": make_outcomes(gens),
    }


def write_params(root: Path, *, models: list[str], validate_section: dict | None = None) -> Path:
    path = root / "params.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": {m: {"backend": "simulated"} for m in models},
                "sample": {"n": N, "seed": 0},
                "validate": validate_section
                or {"max_error_rate": 0.2, "max_unexpected_examples": 3},
            }
        )
    )
    return path


def write_inputs(root: Path, t: dict[str, pd.DataFrame], *, contract: bool = True) -> None:
    """Write the four tables; `contract=False` writes without the pyarrow schemas (to test
    a missing column)."""
    schemas = {
        "queries": schema.QUERIES,
        "variants": schema.VARIANTS,
        "generations": schema.GENERATIONS,
        "outcomes": schema.OUTCOMES,
    }
    for name in ("queries", "variants"):
        write_frame(t[name], root / f"{name}.parquet", schemas[name] if contract else None)
    for name in ("generations", "outcomes"):
        for model, df in t[name].groupby("model"):
            write_frame(
                df.reset_index(drop=True),
                root / name / f"{model}.parquet",
                schemas[name] if contract else None,
            )


def run_validate(root: Path) -> dict:
    return validate.run(
        params_path=root / "params.yaml",
        queries=root / "queries.parquet",
        variants=root / "variants.parquet",
        generations_dir=root / "generations",
        outcomes_dir=root / "outcomes",
        report=root / "reports" / "validation.json",
        docs_dir=root / "reports" / "docs",
    )


def read_report(root: Path) -> dict:
    return json.loads((root / "reports" / "validation.json").read_text())


def setup(
    root: Path,
    tables: dict[str, pd.DataFrame],
    *,
    contract: bool = True,
    validate_section: dict | None = None,
    **changes: pd.DataFrame,
) -> Path:
    t = {k: v.copy() for k, v in tables.items()} | changes
    write_inputs(root, t, contract=contract)
    write_params(root, models=[MODEL], validate_section=validate_section)
    return root


def expect_failure(root: Path, *, table: str, expectation: str) -> str:
    with pytest.raises(ValidationFailedError) as info:
        run_validate(root)
    msg = str(info.value)
    assert f"table {table!r}" in msg, msg
    assert f"expectation {expectation}" in msg, msg
    report = read_report(root)
    assert report["success"] is False
    assert report["tables"][table]["success"] is False
    assert (root / "reports" / "docs" / "index.html").exists()
    return msg


# --------------------------------------------------------------------------- passing


def test_valid_tables_pass_and_write_report_and_docs(tmp_path, tables, capfd):
    root = setup(tmp_path, tables)
    result = run_validate(root)
    assert result["success"] is True
    report = read_report(root)
    assert report["success"] is True and report["failed"] == []
    assert set(report["tables"]) == {
        "queries",
        "variants",
        f"generations[{MODEL}]",
        f"outcomes[{MODEL}]",
        "coverage",
        "error_rate",
    }
    counts = report["model_counts"][MODEL]
    assert counts["rows"] == 8 and counts["n_error"] == 1
    assert counts["error_rate"] == pytest.approx(1 / 8)
    assert counts["grade_status"]["ok"] == 7 and counts["grade_status"]["error"] == 1
    docs = root / "reports" / "docs"
    assert (docs / "index.html").exists()
    assert list((docs / "validations").rglob("*.html"))
    # no project files of GX in the working folder; no progress bars on the terminal
    assert not (tmp_path / "gx").exists()
    assert "Calculating Metrics" not in capfd.readouterr().err


def test_report_is_deterministic(tmp_path, tables):
    root = setup(tmp_path, tables)
    run_validate(root)
    first = (root / "reports" / "validation.json").read_bytes()
    run_validate(root)  # also replaces the earlier Data Docs site
    assert (root / "reports" / "validation.json").read_bytes() == first
    assert b"run_time" not in first


def test_unlisted_model_file_is_ignored(tmp_path, tables):
    root = setup(tmp_path, tables)
    other = make_generations(model="other")
    write_frame(other.iloc[:1], root / "generations" / "other.parquet")
    run_validate(root)
    assert read_report(root)["ignored_files"]["generations"] == ["other.parquet"]


def test_fractional_f1_scores_pass(tmp_path, tables):
    """DROP's F1 is a fraction: the suites check score in [0, 1], not in {0, 1}."""
    queries = tables["queries"].copy()
    queries["grader"] = "f1"
    out = tables["outcomes"].copy()
    ok = out["status"] == "ok"
    out.loc[ok, "score"] = [0.5, 0.67, 0.28, 1.0, 0.0, 0.83, 0.4][: int(ok.sum())]
    root = setup(tmp_path, tables, queries=queries, outcomes=out)
    assert run_validate(root)["success"] is True


# --------------------------------------------------------------------------- failing


def test_duplicate_key(tmp_path, tables):
    out = tables["outcomes"]
    root = setup(tmp_path, tables, outcomes=pd.concat([out, out.iloc[[0]]], ignore_index=True))
    expect_failure(
        root, table=f"outcomes[{MODEL}]", expectation="expect_compound_columns_to_be_unique"
    )


def test_score_out_of_range(tmp_path, tables):
    out = tables["outcomes"].copy()
    out.loc[2, "score"] = 1.5
    root = setup(tmp_path, tables, outcomes=out)
    msg = expect_failure(
        root, table=f"outcomes[{MODEL}]", expectation="expect_column_values_to_be_between(score)"
    )
    assert "1 unexpected rows" in msg and "query_id=q0, variant_id=1" in msg
    exp = next(
        e
        for e in read_report(root)["tables"][f"outcomes[{MODEL}]"]["expectations"]
        if e["columns"] == ["score"] and not e["success"]
    )
    assert exp["unexpected_examples"][0]["score"] == 1.5


def test_score_null_with_status_ok(tmp_path, tables):
    out = tables["outcomes"].copy()
    out.loc[0, "score"] = np.nan
    root = setup(tmp_path, tables, outcomes=out)
    expect_failure(
        root,
        table=f"outcomes[{MODEL}]",
        expectation="expect_column_values_to_be_in_set(chk_score_null_iff_error)",
    )


def test_null_completion_with_status_ok(tmp_path, tables):
    gens = tables["generations"].copy()
    gens.loc[0, "completion"] = None
    root = setup(tmp_path, tables, generations=gens, outcomes=make_outcomes(gens))
    msg = expect_failure(
        root,
        table=f"generations[{MODEL}]",
        expectation="expect_column_values_to_be_in_set(chk_completion_if_ok)",
    )
    assert "query_id=q0, variant_id=0, model=m1, sample_id=0" in msg


def test_missing_sample_for_one_variant(tmp_path, tables):
    gens = tables["generations"]
    gens = gens[
        ~((gens["query_id"] == "q1") & (gens["variant_id"] == 0) & (gens["sample_id"] == 1))
    ].reset_index(drop=True)
    root = setup(tmp_path, tables, generations=gens, outcomes=make_outcomes(gens))
    msg = expect_failure(
        root, table="coverage", expectation="expect_column_values_to_be_between(n_rows)"
    )
    assert "query_id=q1, variant_id=0" in msg and "n_rows=1" in msg


def test_error_rate_over_threshold(tmp_path, tables):
    gens = tables["generations"]
    for row in (0, 1):
        gens = mark_error(gens, row=row)  # 3 of 8 failed > 0.2
    root = setup(tmp_path, tables, generations=gens, outcomes=make_outcomes(gens))
    msg = expect_failure(
        root, table="error_rate", expectation="expect_column_values_to_be_between(error_rate)"
    )
    assert "model=m1" in msg and "error_rate=0.375" in msg
    assert read_report(root)["model_counts"][MODEL]["n_error"] == 3


def test_error_rate_threshold_comes_from_params(tmp_path, tables):
    gens = mark_error(mark_error(tables["generations"], row=0), row=1)
    root = setup(
        tmp_path,
        tables,
        generations=gens,
        outcomes=make_outcomes(gens),
        validate_section={"max_error_rate": 0.5},
    )
    assert run_validate(root)["success"] is True


def test_unknown_grader(tmp_path, tables):
    queries = tables["queries"].copy()
    queries.loc[1, "grader"] = "fuzzy"
    root = setup(tmp_path, tables, queries=queries)
    msg = expect_failure(
        root, table="queries", expectation="expect_column_values_to_be_in_set(grader)"
    )
    assert "query_id=q1" in msg


def test_generation_of_unknown_variant(tmp_path, tables):
    gens = tables["generations"].copy()
    gens.loc[0, "variant_id"] = 7
    root = setup(tmp_path, tables, generations=gens, outcomes=make_outcomes(gens))
    expect_failure(
        root,
        table=f"generations[{MODEL}]",
        expectation="expect_column_values_to_be_in_set(chk_variant_exists)",
    )


def test_original_variant_not_accepted(tmp_path, tables):
    variants = tables["variants"].copy()
    variants.loc[0, ["accepted", "reject_reason"]] = (False, "too_long")
    root = setup(tmp_path, tables, variants=variants)
    expect_failure(
        root,
        table="queries",
        expectation="expect_column_values_to_be_in_set(chk_variant0_accepted)",
    )


def test_missing_contract_column(tmp_path, tables):
    root = setup(
        tmp_path, tables, contract=False, outcomes=tables["outcomes"].drop(columns=["grade_status"])
    )
    expect_failure(
        root, table=f"outcomes[{MODEL}]", expectation="expect_column_to_exist(grade_status)"
    )


def test_missing_model_file_names_the_model(tmp_path, tables):
    root = setup(tmp_path, tables)
    write_params(root, models=[MODEL, "m2"])
    with pytest.raises(InputDataError, match="'m2'"):
        run_validate(root)


def test_bad_params(tmp_path, tables):
    root = setup(tmp_path, tables, validate_section={"max_error_rate": 2})
    with pytest.raises(ParamsError, match="validate.max_error_rate"):
        run_validate(root)


def test_refuses_to_delete_a_folder_that_is_not_data_docs(tmp_path, tables):
    root = setup(tmp_path, tables)
    (root / "reports" / "docs").mkdir(parents=True)
    (root / "reports" / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(InputDataError, match="refusing"):
        run_validate(root)
    assert (root / "reports" / "docs" / "notes.txt").exists()
