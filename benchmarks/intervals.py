"""Benchmark: coverage of the label intervals for both estimands (issues 12 and 16).

    .venv/bin/python benchmarks/intervals.py            # full grid, 20,000 pairs per cell
    .venv/bin/python benchmarks/intervals.py --pairs 2000 --out /tmp/x.json   # quick
    .venv/bin/python benchmarks/intervals.py --table   # markdown table from the results

Simulation with known truth, in numpy (the same model as the `simulated` backend):
each pair has a query logit ~ Normal(0, 2) (the simulator's `query_sd`); each of its K
rewrites has success probability p_r = sigmoid(logit + e_r), e_r ~ Normal(0, sd); each
rewrite gets N Bernoulli(p_r) scores. A share `--boundary` of the pairs (default 40%,
half at 0 and half at 1) has p exactly 0 or 1 on every rewrite, as polarised real data
does. The per-pair inputs of the intervals (n, sum_s, var_within, var_between,
n_variants, sum of n_i^2) are computed exactly as `dars aggregate` computes them.

Estimands:
- `drawn`: the mean of p_r over the K drawn rewrites (what the fixed-variant interval
  `ci_low_fixed/ci_high_fixed` is for);
- `population`: the mean of sigmoid(logit + e) over all rewrites, e ~ Normal(0, sd),
  by 80-point Gauss-Hermite quadrature (what `ci_low/ci_high` is for).

Intervals (all 95%, Jeffreys prior, boundary-corrected):
- `fixed`: `jeffreys_interval` (the label's `ci_low_fixed/ci_high_fixed`);
- `kish`: `rewrite_interval(df_correction=False)`, the plain Kish design effect;
- `welch`: Jeffreys on n / deff * (z / t_df)^2, df = (K - 1) ((A + B) / B)^2
  (Welch-Satterthwaite with the within part A treated as known);
- `kg_k1`: Jeffreys on n / deff * (z / t_{K-1})^2 whenever deff > 1 (Korn & Graubard's
  df = number of clusters - 1);
- `rewrite`: `rewrite_interval`: the between part B of the variance of the mean scaled by
  (t_{K-1} / z)^2 before forming deff (the label's `ci_low/ci_high`).

The grid is run twice: with query logit sd 2 (the target grid) and, as a sensitivity
check, with query logit sd 1 (fewer pairs near 0 or 1, where Jeffreys over-covers).

Reported per cell and interval: coverage of each estimand (overall, at the boundary
pairs, at the others), mean width, and the share of intervals containing their own
observed mean. Target (issue 16): 93-98% coverage of the population mean in every cell.
Also a timing of the intervals at 1M pairs (0/1 scores and fractional scores), each
alone and both through `label_intervals` (what `dars aggregate` calls).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy import special

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "pipeline"))

from dars.labels import intervals  # noqa: E402

SDS = (0.0, 0.5, 0.8, 1.5)
KS = (3, 5)
NS = (3, 5)
QUERY_SD = 2.0
SENSITIVITY_QUERY_SD = 1.0
LEVEL = 0.95
TARGET = (0.93, 0.98)
KINDS = ("fixed", "kish", "welch", "kg_k1", "rewrite")


def simulate(
    rng: np.random.Generator,
    *,
    pairs: int,
    k: int,
    n: int,
    sd: float,
    boundary: float,
    query_sd: float = QUERY_SD,
) -> dict[str, np.ndarray]:
    """Scores of `pairs` pairs (K rewrites x N samples) and both true means per pair."""
    logit = rng.normal(0.0, query_sd, pairs)
    p = special.expit(logit[:, None] + rng.normal(0.0, sd, (pairs, k)))
    is_boundary = np.arange(pairs) < int(round(boundary * pairs))
    edge = (rng.random(pairs) < 0.5).astype("float64")
    p[is_boundary] = edge[is_boundary, None]
    y = rng.binomial(n, p).astype("float64")  # successes per rewrite
    x, w = np.polynomial.hermite_e.hermegauss(80)
    pop = special.expit(logit[:, None] + sd * x[None, :]) @ (w / w.sum())
    pop[is_boundary] = edge[is_boundary]
    return {"y": y, "n_i": np.full_like(y, n), "drawn": p.mean(1), "population": pop,
            "boundary": is_boundary}  # fmt: skip


def pair_inputs(y: np.ndarray, n_i: np.ndarray) -> dict[str, np.ndarray]:
    """The per-pair group-by outputs `dars aggregate` feeds the intervals (0/1 scores)."""
    n = n_i.sum(1)
    sum_s = y.sum(1)
    mean = sum_s / n
    mean_i = y / n_i
    var_i = mean_i * (1.0 - mean_i)  # ddof = 0 variance of 0/1 scores
    return {
        "n": n,
        "sum_s": sum_s,
        "var_within": (n_i * var_i).sum(1) / n,
        "var_between": (n_i * (mean_i - mean[:, None]) ** 2).sum(1) / n,
        "n_variants": np.full(len(n), y.shape[1]),
        "sum_n2": (n_i**2).sum(1),
    }


def _scaled_jeffreys(d: dict[str, np.ndarray], f: np.ndarray):
    return intervals.jeffreys_interval(d["sum_s"] * f, d["n"] * f, level=LEVEL)


def compute(kind: str, d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One of KINDS; the alternatives that were measured and not chosen are built here
    from `design_effect` (Jeffreys on counts scaled by f, boundary rule included)."""
    if kind == "fixed":
        return intervals.jeffreys_interval(d["sum_s"], d["n"], level=LEVEL)
    if kind in ("kish", "rewrite"):
        return intervals.rewrite_interval(**d, level=LEVEL, df_correction=kind == "rewrite")
    inputs = {k: v for k, v in d.items() if k != "sum_s"}
    deff = intervals.design_effect(**inputs)
    q = 1 - (1 - LEVEL) / 2
    z, k = special.ndtri(q), d["n_variants"]
    if kind == "kg_k1":  # Korn & Graubard: n_eff * (z / t_{K-1})^2 whenever deff > 1
        t = special.stdtrit(np.maximum(k - 1, 1), q)
        return _scaled_jeffreys(d, np.where(deff > 1, (z / t) ** 2 / deff, 1.0))
    if kind == "welch":  # (z / t_df)^2 / deff, df Welch-Satterthwaite treating A as known
        both = intervals.design_effect(**inputs, between_factor=2.0)
        # deff(B scaled by 2) - deff = n B / (sigma_w^2 + sigma_b^2): the share of B in A + B
        b_share = (both - deff) / deff  # B / (A + B)
        with np.errstate(divide="ignore"):
            df = np.where(b_share > 0, (k - 1) / b_share**2, np.inf)
        t = np.where(np.isfinite(df), special.stdtrit(np.where(np.isfinite(df), df, 1), q), z)
        return _scaled_jeffreys(d, (z / t) ** 2 / deff)
    raise ValueError(f"unknown interval kind {kind!r}; valid: {', '.join(KINDS)}")


