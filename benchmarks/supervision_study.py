"""Benchmark (issue 23, section 6): does DARS supervision route better than single-shot
supervision, judged on a simulator whose truth is known?

    flock -x /tmp/dars-cpu.lock .venv/bin/python benchmarks/supervision_study.py
    .venv/bin/python benchmarks/supervision_study.py --repeats 2 --slow-repeats 1 \\
        --routers knn16 ridge --out /tmp/s.json --plot /tmp/s.png          # quick

**World** (one, fixed; `make_world`). Queries on 4 topics at 3 levels; a query's text
names its topic and level in words (with filler words and, for 15% of queries, a word of
another topic), so a router can learn from the text which model suits it. Each (query,
model, variant) has the true success probability of the project's simulator,
`dars.backends.simulated.true_probability` (sigmoid of ability - difficulty + variant
effect + query x model interaction, the last three hashed from the ids, so the text says
nothing about them), with the model's ability set per topic and level (`ABILITY`,
`LEVEL`): a dear generalist, two cheaper specialists and a cheap small model. A model's
price per generation varies by +-10% around its list price; costs are normalised with
the known bounds (0.9 x the lowest and 1.1 x the highest list price), so the true
normalised cost c_m is known too.

**Truth.** p(q, m) = the mean over the query's K variants of the true probability (what
a K x N label's mean estimates). The true test utility of routing query q to m is
U = p(q, m) - lambda * c_m (lambda = 0.05); `true_dars_utility` also subtracts
beta * sqrt(p (1 - p)), the std of one generation's score (the DESIGN's U with beta = 0.2).

**Repeat r** (r = 0..R-1): a fresh training set drawn from the world (K x N Bernoulli
generations per train pair, seed 1000 + r), and from it
- *DARS supervision*: per pair the mean score, its std (ddof = 1) and the mean cost,
  three heads (`dars.evaluation.dars_protocol.pair_table` / `target_matrix`), router
  seed 42 + r, routed by argmax q - lambda c - beta s with beta = 0.2 (`dars`) and with
  beta = 0 (`dars_beta0`: the same fit, only the labels' mean differs from single-shot);
- *single-shot supervision*: one generation per pair drawn with seed 42 + r
  (`DrawPlan.draw`, as `--protocol dars` does), std target 0, router seed 42 + r,
  routed with beta = 0.
Both routers see the same TF-IDF features (`dars_protocol.dars_tfidf`, fitted once on
the train texts) and are scored on the same test queries with the truth. The paired
difference per repeat is DARS - single-shot; across repeats: the mean, a 95%
t-interval (scipy.stats.t) and a 95% percentile bootstrap interval (10,000 resamples
of the repeats), and two-sided paired p-values (scipy.stats.ttest_rel, and
scipy.stats.wilcoxon where R >= 6; below that its smallest possible p exceeds 0.05).
Slow routers (`SLOW`) get `--slow-repeats`; the JSON records each router's R.

Output: benchmarks/results/supervision_study.json and .png (mean true utility per router
and supervision, with the 95% t-interval over repeats, and the oracle and the truly best
single model as lines).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from dars.backends.simulated import true_probability
from dars.core.params import SimulatorParams
from dars.evaluation import dars_protocol as P
from dars.routers import DARS_ROUTERS, heads

TOPICS = {
    "algebra": "equation solve variable integer polynomial root factor sum quadratic",
    "geometry": "triangle angle circle radius area polygon perimeter chord tangent",
    "poetry": "rhyme verse sonnet stanza metaphor meter couplet imagery ode",
    "history": "empire treaty dynasty revolution century monarch battle colony reform",
}
LEVELS = {
    "basic": "simple easy basic",
    "standard": "standard usual regular",
    "advanced": "hard advanced tricky",
}  # noqa: E501
FILLER = [f"f{i}" for i in range(150)]
#: model -> (list price per generation, ability logit per topic in TOPICS order)
ABILITY = {
    "generalist-large": (1.0, (1.5, 1.5, 1.5, 1.5)),
    "math-specialist": (0.25, (1.9, 1.1, -1.0, -0.5)),
    "writing-specialist": (0.25, (-1.0, -0.5, 1.9, 1.1)),
    "small": (0.05, (0.4, 0.4, 0.4, 0.4)),
}
#: model -> ability shift per level (basic, standard, advanced)
LEVEL = {
    "generalist-large": (0.3, 0.0, -0.3),
    "math-specialist": (0.5, 0.0, -0.6),
    "writing-specialist": (0.5, 0.0, -0.6),
    "small": (1.2, 0.0, -1.6),
}
SIMULATOR = SimulatorParams(seed=23, query_sd=1.0, variant_sd=0.5, interaction_sd=0.7)
LAMBDA, BETA, SEED = P.DEFAULT_LAMBDA, P.DEFAULT_BETA, P.DEFAULT_SEED
#: routers whose fit takes tens of seconds here: fewer repeats (`--slow-repeats`)
SLOW = ("mlp3", "rm_softmax", "mirt")
DEFAULT_ROUTERS = (*DARS_ROUTERS, "knn", "ridge", "mlp")


class World(NamedTuple):  # not a dataclass: the smoke test loads this file unregistered
    models: list[str]
    train_ids: list[str]
    test_ids: list[str]
    train_texts: list[str]
    test_texts: list[str]
    p_train: np.ndarray  # (train queries, models, K) true success probabilities
    p_test: np.ndarray  # (test queries, models): mean over the K variants
    price: np.ndarray  # (models,) list price
    lo: float  # cost normalisation bounds
    hi: float

    @property
    def c_true(self) -> np.ndarray:
        return (self.price - self.lo) / (self.hi - self.lo)


def make_world(n_train: int, n_test: int, k: int, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    models = list(ABILITY)
    topics, levels = list(TOPICS), list(LEVELS)
    n = n_train + n_test
    ids = [f"q{i:05d}" for i in range(n)]
    topic = rng.integers(0, len(topics), n)
    level = rng.integers(0, len(levels), n)
    texts = []
    for i in range(n):
        words = list(rng.choice(TOPICS[topics[topic[i]]].split(), 3, replace=False))
        words.append(str(rng.choice(LEVELS[levels[level[i]]].split())))
        words += list(rng.choice(FILLER, 6))
        if rng.random() < 0.15:
            words.append(str(rng.choice(TOPICS[topics[rng.integers(0, len(topics))]].split())))
        rng.shuffle(words)
        texts.append(" ".join(words))
    p = np.empty((n, len(models), k))
    for j, m in enumerate(models):
        for i in range(n):
            ability = ABILITY[m][1][topic[i]] + LEVEL[m][level[i]]
            for v in range(k):
                p[i, j, v] = true_probability(
                    SIMULATOR, model=m, ability=ability, query_id=ids[i], variant_id=v
                )
    price = np.array([ABILITY[m][0] for m in models])
    return World(
        models=models,
        train_ids=ids[:n_train],
        test_ids=ids[n_train:],
        train_texts=texts[:n_train],
        test_texts=texts[n_train:],
        p_train=p[:n_train],
        p_test=p[n_train:].mean(axis=2),
        price=price,
        lo=0.9 * float(price.min()),
        hi=1.1 * float(price.max()),
    )


def sample_rows(world: World, n: int, seed: int) -> pd.DataFrame:
    """K x N simulated generations per train pair: score ~ Bernoulli(p), cost = the list
    price +-10%, in (query, model, variant, sample) order."""
    rng = np.random.default_rng(seed)
    q, m, k = world.p_train.shape
    p = np.repeat(world.p_train[..., None], n, axis=3)  # (q, m, k, n)
    score = (rng.random(p.shape) < p).astype(np.float64)
    cost = world.price[None, :, None, None] * rng.uniform(0.9, 1.1, p.shape)
    qi, mi = np.meshgrid(np.arange(q), np.arange(m), indexing="ij")
    reps = k * n
    rows = pd.DataFrame(
        {
            "query_id": np.repeat(np.asarray(world.train_ids)[qi.ravel()], reps),
            "model": np.repeat(np.asarray(world.models)[mi.ravel()], reps),
            "score": score.ravel(),
            "cost": cost.ravel(),
        }
    )
    rows["routing_cost"] = (rows["cost"] - world.lo) / (world.hi - world.lo)
    rows["order"] = np.arange(len(rows))
    return rows


def true_utility(world: World, choice: np.ndarray, beta: float = 0.0) -> float:
    p = world.p_test[np.arange(len(choice)), choice]
    c = world.c_true[choice]
    return float(np.mean(p - LAMBDA * c - beta * np.sqrt(p * (1 - p))))


def references(world: World) -> dict[str, Any]:
    """The oracle and the truly best single model, on the true utilities."""
    out: dict[str, Any] = {}
    for key, beta in (("utility", 0.0), ("dars_utility", BETA)):
        p = world.p_test
        u = p - LAMBDA * world.c_true[None, :] - beta * np.sqrt(p * (1 - p))
        best = int(np.argmax(u.mean(axis=0)))
        out[key] = {
            "oracle": float(u.max(axis=1).mean()),
            "best_single_model": world.models[best],
            "best_single": float(u[:, best].mean()),
            "per_model": dict(zip(world.models, map(float, u.mean(axis=0)), strict=True)),
        }
    return out


def one_repeat(name: str, r: int, world: World, X: Any, Xt: Any, n: int) -> dict[str, Any]:
    """Repeat r of router `name`: DARS and single-shot fits on the same drawn data."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)  # mlp3/mlp at max_iter, as theirs
    m = len(world.models)
    rows = sample_rows(world, n, seed=1000 + r)
    ids = world.train_ids
    pairs = P.pair_table(rows)
    q, c, s = (
        P.target_matrix(pairs, col, ids, world.models)
        for col in ("mean_score", "mean_cost", "score_std")
    )  # noqa: E501
    spec = P.registry_router(name, models=world.models)
    out: dict[str, Any] = {"router": name, "repeat": r}
    t0 = time.perf_counter()
    est = spec.make(SEED + r, m).fit(X, heads.stack(q, c, s))
    qh, ch, sh = P.split_prediction(est.predict(Xt), n_models=m, train_cost=c.mean(0), who=name)
    out["fit_s_dars"] = time.perf_counter() - t0
    for key, beta in (("dars", BETA), ("dars_beta0", 0.0)):
        choice = P.route(qh, ch, sh, lambda_cost=LAMBDA, beta=beta)
        out[key] = _scores(world, choice)
    plan = P.DrawPlan.build(rows, ids, world.models)
    ds, dc = plan.draw(SEED + r)
    yq, yc = plan.matrices(ds, dc, len(ids), m)
    t0 = time.perf_counter()
    est = spec.make(SEED + r, m).fit(X, heads.stack(yq, yc, np.zeros_like(yq)))
    qh, ch, sh = P.split_prediction(est.predict(Xt), n_models=m, train_cost=yc.mean(0), who=name)
    out["fit_s_single_shot"] = time.perf_counter() - t0
    out["single_shot"] = _scores(world, P.route(qh, ch, sh, lambda_cost=LAMBDA, beta=0.0))
    return out


