"""False discovery behaviour of `dars diff` on the simulator (known truth).

Null: R pairs of versions built from the same truth with different sampling seeds; every
label change is sampling noise, so any changed pair is a false discovery. Under this
complete null the FDR equals P(at least one pair flagged); we also report the mean share
of pairs flagged and the per-pair type I error of the raw test at 0.05 / 0.01.
Shift: one model's ability moves by `shift` logits in the new version; its pairs are the
true changes. Realised FDR = mean over replicates of V / max(R, 1) (V = flagged pairs of
the other models); power = mean share of the shifted model's pairs flagged, and of those
whose true mean moved by at least 0.1.

Both tests of `dars diff` are measured: `scores` (outcomes on both sides) and `beta`
(labels only: the Beta posteriors' pseudo-counts), plus `beta_exact`, the exact posterior
probability of a difference, which `dars diff` does not use (it is anti-conservative).

    python benchmarks/diff_fdr.py [--replicates 100] [--out benchmarks/results/diff_fdr.json]
    python benchmarks/diff_fdr.py --table     # the Markdown table of docs/diff.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from dars.versioning.compare import bh_flags, label_changes
from dars.versioning.simulate import simulated_truth, simulated_version

ABILITIES = {"strong": 1.0, "mid": 0.0, "weak": -1.0}
QS = (0.01, 0.05, 0.1)


def _true_delta(truth, model: str, shift: float) -> np.ndarray:
    """True change of the mean of each of `model`'s pairs (queries order)."""
    lo = truth.logit[:, truth.models.index(model), :]
    p0, p1 = 1 / (1 + np.exp(-lo)), 1 / (1 + np.exp(-(lo + shift)))
    return (p1 - p0).mean(axis=1)


def exact_beta_p(a1, b1, a2, b2, grid: int = 256) -> np.ndarray:
    """The rejected alternative: p = 2 min(P(Y > X), P(Y < X)) for the two posteriors,
    P(X < Y) = E_Y[F_X(Y)] on a quantile grid of Y."""
    from scipy import stats

    a1, b1, a2, b2 = (np.asarray(x, dtype="float64")[:, None] for x in (a1, b1, a2, b2))
    u = (np.arange(grid) + 0.5) / grid
    below = stats.beta.cdf(stats.beta.ppf(u[None, :], a2, b2), a1, b1).mean(axis=1)
    return np.minimum(1.0, 2.0 * np.minimum(below, 1.0 - below))


def one_diff(truth, *, seed: int, n: int, shift: dict[str, float], method: str) -> dict:
    old = simulated_version(truth, n=n, seed=seed)
    new = simulated_version(truth, n=n, seed=seed + 100_000, shift=shift)
    if method != "scores":
        old.scores = new.scores = None
    pairs = label_changes(old, new, fdr=0.05)
    p = pairs["p_value"].to_numpy()
    if method == "beta_exact":
        p = exact_beta_p(
            pairs["alpha_old"], pairs["beta_old"], pairs["alpha_new"], pairs["beta_new"]
        )
    shifted = pairs["model"].isin(list(shift)).to_numpy()
    out: dict[str, Any] = {"tested": int((~np.isnan(p)).sum()), "pairs": len(p)}
    nulls = p[~shifted & ~np.isnan(p)]
    out["null_p05"] = float((nulls <= 0.05).mean()) if len(nulls) else None
    out["null_p01"] = float((nulls <= 0.01).mean()) if len(nulls) else None
    out["null_p001"] = float((nulls <= 0.001).mean()) if len(nulls) else None
    for q in QS:
        _, flags = bh_flags(p, q)
        v = int((flags & ~shifted).sum())
        r = int(flags.sum())
        out[f"q{q}"] = {
            "flagged": r,
            "false": v,
            "fdp": v / max(r, 1),
            "share": r / max(out["tested"], 1),
            "power": float(flags[shifted].mean()) if shifted.any() else None,
        }
        if shift:
            ((model, d),) = shift.items()
            big = np.abs(_true_delta(truth, model, d)) >= 0.1
            order = pairs.loc[shifted, "query_id"].to_numpy()
            idx = np.searchsorted(truth.query_ids, order)
            out[f"q{q}"]["power_delta_ge_0.1"] = float(flags[shifted][big[idx]].mean())
    return out


