"""The `aggregate` stage: one capability distribution per (query, model).

For the valid observations s_ij (variant i, sample j; failed generations excluded):

* `mean`  = mean of s_ij; `std` = population std (ddof=0) of s_ij.
* Law of total variance, with variant weights n_i/n (exact, ddof=0):
  `var_within`  = sum_i n_i var_i / n   (output side: decoding noise within a rewrite)
  `var_between` = sum_i n_i (mean_i - mean)^2 / n   (input side: between rewrites)
  so `var_within + var_between == std**2`.
* Beta posterior with prior Beta(a0, b0) (params `aggregate.prior_alpha/beta`, default
  Jeffreys 0.5/0.5): alpha = a0 + sum s, beta = b0 + n - sum s, treating the scores as
  exchangeable draws. Two equal-tailed `aggregate.ci` intervals, boundary-corrected
  (`dars.labels.intervals`, docs/intervals.md): `ci_low/ci_high` for the mean over the
  population of rewrites (Jeffreys on design-effect counts from var_within/var_between),
  `ci_low_fixed/ci_high_fixed` for the mean on the K drawn rewrites (plain Jeffreys).
  n = 0 pairs get nulls.
* `single_shot` = the score of sample 0 of variant 0 (null if that generation failed).
* `mean_cost` = mean cost of the valid generations; `cost_norm` = mean_cost divided by
  the largest mean_cost in the build (costs normalised to [0, 1] as in the paper).
* `utility` = mean - lambda * cost_norm - beta_risk * std (paper: 0.05 and 0.2); lambda and
  beta_risk are one number or one per task (`dars.labels.utility`).

Pairs whose generations all failed keep a row with n = 0 and null statistics.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core import schema
from dars.core.errors import ErrorRateExceededError, InputDataError, ValidationFailedError
from dars.core.io import model_file, read_frame, write_frame
from dars.core.params import load_params, model_names, section
from dars.labels import intervals, utility


def aggregation_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The settings, floats except `lambda_cost`/`beta_risk`: a float or {task: float}
    (a task of the data without a value fails when the labels are computed)."""
    s = dataclasses.asdict(section(params, "aggregate"))
    weights = {k: utility.weight(s.pop(k)) for k in ("lambda_cost", "beta_risk")}
    return {k: float(v) for k, v in s.items()} | weights


def check_error_rates(outcomes: pd.DataFrame, max_error_rate: float) -> pd.DataFrame:
    """Per-model failure counts; raise when a model's failure rate is above the threshold."""
    failed = outcomes["score"].isna()
    rates = (
        failed.groupby(outcomes["model"])
        .agg(n_total="size", n_failed="sum")
        .assign(rate=lambda d: d["n_failed"] / d["n_total"])
    )
    bad = rates[rates["rate"] > max_error_rate]
    if len(bad):
        lines = ", ".join(
            f"{m}: {int(r.n_failed)}/{int(r.n_total)} ({r.rate:.1%})" for m, r in bad.iterrows()
        )
        raise ErrorRateExceededError(
            f"failed-generation rate above aggregate.max_error_rate={max_error_rate:.1%} for "
            f"{lines}; labels from such a build cannot be trusted. Inspect the `error` column "
            "of data/outcomes/<model>.parquet, fix the engine, or raise the threshold."
        )
    return rates


