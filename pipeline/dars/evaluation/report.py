"""The `evaluate` stage's human-readable outputs: Markdown tables and plots.

* `markdown_tables`: the DARS-vs-single-shot table, every metric of every system, the
  per-view section (`view_table`) and the field's metrics (`field_table`);
* `plot_cost_quality`: the lambda sweep per router, both supervisions, with the oracle and
  the single models; `plot_label_noise`: single_shot - mean over all labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.evaluation import metrics as M
from dars.labels import utility as W
from dars.labels import views as V


def _fmt(s: dict[str, float], *, spread: bool = False) -> str:
    if not np.isfinite(s["value"]):
        return "n/a"
    core = f"{s['value']:.3f}"
    if spread and s.get("repeats", 1) > 1:
        core += f" ± {s['std']:.3f}"
    return f"{core} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _fmt_diff(d: dict[str, float]) -> str:
    if not np.isfinite(d["diff"]):
        return "n/a"
    return f"{d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def markdown_tables(result: dict[str, Any]) -> str:
    has_truth = result["has_truth"]
    lines = [
        f"Test queries: {result['n_test_queries']} (dropped for missing labels: "
        f"{result['n_test_dropped']}); models: {', '.join(result['models'])}; "
        f"lambda = {W.describe(result['settings']['lambda_cost'])}, "
        f"beta = {W.describe(result['settings']['beta_risk'])}; "
        f"{result['settings']['bootstrap']} paired-bootstrap resamples, "
        f"{int(result['settings']['ci'] * 100)}% intervals; single-shot: mean ± std over "
        f"{result['single_shot_repeats']} label draws.",
        "",
        "### DARS vs single-shot supervision (utility on the test split)",
        "",
    ]
    head = "| router | utility, DARS | utility, single-shot | Δ utility (DARS − SS) | p |"
    sep = "|---|---|---|---|---|"
    if has_truth:
        head += " true quality, DARS | true quality, SS | Δ true quality | p |"
        sep += "---|---|---|---|"
    lines += [head, sep]
    for name, r in result["routers"].items():
        if "dars" not in r or "single_shot" not in r:
            continue
        d = r["dars_minus_single_shot"]
        row = (
            f"| {name} | {_fmt(r['dars']['utility'])} | "
            f"{_fmt(r['single_shot']['utility'], spread=True)} | {_fmt_diff(d['utility'])} | "
            f"{d['utility']['p_value']:.3f} |"
        )
        if has_truth:
            row += (
                f" {_fmt(r['dars']['quality_true'])} | "
                f"{_fmt(r['single_shot']['quality_true'], spread=True)} | "
                f"{_fmt_diff(d['quality_true'])} | {d['quality_true']['p_value']:.3f} |"
            )
        lines.append(row)
    cols = list(M.METRICS) + (["quality_true"] if has_truth else [])
    lines += [
        "",
        "### All metrics",
        "",
        "| system | supervision | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name, r in result["routers"].items():
        for sup in ("dars", "single_shot"):
            if sup in r:
                cells = [_fmt(r[sup][k], spread=True) for k in cols]
                lines.append(f"| {name} | {sup} | " + " | ".join(cells) + " |")
    for name, s in result["reference"].items():
        cells = [_fmt(s[k]) for k in cols]
        lines.append(f"| {name} | – | " + " | ".join(cells) + " |")
    lines += view_table(result)
    lines += field_table(result)
    flip = result["oracle_verdict_flip"]
    lines += [
        "",
        f"Single-shot test labels name a different best model than the distributional "
        f"labels on {flip['rate']:.1%} of {flip['n_queries']} test queries.",
        "",
    ]
    return "\n".join(lines)


def view_table(result: dict[str, Any]) -> list[str]:
    """Markdown lines: utility and quality of every system under each evaluation view."""
    views = result.get("views") or {}
    if not views:
        return []
    names = [V.FULL, *views]
    counts = [str(result["n_test_queries"])] + [str(views[v]["n_test_queries"]) for v in views]
    lines = [
        "",
        "### DARS evaluation views (same test outcomes)",
        "",
        "`full`: the K×N label; `prompt_variation`: the K variants, one decode each; "
        "`decoding_variation`: the original prompt, N decodes. Test queries scored: "
        + ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
        + ".",
        "",
        "| system | supervision | "
        + " | ".join(f"utility, {n} | quality, {n}" for n in names)
        + " |",
        "|---|---|" + "---|---|" * len(names),
    ]
    rows: list[tuple[str, str, list[dict[str, Any] | None]]] = []
    for name, r in result["routers"].items():
        for sup in ("dars", "single_shot"):
            if sup in r:
                per = [r[sup]] + [views[v]["routers"].get(name, {}).get(sup) for v in views]
                rows.append((name, sup, per))
    for name, s in result["reference"].items():
        rows.append((name, "–", [s] + [views[v]["reference"].get(name) for v in views]))
    for name, sup, per in rows:
        cells = []
        for s in per:
            if s is None:
                cells += ["n/a", "n/a"]
            else:
                spread = sup == "single_shot"
                cells += [_fmt(s["utility"], spread=spread), _fmt(s["quality"], spread=spread)]
        lines.append(f"| {name} | {sup} | " + " | ".join(cells) + " |")
    return lines


def plot_cost_quality(
    scored: dict[str, dict[str, M.Scored]],
    refs: dict[str, M.Scored],
    ref: M.Reference,
    path: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scored)
    ncol = min(4, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False, sharex=True, sharey=True
    )
    single_c, single_q = ref.lm.cost.mean(axis=0), ref.lm.mean.mean(axis=0)
    oc, oq = refs["oracle"].curve
    for ax, name in zip(axes.flat, names, strict=False):
        ax.plot(oc, oq, ":", color="grey", label="oracle")
        ax.scatter(single_c, single_q, marker="x", color="black", s=20, label="single models")
        for sup, style in (("dars", "-o"), ("single_shot", "--s")):
            if sup in scored[name]:
                c, q = scored[name][sup].curve
                ax.plot(c, q, style, markersize=3, label=sup.replace("_", "-"))
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("mean normalised cost")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean quality (μq)")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Cost–quality curves on the test split (λ sweep)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_label_noise(labels: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = labels["single_shot"].notna() & labels["mean"].notna()
    noise = (labels.loc[ok, "single_shot"] - labels.loc[ok, "mean"]).to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.hist(noise, bins=list(np.linspace(-1, 1, 41)), color="tab:blue", edgecolor="white")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("single-shot label − distribution mean")
    ax.set_ylabel("(query, model) pairs")
    mae = float(np.abs(noise).mean()) if len(noise) else float("nan")
    ax.set_title(
        f"Label noise of one sample: {len(noise)} pairs, mean |noise| = {mae:.3f}", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FIELD_COLUMNS = (
    ("aiq", "AIQ"),
    ("apgr_routellm", "APGR"),
    ("cpt_20", "CPT(20%)"),
    ("cpt_50", "CPT(50%)"),
    ("cpt_80", "CPT(80%)"),
    ("imp_max", "ImpMax"),
    ("oracle_gap", "OracleGap"),
    ("arena_score", "arena"),
    ("robustness", "robustness"),
)


def field_table(result: dict[str, Any]) -> list[str]:
    """Markdown lines: the field's metrics of every system, all queries and per-task macro."""
    field = result.get("field")
    if not field:
        return []
    lines = [
        "",
        "### The field's metrics (docs/routers.md)",
        "",
        f"RouteLLM pair: strong = {field['strong_model']}, weak = {field['weak_model']}; "
        "`all`: every test query; `macro`: the mean over tasks.",
        "",
        "| system | supervision | over | " + " | ".join(t for _, t in FIELD_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(FIELD_COLUMNS),
    ]
    for name, sups in field["systems"].items():
        for sup, entry in sups.items():
            for over in ("all", "macro"):
                vals = entry[over]
                cells = [
                    f"{vals[k]:.3f}" if k in vals and np.isfinite(vals[k]) else "n/a"
                    for k, _ in FIELD_COLUMNS
                ]
                lines.append(f"| {name} | {sup} | {over} | " + " | ".join(cells) + " |")
    return lines
