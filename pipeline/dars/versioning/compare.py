"""The diff of two dataset versions: shape, labels, decisions, splits, routers.

Labels. For each (query, model) pair present in both versions the change of the label
mean is tested two-sidedly against sampling noise:

* `scores` (both versions hold outcomes for the pair): the two samples of valid scores
  are compared with a permutation-studentised t statistic. Under H0 the pooled scores
  are exchangeable between the versions, so Var(mean_new - mean_old) = S^2 (1/n1 + 1/n2)
  with S^2 the variance (ddof 1) of the pooled sample; t = diff / sqrt(that) is referred
  to the standard normal (the normal approximation of the permutation test). It needs
  only each side's count, sum and sum of squares, works for fractional scores (F1),
  gives p = 1 when every score is equal, and is conservative when a label mixes rewrites
  of different difficulty (ignoring the stratification can only widen the null
  variance). At very small n the normal tail is too light (0/6 vs 6/6: p = 0.0009, the
  exact permutation p is 0.0022); Student t with n1 + n2 - 2 df was tried too and is
  more conservative still at the DARS size (K x N = 25), with less power, so the normal
  reference is used (its measured calibration: benchmarks/results/diff_fdr.json).
* `beta` (a side has no outcomes for the pair, e.g. a labels-only version): the two Beta
  posteriors Beta(a1, b1) and Beta(a2, b2) of the labels, by a normal approximation of
  the difference of their means with the variance pooled under H0: the same statistic
  on the posterior pseudo-counts (a successes out of a + b), so a labels-only diff and a
  diff with outcomes agree. The prior's pseudo-counts pull 0/n and n/n towards 1/2,
  which keeps the test calibrated at the boundary.
* `untestable`: a side has no valid observation (n = 0) or n1 + n2 < 3.

The p-values of all testable pairs are adjusted together with Benjamini-Hochberg
(`scipy.stats.false_discovery_control`); a pair is *changed* when its adjusted p-value is
at most q (`--fdr`, default 0.05). Both tests are conservative (discrete scores, and
the rewrites' stratification is ignored), so the realised FDR is below q; measured in
benchmarks/diff_fdr.py (results/diff_fdr.json), next to the exact posterior probability
2 min(P(Y > X), P(Y < X)) of the Beta posteriors, which is closer to nominal and more
powerful there but is a Bayesian tail probability whose calibration depends on the prior.

Decisions: per query in both versions, the best model by utility among the models both
versions hold; a change of best model is *significant* when the label of the old or of
the new best model changed significantly for that query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from dars.core.errors import ContractVersionMismatchError
from dars.evaluation.metrics import HIGHER_IS_BETTER, METRICS
from dars.versioning.sources import Version

DEFAULT_FDR = 0.05
TOP = 5  # largest changes listed per model and per task
LIST_LIMIT = 20  # ids listed per added/removed/moved set
HEADLINE = METRICS  # router metrics compared between versions


# ---------------------------------------------------------------------------- tests


def score_test(
    n1: np.ndarray, s1: np.ndarray, q1: np.ndarray, n2: np.ndarray, s2: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(t, two-sided p) from per-side count, sum and sum of squares; NaN where untestable."""
    n1, s1, q1, n2, s2, q2 = (np.asarray(a, dtype="float64") for a in (n1, s1, q1, n2, s2, q2))
    n = n1 + n2
    ok = (n1 > 0) & (n2 > 0) & (n >= 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = s2 / n2 - s1 / n1
        ss = q1 + q2 - (s1 + s2) ** 2 / n
        var = np.clip(ss, 0.0, None) / (n - 1) * (1.0 / n1 + 1.0 / n2)
        t = diff / np.sqrt(var)
        p = 2.0 * stats.norm.sf(np.abs(t))
    flat = ok & ~(var > 1e-15)  # every pooled score equal: no evidence of change
    t = np.where(flat, 0.0, t)
    p = np.where(flat, 1.0, p)
    return np.where(ok, t, np.nan), np.where(ok, p, np.nan)


def beta_test(
    a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(t, two-sided p) for two Beta posteriors Beta(a1, b1), Beta(a2, b2): `score_test` on
    their pseudo-counts (a successes in a + b binary trials), i.e. the normal approximation
    of the difference of the posterior means with its variance pooled under H0."""
    a1, b1, a2, b2 = (np.asarray(a, dtype="float64") for a in (a1, b1, a2, b2))
    ok = (a1 > 0) & (b1 > 0) & (a2 > 0) & (b2 > 0)
    a1, b1, a2, b2 = (np.where(ok, a, np.nan) for a in (a1, b1, a2, b2))
    return score_test(a1 + b1, a1, a1, a2 + b2, a2, a2)


def bh_flags(p: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN) and flags adj <= q."""
    p = np.asarray(p, dtype="float64")
    adj = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adj[tested] = stats.false_discovery_control(p[tested], method="bh")
    return adj, np.where(tested, adj <= q, False)


def label_changes(old: Version, new: Version, *, fdr: float = DEFAULT_FDR) -> pd.DataFrame:
    """One row per (query, model) pair in both versions: means, delta, method, p, flag."""
    keys = ["query_id", "model"]
    cols = keys + ["task", "n", "mean", "alpha", "beta", "utility"]
    pairs = old.labels[cols].merge(new.labels[cols], on=keys, suffixes=("_old", "_new"))
    pairs["task"] = pairs["task_new"].fillna(pairs["task_old"])
    pairs = pairs.drop(columns=["task_old", "task_new"])
    pairs["delta"] = pairs["mean_new"] - pairs["mean_old"]
    pairs["method"] = "untestable"
    pairs["stat"] = np.nan
    pairs["p_value"] = np.nan
    if old.scores is not None and new.scores is not None:
        st = ["query_id", "model", "count", "sum", "sumsq"]
        pairs = pairs.merge(old.scores[st], on=keys, how="left").merge(
            new.scores[st], on=keys, how="left", suffixes=("_old", "_new")
        )
        t, p = score_test(
            pairs["count_old"].fillna(0),
            pairs["sum_old"].fillna(0),
            pairs["sumsq_old"].fillna(0),
            pairs["count_new"].fillna(0),
            pairs["sum_new"].fillna(0),
            pairs["sumsq_new"].fillna(0),
        )
        scored = ~np.isnan(p)
        pairs.loc[scored, "method"] = "scores"
        pairs.loc[scored, "stat"] = t[scored]
        pairs.loc[scored, "p_value"] = p[scored]
        pairs = pairs.drop(columns=[c for c in pairs.columns if c.startswith(("count_", "sum"))])
    # the Beta posteriors where outcomes are missing on a side (or everywhere)
    rest = (pairs["method"] == "untestable") & (pairs["n_old"] > 0) & (pairs["n_new"] > 0)
    if rest.any():
        sub = pairs.loc[rest]
        t, p = beta_test(sub["alpha_old"], sub["beta_old"], sub["alpha_new"], sub["beta_new"])
        tested = ~np.isnan(p)
        idx = sub.index[tested]
        pairs.loc[idx, "method"] = "beta"
        pairs.loc[idx, "stat"] = t[tested]
        pairs.loc[idx, "p_value"] = p[tested]
    pairs["p_adjusted"], pairs["changed"] = bh_flags(pairs["p_value"].to_numpy(), fdr)
    return pairs.sort_values(keys, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------- sections


def _diff_sets(old: set[Any], new: set[Any]) -> dict[str, Any]:
    added, removed = sorted(new - old), sorted(old - new)
    return {
        "old": len(old),
        "new": len(new),
        "added": len(added),
        "removed": len(removed),
        "added_examples": added[:LIST_LIMIT],
        "removed_examples": removed[:LIST_LIMIT],
    }


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are kept as values."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if str(k).startswith("__"):
                continue
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def params_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """`dvc params diff`'s shape for params dicts: key -> {old, new} for changed keys."""
    if old is None or new is None:
        return {}
    a, b = flatten(old), flatten(new)
    return {
        k: {"old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    }


def dvc_params_diff(old: Version, new: Version) -> dict[str, Any] | None:
    """`dvc params diff OLD NEW --json` when both versions are commits of one repo."""
    import subprocess
    import sys

    if not (old.kind == new.kind == "git" and old.git_root == new.git_root and old.git_root):
        return None
    if old.git_commit is None or new.git_commit is None:
        return None
    r = subprocess.run(
        [sys.executable, "-m", "dvc", "params", "diff", old.git_commit, new.git_commit,
         "--json"],
        cwd=old.git_root, capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        return None
    data = yaml.safe_load(r.stdout or "{}") or {}
    out: dict[str, Any] = {}
    for file, keys in data.items():
        for key, change in (keys or {}).items():
            if change.get("old") != change.get("new"):
                out[key if file == "params.yaml" else f"{file}:{key}"] = {
                    "old": change.get("old"),
                    "new": change.get("new"),
                }
    return out


def generators(v: Version) -> dict[str, Any]:
    return {
        "package_version": v.package_version,
        "contract_version": v.contract_version,
        "models": v.generators,
    }


def shape(old: Version, new: Version) -> dict[str, Any]:
    via_dvc = dvc_params_diff(old, new)
    tasks_old = old.queries.groupby("task").size().to_dict()
    tasks_new = new.queries.groupby("task").size().to_dict()
    return {
        "queries": _diff_sets(set(old.queries["query_id"]), set(new.queries["query_id"])),
        "models": _diff_sets(set(old.models), set(new.models)),
        "tasks": {
            **_diff_sets(set(tasks_old), set(tasks_new)),
            "queries_per_task": {
                t: {"old": tasks_old.get(t, 0), "new": tasks_new.get(t, 0)}
                for t in sorted(set(tasks_old) | set(tasks_new))
            },
        },
        "splits": {
            **_diff_sets(set(old.splits["split"]), set(new.splits["split"])),
            "queries_per_split": {
                s: {
                    "old": int((old.splits["split"] == s).sum()),
                    "new": int((new.splits["split"] == s).sum()),
                }
                for s in sorted(set(old.splits["split"]) | set(new.splits["split"]))
            },
        },
        "params": {
            "source": "dvc params diff" if via_dvc is not None else "manifest params",
            "changed": via_dvc if via_dvc is not None else params_diff(old.params, new.params),
        },
        "dataset_version": {"old": old.dataset_version, "new": new.dataset_version},
        "contract_version": {"old": old.contract_version, "new": new.contract_version},
        "generators": {"old": generators(old), "new": generators(new)},
    }


def _top(df: pd.DataFrame, k: int = TOP) -> list[dict[str, Any]]:
    order = df["delta"].abs().sort_values(ascending=False, kind="stable").index[:k]
    return [
        {
            "query_id": r.query_id,
            "model": r.model,
            "task": r.task,
            "mean_old": r.mean_old,
            "mean_new": r.mean_new,
            "delta": r.delta,
            "p_adjusted": r.p_adjusted,
            "changed": bool(r.changed),
        }
        for r in df.loc[order].itertuples()
    ]


def _group(pairs: pd.DataFrame, by: str) -> dict[str, Any]:
    out = {}
    for name, g in pairs.groupby(by, sort=True, dropna=False):
        tested = int((g["method"] != "untestable").sum())
        changed = int(g["changed"].sum())
        out[str(name)] = {
            "pairs": int(len(g)),
            "tested": tested,
            "changed": changed,
            "share": changed / tested if tested else None,
            "mean_delta": float(g["delta"].mean()) if len(g) else None,
            "largest": _top(g),
        }
    return out


def labels_section(pairs: pd.DataFrame, *, fdr: float) -> dict[str, Any]:
    tested = int((pairs["method"] != "untestable").sum())
    changed = int(pairs["changed"].sum())
    return {
        "fdr": fdr,
        "pairs": int(len(pairs)),
        "tested": tested,
        "untestable": int(len(pairs)) - tested,
        "methods": {k: int(v) for k, v in pairs["method"].value_counts().sort_index().items()},
        "changed": changed,
        "share": changed / tested if tested else None,
        "up": int((pairs["changed"] & (pairs["delta"] > 0)).sum()),
        "down": int((pairs["changed"] & (pairs["delta"] < 0)).sum()),
        "by_model": _group(pairs, "model"),
        "by_task": _group(pairs, "task"),
        "largest": _top(pairs, 10),
    }


def _best(labels: pd.DataFrame, models: list[str]) -> pd.Series:
    """query_id -> the model with the highest utility (ties: first by name)."""
    u = labels[labels["model"].isin(models)].pivot(
        index="query_id", columns="model", values="utility"
    )
    u = u.reindex(columns=sorted(models)).dropna(how="all")
    return u.idxmax(axis=1)


def decisions_section(old: Version, new: Version, pairs: pd.DataFrame) -> dict[str, Any]:
    common = sorted(set(old.models) & set(new.models))
    b_old, b_new = _best(old.labels, common), _best(new.labels, common)
    both = b_old.index.intersection(b_new.index)
    moved = both[(b_old[both] != b_new[both]).to_numpy()]
    flagged = set(map(tuple, pairs.loc[pairs["changed"], ["query_id", "model"]].to_numpy()))
    rows = []
    for q in moved:
        sig = (q, b_old[q]) in flagged or (q, b_new[q]) in flagged
        rows.append({"query_id": q, "old": b_old[q], "new": b_new[q], "significant": sig})
    transitions: dict[str, int] = {}
    for r in rows:
        key = f"{r['old']} -> {r['new']}"
        transitions[key] = transitions.get(key, 0) + 1
    return {
        "models_compared": common,
        "queries": int(len(both)),
        "changed": len(rows),
        "share": len(rows) / len(both) if len(both) else None,
        "significant": sum(r["significant"] for r in rows),
        "transitions": dict(sorted(transitions.items(), key=lambda kv: (-kv[1], kv[0]))),
        "examples": sorted(rows, key=lambda r: (not r["significant"], r["query_id"]))[:LIST_LIMIT],
    }


def splits_section(old: Version, new: Version) -> dict[str, Any]:
    m = old.splits.merge(new.splits, on="query_id", suffixes=("_old", "_new"))
    moved = m[m["split_old"] != m["split_new"]]
    transitions = (
        moved.groupby(["split_old", "split_new"]).size().sort_values(ascending=False)
        if len(moved)
        else pd.Series(dtype="int64")
    )
    return {
        "queries": int(len(m)),
        "moved": int(len(moved)),
        "share": len(moved) / len(m) if len(m) else None,
        "transitions": {f"{a} -> {b}": int(n) for (a, b), n in transitions.items()},
        "examples": [
            {"query_id": r.query_id, "old": r.split_old, "new": r.split_new}
            for r in moved.sort_values("query_id").head(LIST_LIMIT).itertuples()
        ],
        "warning": (
            f"{len(moved)} {'query' if len(moved) == 1 else 'queries'} moved between splits: "
            "router results on the two versions are not comparable (a query may now be "
            "tested on after being trained on)"
            if len(moved)
            else None
        ),
    }


def _metric_leaves(obj: Any, path: str = "") -> dict[str, dict[str, dict[str, Any]]]:
    """'routers/knn/dars' -> {metric: {value, ci_low, ci_high}} for the headline metrics."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if not isinstance(obj, Mapping):
        return out
    cells = {
        k: v
        for k, v in obj.items()
        if k in HEADLINE and isinstance(v, Mapping) and isinstance(v.get("value"), int | float)
    }
    if cells:
        out[path] = {
            k: {x: v.get(x) for x in ("value", "ci_low", "ci_high")} for k, v in cells.items()
        }
    for k, v in obj.items():
        if k not in cells:
            out.update(_metric_leaves(v, f"{path}/{k}" if path else str(k)))
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def routers_section(old: Version, new: Version) -> dict[str, Any] | None:
    """Per system and headline metric: old, new, change, and an approximate interval of
    the change: +- sqrt(h_old^2 + h_new^2) from the two half-widths (the versions are
    independent samples; the per-version intervals are paired-bootstrap intervals)."""
    if old.router_metrics is None or new.router_metrics is None:
        return None
    a, b = _metric_leaves(old.router_metrics), _metric_leaves(new.router_metrics)
    systems = {}
    for system in sorted(set(a) & set(b)):
        rows = {}
        for metric in [m for m in HEADLINE if m in a[system] and m in b[system]]:
            o, n = a[system][metric], b[system][metric]
            row: dict[str, Any] = {"old": o["value"], "new": n["value"]}
            if _finite(o["value"]) and _finite(n["value"]):
                d = n["value"] - o["value"]
                row["delta"] = d
                bounds = (o["ci_low"], o["ci_high"], n["ci_low"], n["ci_high"])
                if all(_finite(x) for x in bounds):
                    h = math.hypot(
                        (o["ci_high"] - o["ci_low"]) / 2, (n["ci_high"] - n["ci_low"]) / 2
                    )
                    row["ci_low"], row["ci_high"] = d - h, d + h
                    row["excludes_zero"] = bool(d - h > 0 or d + h < 0)
                row["better"] = (d > 0) == HIGHER_IS_BETTER.get(metric, True) if d else None
            rows[metric] = row
        systems[system] = rows
    return {
        "systems": systems,
        "only_old": sorted(set(a) - set(b)),
        "only_new": sorted(set(b) - set(a)),
    }


# ---------------------------------------------------------------------------- diff


def check_contract(old: Version, new: Version) -> None:
    if (
        old.contract_version
        and new.contract_version
        and old.contract_version != new.contract_version
    ):
        raise ContractVersionMismatchError(
            f"{old.name} follows data contract v{old.contract_version} and {new.name} "
            f"v{new.contract_version}; labels of different contract versions are not "
            "compared (rebuild one of them, or import it into the other contract)"
        )


def diff_versions(old: Version, new: Version, *, fdr: float = DEFAULT_FDR) -> dict[str, Any]:
    """The whole diff as a JSON-ready dict (see the module docstring for the tests)."""
    check_contract(old, new)
    pairs = label_changes(old, new, fdr=fdr)
    return {
        "old": {"spec": old.spec, "kind": old.kind, "name": old.name, "commit": old.git_commit,
                "manifest_sha256": old.manifest_sha256},
        "new": {"spec": new.spec, "kind": new.kind, "name": new.name, "commit": new.git_commit,
                "manifest_sha256": new.manifest_sha256},
        "shape": shape(old, new),
        "labels": labels_section(pairs, fdr=fdr),
        "decisions": decisions_section(old, new, pairs),
        "splits": splits_section(old, new),
        "routers": routers_section(old, new),
    }  # fmt: skip