def aggregate_labels(
    *, outcomes: pd.DataFrame, queries: pd.DataFrame, settings: dict[str, Any]
) -> pd.DataFrame:
    """Vectorised groupby aggregation (no per-group Python loops)."""
    keys = ["query_id", "model"]
    df = outcomes.copy()
    df["valid"] = df["score"].notna()
    df["s"] = df["score"].astype("float64")
    df["s2"] = df["s"] ** 2
    df["c"] = df["cost"].astype("float64").where(df["valid"])

    totals = df.groupby(keys, sort=True).agg(
        n_total=("valid", "size"),
        n=("valid", "sum"),
        sum_s=("s", "sum"),
        mean=("s", "mean"),
        mean_cost=("c", "mean"),
        backend=("backend", "first"),
        true_p=("true_p", "mean"),
    )
    totals["n_error"] = (df["status"] == "error").groupby([df[k] for k in keys]).sum()
    per_var = (
        df[df["valid"]]
        .groupby(keys + ["variant_id"], sort=True)
        .agg(
            n_i=("s", "size"),
            mean_i=("s", "mean"),
            m2_i=("s2", "mean"),
        )
        .reset_index()
    )
    per_var["var_i"] = (per_var["m2_i"] - per_var["mean_i"] ** 2).clip(lower=0.0)
    per_var = per_var.merge(totals["mean"].rename("grand").reset_index(), on=keys)
    per_var["w_within"] = per_var["n_i"] * per_var["var_i"]
    per_var["w_between"] = per_var["n_i"] * (per_var["mean_i"] - per_var["grand"]) ** 2
    per_var["n_i2"] = per_var["n_i"].astype("float64") ** 2
    dec = per_var.groupby(keys).agg(
        sw=("w_within", "sum"),
        sb=("w_between", "sum"),
        n_variants=("variant_id", "nunique"),
        sum_n2=("n_i2", "sum"),
    )
    lab = totals.join(dec, how="left")
    n = lab["n"].astype("float64")
    lab["var_within"] = (lab["sw"] / n).where(n > 0)
    lab["var_between"] = (lab["sb"] / n).where(n > 0)
    lab["std"] = np.sqrt(lab["var_within"] + lab["var_between"])
    lab["n_variants"] = lab["n_variants"].fillna(0).astype("int64")

    prior = {"prior_alpha": settings["prior_alpha"], "prior_beta": settings["prior_beta"]}
    lab["alpha"], lab["beta"] = intervals.beta_posterior(lab["sum_s"], n, **prior)
    cis = intervals.label_intervals(
        n=n,
        sum_s=lab["sum_s"],
        var_within=lab["var_within"],
        var_between=lab["var_between"],
        n_variants=lab["n_variants"],
        sum_n2=lab["sum_n2"],
        level=settings["ci"],
        **prior,
    )
    for col, values in cis.items():
        lab[col] = values

    first = df[(df["variant_id"] == 0) & (df["sample_id"] == 0)].set_index(keys)["s"]
    lab["single_shot"] = first.reindex(lab.index)

    max_cost = lab["mean_cost"].max()
    lab["cost_norm"] = lab["mean_cost"] / max_cost if max_cost and max_cost > 0 else 0.0
    lab = lab.reset_index().merge(queries[["query_id", "task"]], on="query_id", how="left")
    tasks = lab["task"].tolist()
    lab["utility"] = (
        lab["mean"]
        - utility.per_row(settings["lambda_cost"], tasks, key="aggregate.lambda_cost")
        * lab["cost_norm"]
        - utility.per_row(settings["beta_risk"], tasks, key="aggregate.beta_risk") * lab["std"]
    )
    for col in ("n", "n_total", "n_error"):
        lab[col] = lab[col].astype("int64")
    return lab[schema.names(schema.LABELS)].sort_values(keys, kind="stable")


def _check_validation(report: str) -> None:
    path = Path(report)
    if not path.exists():
        raise InputDataError(f"validation report {report!r} does not exist; run `dars validate`")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not data.get("success", False):
        raise ValidationFailedError(
            f"validation report {report!r} says the build failed validation; "
            "labels are not aggregated from tables that failed their checks"
        )


def run(
    *, params_path: str, outcomes_dir: str, queries: str, validation_report: str, out: str
) -> Path:
    params = load_params(params_path)
    settings = aggregation_settings(params)
    _check_validation(validation_report)
    q = read_frame(queries, ["query_id", "task"], what="queries")
    frames = []
    for name in model_names(params):
        path = model_file(outcomes_dir, name)
        frames.append(read_frame(path, schema.names(schema.OUTCOMES), what=f"outcomes[{name}]"))
    outcomes = pd.concat(frames, ignore_index=True)
    rates = check_error_rates(outcomes, settings["max_error_rate"])
    labels = aggregate_labels(outcomes=outcomes, queries=q, settings=settings)
    path = write_frame(labels, out, schema=schema.LABELS)
    print(
        f"aggregate: {len(labels)} labels ({labels['query_id'].nunique()} queries x "
        f"{labels['model'].nunique()} models) -> {path}; failed generations: "
        + ", ".join(f"{m}={int(r.n_failed)}" for m, r in rates.iterrows())
    )
    return path
