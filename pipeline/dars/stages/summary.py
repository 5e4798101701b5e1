"""`dars summary`: the per-model table `make repro` prints at the end.

Single-shot disagreement: the share of (query, model) pairs whose single-shot verdict
(sample 0 of variant 0, pass/fail at 0.5) differs from the distribution's verdict
(mean >= 0.5). It is how often a one-sample routing label would call the pair wrongly
relative to the model's measured capability.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from dars.core.io import read_frame, write_json
from dars.evaluation.views import labels_by_model


def summarise(labels: pd.DataFrame) -> pd.DataFrame:
    df = labels.copy()
    both = df["single_shot"].notna() & df["mean"].notna()
    df["disagree"] = ((df["single_shot"] >= 0.5) != (df["mean"] >= 0.5)).where(both)
    df["abs_noise"] = (df["single_shot"] - df["mean"]).abs().where(both)
    g = df.groupby("model", sort=True)
    out = pd.DataFrame(
        {
            "pairs": g.size(),
            "mean_quality": g["mean"].mean(),
            "mean_std": g["std"].mean(),
            "mean_cost": g["mean_cost"].mean(),
            "utility": g["utility"].mean(),
            "single_shot_disagree": g["disagree"].mean(),
            "mean_abs_single_shot_error": g["abs_noise"].mean(),
            "failed_generations": g["n_error"].sum(),
            "backend": g["backend"].first(),
        }
    )
    return out.reset_index()


def run(*, labels: str, out: str | None = None) -> pd.DataFrame:
    df = read_frame(
        labels,
        ["model", "mean", "std", "single_shot", "mean_cost", "utility", "n_error", "backend"],
        what="labels",
    )
    summ = summarise(df)
    console = Console(width=max(Console().width, 130))
    console.print(
        f"Labels: [bold]{Path(labels).resolve()}[/bold] "
        f"({len(df)} rows, {df['query_id'].nunique()} queries)"
    )
    t = Table(title="Per-model label summary")
    for col in (
        "model",
        "mean quality",
        "mean std",
        "mean cost",
        "utility",
        "single-shot disagrees",
        "|single-shot - mean|",
        "failed gens",
    ):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in summ.itertuples(index=False):
        t.add_row(
            r.model + (" (SIMULATED)" if r.backend == "simulated" else ""),
            f"{r.mean_quality:.3f}",
            f"{r.mean_std:.3f}",
            f"{r.mean_cost:.4f}",
            f"{r.utility:.3f}",
            f"{r.single_shot_disagree:.1%}",
            f"{r.mean_abs_single_shot_error:.3f}",
            str(int(r.failed_generations)),
        )
    console.print(t)
    if (summ["backend"] == "simulated").any():
        console.print(
            "Note: SIMULATED rows come from the simulated backend (known truth, "
            "no model); they are for method studies and must not be published."
        )
    if out:  # keyed by model: `dvc metrics show` shows a dict as columns, a list not at all
        write_json(labels_by_model(summ), out)
    return summ