def summarise(runs: list[dict], shift: bool) -> dict:
    s = {
        "replicates": len(runs),
        "pairs": runs[0]["pairs"],
        "tested_mean": float(np.mean([r["tested"] for r in runs])),
        "null_type1_at_0.05": float(np.mean([r["null_p05"] for r in runs])),
        "null_type1_at_0.01": float(np.mean([r["null_p01"] for r in runs])),
        "null_type1_at_0.001": float(np.mean([r["null_p001"] for r in runs])),
    }
    for q in QS:
        k = f"q{q}"
        fdp = np.array([r[k]["fdp"] for r in runs])
        row = {
            "nominal_q": q,
            "realised_fdr": float(fdp.mean()),
            "fdr_se": float(fdp.std(ddof=1) / np.sqrt(len(fdp))),
            "share_flagged_mean": float(np.mean([r[k]["share"] for r in runs])),
            "share_flagged_max": float(np.max([r[k]["share"] for r in runs])),
            "any_false_discovery": float(np.mean([r[k]["false"] > 0 for r in runs])),
        }
        if shift:
            row["power"] = float(np.mean([r[k]["power"] for r in runs]))
            row["power_delta_ge_0.1"] = float(np.mean([r[k]["power_delta_ge_0.1"] for r in runs]))
        s[k] = row
    return s


def table(result: dict, q: float = 0.05) -> str:
    """The Markdown table of docs/diff.md (one q), from a result JSON."""
    rows = [
        f"| test | versions | realised FDR at q = {q:g} | P(any false flag) | share flagged "
        "| power | power, Δ ≥ 0.1 | null pairs p ≤ 0.05 / 0.01 / 0.001 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cases = [(m, "null", result["null"][m]) for m in result["null"]]
    cases += [
        (k.split("_mid")[0], f"shift {k.split('_')[-1]}", v) for k, v in result["shift"].items()
    ]
    for method, what, s in cases:
        r = s[f"q{q}"]
        power = f"{r['power']:.3f}" if "power" in r else "-"
        big = f"{r['power_delta_ge_0.1']:.3f}" if "power" in r else "-"
        type1 = " / ".join(f"{s[f'null_type1_at_{a}']:.4f}" for a in ("0.05", "0.01", "0.001"))
        rows.append(
            f"| {method} | {what} | {r['realised_fdr']:.3f} ± {r['fdr_se']:.3f} | "
            f"{r['any_false_discovery']:.2f} | {r['share_flagged_mean']:.4f} | {power} | {big} "
            f"| {type1} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--shift-replicates", type=int, default=30)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/diff_fdr.json")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    a = ap.parse_args()
    if a.table:
        print(table(json.loads(Path(a.out).read_text())))
        return
    t0 = time.perf_counter()
    truth = simulated_truth(n_queries=a.queries, abilities=ABILITIES, k=a.k)
    result: dict[str, Any] = {
        "command": "python benchmarks/diff_fdr.py "
        f"--replicates {a.replicates} --shift-replicates {a.shift_replicates} "
        f"--queries {a.queries} --k {a.k} --n {a.n}",
        "setup": {
            "queries": a.queries,
            "models": ABILITIES,
            "k_variants": a.k,
            "n_per_variant": a.n,
            "observations_per_pair": a.k * a.n,
            "simulator": "dars.backends.simulated.true_probability, default SimulatorSettings",
        },
        "null": {},
        "shift": {},
    }
    for method in ("scores", "beta", "beta_exact"):
        runs = [
            one_diff(truth, seed=s, n=a.n, shift={}, method=method) for s in range(a.replicates)
        ]
        result["null"][method] = summarise(runs, shift=False)
        for d in (1.0, 2.0, 3.0):
            runs = [
                one_diff(truth, seed=10_000 + s, n=a.n, shift={"mid": d}, method=method)
                for s in range(a.shift_replicates)
            ]
            result["shift"][f"{method}_mid+{d:g}"] = summarise(runs, shift=True)
        print(method, json.dumps(result["null"][method]["q0.05"]))
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["loadavg"] = os.getloadavg()
    import scipy

    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {a.out} ({result['wall_s']} s)")


if __name__ == "__main__":
    main()