def cell(
    rng: np.random.Generator,
    *,
    pairs: int,
    k: int,
    n: int,
    sd: float,
    boundary: float,
    query_sd: float = QUERY_SD,
) -> dict[str, Any]:
    sim = simulate(rng, pairs=pairs, k=k, n=n, sd=sd, boundary=boundary, query_sd=query_sd)
    d = pair_inputs(sim["y"], sim["n_i"])
    mean = d["sum_s"] / d["n"]
    b = sim["boundary"]
    out: dict[str, Any] = {"K": k, "N": n, "sd": sd, "pairs": pairs}
    for kind in KINDS:
        lo, hi = compute(kind, d)
        res: dict[str, Any] = {
            "width": float(np.mean(hi - lo)),
            "contains_mean": float(np.mean((lo <= mean) & (mean <= hi))),
        }
        for est in ("population", "drawn"):
            cov = (lo <= sim[est]) & (sim[est] <= hi)
            res[f"coverage_{est}"] = float(cov.mean())
            res[f"coverage_{est}_boundary"] = float(cov[b].mean()) if b.any() else None
            res[f"coverage_{est}_interior"] = float(cov[~b].mean())
        out[kind] = res
    return out


def timing(rng: np.random.Generator, pairs: int) -> dict[str, float]:
    sim = simulate(rng, pairs=pairs, k=5, n=5, sd=0.8, boundary=0.4)
    d: dict[str, Any] = pair_inputs(sim["y"], sim["n_i"])
    frac = dict(d, sum_s=d["sum_s"] * rng.uniform(0.8, 1.0, pairs))  # fractional (F1-like)
    out: dict[str, float] = {"pairs": pairs}
    for name, dd in (("binary", d), ("fractional", frac)):
        for kind in ("fixed", "rewrite"):
            t0 = time.perf_counter()
            compute(kind, dd)
            out[f"{kind}_{name}_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        intervals.label_intervals(**dd, level=LEVEL)  # both, as `dars aggregate` calls it
        out[f"both_{name}_s"] = round(time.perf_counter() - t0, 3)
    return out


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"K{c['K']} N{c['N']}\nsd {c['sd']}" for c in cells]
    x = np.arange(len(cells))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    markers = (("fixed", "s"), ("kish", "^"), ("welch", "<"), ("kg_k1", "v"), ("rewrite", "o"))
    for i, (kind, marker) in enumerate(markers):
        name = {"fixed": "fixed (ci_*_fixed)", "rewrite": "chosen (ci_low/ci_high)"}.get(kind, kind)
        ax.plot(x + (i - 2) * 0.1, [100 * c[kind]["coverage_population"] for c in cells],
                marker, label=f"{name}: population mean")  # fmt: skip
    ax.plot(x, [100 * c["fixed"]["coverage_drawn"] for c in cells], "kx",
            label="fixed: mean of drawn rewrites")  # fmt: skip
    ax.axhspan(100 * TARGET[0], 100 * TARGET[1], color="green", alpha=0.1, label="target 93-98%")
    ax.axhline(100 * LEVEL, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("coverage (%)")
    ax.set_title("95% label intervals: coverage per cell (40% of pairs at p in {0, 1})")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(cells: list[dict[str, Any]]) -> str:
    """The docs' coverage table (docs/intervals.md), from a results file's cells."""
    pct = "{:.1f}%".format
    lines = [
        "| K | N | rewrite sd | `ci_low/ci_high`: population | width | "
        "`*_fixed`: population | `*_fixed`: drawn rewrites | width | population, not chosen: "
        "plain Kish | Welch df | K&G df = K−1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        r, f, k, g, w = c["rewrite"], c["fixed"], c["kish"], c["kg_k1"], c["welch"]
        lines.append(
            f"| {c['K']} | {c['N']} | {c['sd']} | {pct(100 * r['coverage_population'])} | "
            f"{r['width']:.3f} | {pct(100 * f['coverage_population'])} | "
            f"{pct(100 * f['coverage_drawn'])} | {f['width']:.3f} | "
            f"{pct(100 * k['coverage_population'])} | {pct(100 * w['coverage_population'])} | "
            f"{pct(100 * g['coverage_population'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=20_000, help="pairs per cell")
    ap.add_argument("--boundary", type=float, default=0.4, help="share of pairs at p in {0,1}")
    ap.add_argument("--timing-pairs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/intervals.json"))
    ap.add_argument("--png", default=None, help="plot path (default: --out with .png)")
    ap.add_argument("--table", action="store_true", help="print the docs table from --out")
    a = ap.parse_args(argv)
    if a.table:
        result = json.loads(Path(a.out).read_text(encoding="utf-8"))
        print(f"Query logit sd {result['settings']['query_logit_sd']} (target grid):\n")
        print(table(result["cells"]))
        print(f"\nSensitivity, query logit sd {result['sensitivity']['query_logit_sd']}:\n")
        print(table(result["sensitivity"]["cells"]))
        t, load = result["timing_1m"], result["loadavg"][0]
        print(f"\nSeconds for {t['pairs']:,} pairs (load average {load:.1f} on "
              f"{result['cpus']} CPUs):\n")  # fmt: skip
        print("| scores | `ci_*_fixed` | `ci_low/ci_high` | both (`label_intervals`) |")
        print("|---|---:|---:|---:|")
        for name in ("binary", "fractional"):
            print(f"| {name} | {t[f'fixed_{name}_s']:.1f} s | {t[f'rewrite_{name}_s']:.1f} s "
                  f"| {t[f'both_{name}_s']:.1f} s |")  # fmt: skip
        return 0
    t0 = time.perf_counter()
    grid = [(k, n, sd) for k in KS for n in NS for sd in SDS]
    cells = []
    for i, (k, n, sd) in enumerate(grid):
        rng = np.random.default_rng([a.seed, i])
        cells.append(cell(rng, pairs=a.pairs, k=k, n=n, sd=sd, boundary=a.boundary))
        r = cells[-1]
        print(
            f"K={k} N={n} sd={sd:<3}: population "
            + "  ".join(
                f"{kind} {100 * r[kind]['coverage_population']:.1f}%" for kind in KINDS
            )  # fmt: skip
            + f" | width rewrite {r['rewrite']['width']:.3f} fixed {r['fixed']['width']:.3f}",
            flush=True,
        )
    # sensitivity: queries of middling difficulty (query logit sd 1 instead of 2)
    sens = [
        cell(
            np.random.default_rng([a.seed, 50 + i]),
            pairs=a.pairs,
            k=k,
            n=n,
            sd=sd,
            boundary=a.boundary,
            query_sd=SENSITIVITY_QUERY_SD,
        )  # fmt: skip
        for i, (k, n, sd) in enumerate(grid)
    ]
    pop = [c["rewrite"]["coverage_population"] for c in cells]
    lo_t, hi_t = TARGET
    summary = {
        kind: {
            "coverage_population_min": min(c[kind]["coverage_population"] for c in cells),
            "coverage_population_max": max(c[kind]["coverage_population"] for c in cells),
            "coverage_drawn_min": min(c[kind]["coverage_drawn"] for c in cells),
            "coverage_drawn_max": max(c[kind]["coverage_drawn"] for c in cells),
            "contains_mean_min": min(c[kind]["contains_mean"] for c in cells),
        }
        for kind in KINDS
    }
    result = {
        "benchmark": "intervals",
        "command": "python benchmarks/intervals.py " + " ".join(argv or sys.argv[1:]),
        "settings": {
            "pairs_per_cell": a.pairs,
            "boundary_share": a.boundary,
            "query_logit_sd": QUERY_SD,
            "level": LEVEL,
            "prior": "Jeffreys Beta(0.5, 0.5)",
            "seed": a.seed,
            "grid": {"K": KS, "N": NS, "rewrite_sd": SDS},
        },
        "target": {"coverage_population": TARGET},
        "target_met": bool(all(lo_t <= c <= hi_t for c in pop)),
        "target_miss_pp": round(
            100 * max(0.0, max(lo_t - min(pop), max(pop) - hi_t)), 2
        ),  # worst distance outside the band, percentage points
        "summary": summary,
        "cells": cells,
        "sensitivity": {
            "query_logit_sd": SENSITIVITY_QUERY_SD,
            "summary": {
                kind: {
                    "coverage_population_min": min(c[kind]["coverage_population"] for c in sens),
                    "coverage_population_max": max(c[kind]["coverage_population"] for c in sens),
                }
                for kind in KINDS
            },
            "cells": sens,
        },
        "timing_1m": timing(np.random.default_rng([a.seed, 99]), a.timing_pairs),
        "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },  # fmt: skip
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    png = Path(a.png) if a.png else out.with_suffix(".png")
    plot(cells, png)
    print(json.dumps({k: result[k] for k in ("target_met", "target_miss_pp", "summary")}, indent=1))
    print(f"-> {out}, {png} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
