"""Small, flat files for DVC's own views: `dvc metrics show/diff` and `dvc plots show/diff`.

The full router metrics (metrics/routers.json) hold every metric with its interval for
every router and reference: hundreds of numbers, fine as data, unreadable as one line
of `dvc metrics show`. These views keep the headline numbers, keyed by name (DVC shows
a dict as columns, a list not at all), and the plot data as CSV, so that `dvc plots
diff` can overlay experiments.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.io import write_json, write_text

HEADLINE = ("utility", "quality", "cost", "nauc")
NOISE_BINS = np.linspace(-1.0, 1.0, 21)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else round(x, 6)


def router_headline(result: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """router -> DARS-supervised headline metrics, the single-shot utility and the
    paired difference (with its p-value), from the evaluate stage's full result."""
    out: dict[str, dict[str, float | None]] = {}
    for name, systems in sorted(result.get("routers", {}).items()):
        row: dict[str, float | None] = {}
        for metric in HEADLINE:
            if metric in systems.get("dars", {}):
                row[metric] = _num(systems["dars"][metric]["value"])
        if "utility" in systems.get("single_shot", {}):
            row["single_shot_utility"] = _num(systems["single_shot"]["utility"]["value"])
        diff = systems.get("dars_minus_single_shot", {}).get("utility")
        if diff:
            row["utility_gain"] = _num(diff["diff"])
            row["utility_gain_p"] = _num(diff["p_value"])
        out[name] = row
    return out


def labels_by_model(summary: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """model -> the numeric columns of the per-model label summary."""
    out: dict[str, dict[str, float | int | None]] = {}
    for rec in summary.to_dict(orient="records"):
        model = str(rec.pop("model"))
        out[model] = {
            k: (int(v) if isinstance(v, int | np.integer) else _num(v))
            for k, v in rec.items()
            if isinstance(v, int | float | np.integer | np.floating)
        }
    return out


def write_csv(rows: Iterable[Mapping[str, Any]], columns: list[str], path: str | Path) -> Path:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in columns})
    return write_text(buf.getvalue(), path)


COST_QUALITY_COLUMNS = ["router", "supervision", "lambda", "cost", "quality"]


def cost_quality_rows(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], lambdas: Iterable[float]
) -> list[dict[str, Any]]:
    """One row per (router, supervision, lambda) point of the cost-quality curves."""
    lams = list(lambdas)
    rows = []
    for router, sups in curves.items():
        for sup, (cost, quality) in sups.items():
            for lam, c, q in zip(lams, cost, quality, strict=False):
                rows.append({"router": router, "supervision": sup, "lambda": lam,
                             "cost": _num(c), "quality": _num(q)})  # fmt: skip
    return rows


NOISE_COLUMNS = ["noise", "pairs"]


def label_noise_rows(labels: pd.DataFrame) -> list[dict[str, Any]]:
    """Histogram of single-shot label minus distribution mean, one row per bin centre."""
    ok = labels["single_shot"].notna() & labels["mean"].notna()
    noise = (labels.loc[ok, "single_shot"] - labels.loc[ok, "mean"]).to_numpy(dtype=float)
    counts, edges = np.histogram(noise, bins=NOISE_BINS)
    centres = (edges[:-1] + edges[1:]) / 2
    return [{"noise": round(float(c), 3), "pairs": int(n)} for c, n in zip(centres, counts,
                                                                         strict=True)]  # fmt: skip


def write_router_views(
    *,
    result: Mapping[str, Any],
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    lambdas: Iterable[float],
    labels: pd.DataFrame,
    metrics_path: str | Path,
    plots_dir: str | Path,
) -> list[Path]:
    plots = Path(plots_dir)
    return [
        write_json(router_headline(result), metrics_path),
        write_csv(
            cost_quality_rows(curves, lambdas), COST_QUALITY_COLUMNS, plots / "cost_quality.csv"
        ),  # fmt: skip
        write_csv(label_noise_rows(labels), NOISE_COLUMNS, plots / "label_noise.csv"),
    ]