def _scores(world: World, choice: np.ndarray) -> dict[str, Any]:
    return {
        "utility": true_utility(world, choice),
        "dars_utility": true_utility(world, choice, beta=BETA),
        "quality": float(world.p_test[np.arange(len(choice)), choice].mean()),
        "cost": float(world.c_true[choice].mean()),
        "share": np.bincount(choice, minlength=len(world.models)).tolist(),
    }


def paired(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """a - b per repeat: mean, 95% t-interval, 95% percentile bootstrap interval, and
    two-sided paired p-values (t-test; Wilcoxon signed-rank where R >= 6)."""
    from scipy import stats

    d = a - b
    k = len(d)
    out: dict[str, Any] = {"repeats": k, "mean_difference": float(d.mean())}
    if k < 2:
        return out | {"t_interval_95": None, "bootstrap_interval_95": None, "p_ttest_rel": None}
    se = float(d.std(ddof=1) / np.sqrt(k))
    half = float(stats.t.ppf(0.975, k - 1)) * se
    boot = np.random.default_rng(seed).choice(d, size=(10_000, k)).mean(axis=1)
    out["sd_difference"] = float(d.std(ddof=1))
    out["t_interval_95"] = [float(d.mean() - half), float(d.mean() + half)]
    out["bootstrap_interval_95"] = [
        float(np.quantile(boot, 0.025)),
        float(np.quantile(boot, 0.975)),
    ]  # noqa: E501
    out["p_ttest_rel"] = float(stats.ttest_rel(a, b).pvalue) if se > 0 else 1.0
    out["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue) if k >= 6 and np.any(d != 0) else None
    out["dars_better_in"] = int((d > 0).sum())
    return out


def summarize(runs: list[dict[str, Any]], routers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in routers:
        rs = sorted((x for x in runs if x["router"] == name), key=lambda x: x["repeat"])
        if not rs:
            continue
        entry: dict[str, Any] = {"repeats": len(rs)}
        for sup in ("dars", "dars_beta0", "single_shot"):
            u = np.array([x[sup]["utility"] for x in rs])
            entry[sup] = {
                "utility_mean": float(u.mean()),
                "utility_sd": float(u.std(ddof=1)) if len(u) > 1 else 0.0,
                "dars_utility_mean": float(np.mean([x[sup]["dars_utility"] for x in rs])),
                "quality_mean": float(np.mean([x[sup]["quality"] for x in rs])),
                "cost_mean": float(np.mean([x[sup]["cost"] for x in rs])),
                "per_repeat_utility": [round(float(v), 6) for v in u],
            }
        for sup in ("dars", "dars_beta0"):
            a = np.array([x[sup]["utility"] for x in rs])
            b = np.array([x["single_shot"]["utility"] for x in rs])
            entry[f"{sup}_minus_single_shot"] = paired(a, b)
            a = np.array([x[sup]["dars_utility"] for x in rs])
            b = np.array([x["single_shot"]["dars_utility"] for x in rs])
            entry[f"{sup}_minus_single_shot_on_dars_utility"] = paired(a, b)
        entry["fit_s_mean"] = float(
            np.mean([x["fit_s_dars"] + x["fit_s_single_shot"] for x in rs]) / 2
        )
        out[name] = entry
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    names = list(result["routers"])
    sups = [
        ("dars", "DARS (β = 0.2)"),
        ("dars_beta0", "DARS labels, β = 0"),
        ("single_shot", "single-shot"),
    ]  # noqa: E501
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(names)), 4.2))
    width = 0.26
    x = np.arange(len(names))
    for i, (sup, label) in enumerate(sups):
        means, errs = [], []
        for n in names:
            u = np.array(result["routers"][n][sup]["per_repeat_utility"])
            k = len(u)
            half = float(stats.t.ppf(0.975, k - 1) * u.std(ddof=1) / np.sqrt(k)) if k > 1 else 0
            means.append(u.mean())
            errs.append(half)
        ax.errorbar(x + (i - 1) * width, means, yerr=errs, fmt="o", capsize=3, label=label)
    ref = result["references"]["utility"]
    ax.axhline(ref["oracle"], color="k", ls="--", lw=0.8, label="oracle")
    best = f"best single model ({ref['best_single_model']})"
    ax.axhline(ref["best_single"], color="gray", ls=":", lw=0.8, label=best)
    ax.set_xticks(x, [f"{n}\nR={result['routers'][n]['repeats']}" for n in names], fontsize=8)
    ax.set_ylabel("true test utility  p − λ·c")
    ax.set_title("Simulator with known truth: DARS vs single-shot supervision (95% t-intervals)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    *,
    routers: list[str],
    repeats: int,
    slow_repeats: int,
    n_train: int,
    n_test: int,
    k: int,
    n: int,
    n_jobs: int,
    progress: bool = True,
) -> dict[str, Any]:
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    world = make_world(n_train, n_test, k)
    world_s = time.perf_counter() - t0
    feat = P.dars_tfidf().fit(world.train_texts)
    X, Xt = feat.transform(world.train_texts), feat.transform(world.test_texts)
    plan = {name: slow_repeats if name in SLOW else repeats for name in routers}
    # slow routers first, so the pool's last tasks are short
    jobs = sorted(
        ((name, r) for name, R in plan.items() for r in range(R)),
        key=lambda t: (t[0] not in SLOW, t[1]),
    )
    runs = []
    gen = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(one_repeat)(name, r, world, X, Xt, n) for name, r in jobs
    )
    for res in tqdm(gen, total=len(jobs), desc="supervision study", disable=not progress):
        runs.append(res)
    return {
        "world": {
            "models": world.models,
            "list_price": dict(zip(world.models, map(float, world.price), strict=True)),
            "true_normalised_cost": dict(zip(world.models, map(float, world.c_true), strict=True)),
            "train_queries": n_train,
            "test_queries": n_test,
            "k": k,
            "n": n,
            "features": int(X.shape[1]),
            "simulator": {
                "seed": SIMULATOR.seed,
                "query_sd": SIMULATOR.query_sd,
                "variant_sd": SIMULATOR.variant_sd,
                "interaction_sd": SIMULATOR.interaction_sd,
            },
            "lambda_cost": LAMBDA,
            "beta_risk": BETA,
        },
        "references": references(world),
        "repeats_per_router": plan,
        "routers": summarize(runs, routers),
        "timing": {
            "world_s": round(world_s, 2),
            "total_s": round(time.perf_counter() - t0, 1),
            "n_jobs": n_jobs,
            "cpus": os.cpu_count(),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--routers", nargs="+", default=list(DEFAULT_ROUTERS))
    ap.add_argument("--repeats", type=int, default=40, help="R for the fast routers")
    ap.add_argument("--slow-repeats", type=int, default=30, help=f"R for {', '.join(SLOW)}")
    ap.add_argument("--train", type=int, default=300, help="train queries")
    ap.add_argument("--test", type=int, default=600, help="test queries")
    ap.add_argument("--k", type=int, default=5, help="variants per query (DARS: 5)")
    ap.add_argument("--n", type=int, default=5, help="generations per variant (DARS: 5)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    results = Path(__file__).parent / "results"
    ap.add_argument("--out", default=str(results / "supervision_study.json"))
    ap.add_argument("--plot", default=str(results / "supervision_study.png"))
    a = ap.parse_args()
    res = run(
        routers=a.routers,
        repeats=a.repeats,
        slow_repeats=a.slow_repeats,
        n_train=a.train,
        n_test=a.test,
        k=a.k,
        n=a.n,
        n_jobs=a.jobs,
    )
    res["command"] = "benchmarks/supervision_study.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(a).items()
        if k not in ("out", "plot")
    )
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    plot(res, Path(a.plot))
    for name, e in res["routers"].items():
        d = e["dars_minus_single_shot"]
        print(
            f"{name:14s} R={e['repeats']:3d}  dars {e['dars']['utility_mean']:.4f}  "
            f"single {e['single_shot']['utility_mean']:.4f}  diff {d['mean_difference']:+.4f}  "
            f"p={d.get('p_ttest_rel')}"
        )
    print(f"-> {a.out}, {a.plot}")


if __name__ == "__main__":
    main()
