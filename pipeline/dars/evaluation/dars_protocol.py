"""`--protocol dars`: the evaluation the DARS authors' code computes, on our outcome rows.

Behaviour matched from AIGNLAI/DARS `methods/*.py` (their shared evaluation loop; every
deliberate deviation is listed in docs/routers.md, "DARS protocol"):

* **Rows.** One row per scored generation (`outcomes`), with its split, task and, for test
  rows, its evaluation view: `prompt_variation` (the K rewrites, one decode each) and
  `decoding_variation` (the original query, N decodes), read from the outcome column
  `observation_type` where the table has it (an imported DARS release), else derived
  from `variant_id` / `sample_id` as `dars.labels.views` does for our own builds. The
  training rows are every row of a train query.
* **Cost.** `routing_cost` = min-max of the raw per-row cost within each task (their
  "dataset"), over the train and test rows pooled; a task whose costs are all equal gets 0.
* **Targets.** Per (task, query, model): mean score, std of the scores with ddof = 1
  (pandas' default; 0 where a pair has one row), mean routing cost. A (query, model)
  cell without rows takes the model's mean over the task's pairs, else the task mean.
* **Query text.** The routers' input is the authors' text `context[:1200] + "\nQuestion: " +
  question` (`dars.routers.features.dars_query_text`) where the query's metadata JSON
  holds the release's `question` / `context` (what `dars import dars-release` keeps).
  A query without them (our own builds, other imports) falls back to its `prompt`, the
  text the query was asked with; the result counts both (`query_text`).
* **Order.** Rows are in the release's file order (`source_row`, kept by the importer;
  our own builds: query, model, variant, sample). Queries are the train (test) rows'
  queries in first appearance, as their `groupby(sort=False)` lists them, so a router's
  rows, and with them its seeded mini-batches, come in their order.
* **Routers** are fitted per task on that task's train queries, with three heads
  `Y = [quality | cost | std]` (`dars.routers.heads`); predictions are clipped to [0, 1]
  and each query goes to argmax q - lambda * c - beta * s (first model on ties).
* **Supervision.** `distribution`: the pair statistics, beta = the task's beta.
  `single_shot` run r (r = 0..R-1): one observation per (query, model), drawn with
  `numpy.random.default_rng(seed + r).integers(0, n_pair)` pair after pair in row order,
  std target 0, routed with beta = 0, the router seeded with seed + r.
* **Scores.** For each test query, the chosen model's pair in the rewrite view
  (`rewrite_score`, `rewrite_cost`) and in the decoding view (`decoding_score`,
  `decoding_cost`, `decoding_score_std`); a query counts only when the chosen pair
  exists in both views. Each run reports the means over counted queries; single-shot
  results are the mean and the std (ddof = 1) over the R runs, and
  `chosen_decoding_instability` is the mean over runs of `decoding_score_std`.
* **Baselines** per task and view: the best single model in hindsight (the highest
  mean pair score) and the oracle (the mean over queries of the best pair score).

Speed (docs/routers.md, benchmarks/dars_protocol.py): the text features are computed
once (TF-IDF fitted once on every train text, sparse) and reused by every router and
run; the R draws and the scoring are vectorised numpy on integer-coded pairs.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError
from dars.routers import heads
from dars.routers.features import dars_query_text

VIEWS = ("prompt_variation", "decoding_variation")
#: the per-run outputs, as the authors' summary names them
RUN_METRICS = (
    "rewrite_score",
    "rewrite_cost",
    "decoding_score",
    "decoding_cost",
    "decoding_score_std",
    "n_eval",
)
DEFAULT_LAMBDA, DEFAULT_BETA, DEFAULT_RUNS, DEFAULT_SEED = 0.05, 0.2, 100, 42
#: DARS's TF-IDF: 20k features, word uni- and bigrams, raw term frequency
TFIDF_ARGS = {"max_features": 20_000, "ngram_range": (1, 2), "min_df": 1}
#: fewer runs than this are fitted in-process (a worker pool costs ~1 s to start)
PARALLEL_FROM_RUNS = 8
ROW_COLUMNS = ["query_id", "model", "variant_id", "sample_id", "score", "cost"]


@dataclass(frozen=True)
class ProtocolSettings:
    lambda_cost: float = DEFAULT_LAMBDA
    beta_risk: float = DEFAULT_BETA
    beta_per_task: Mapping[str, float] = field(default_factory=dict)
    runs: int = DEFAULT_RUNS
    seed: int = DEFAULT_SEED
    #: processes for the single-shot runs (-1: every core); results do not depend on it
    n_jobs: int = -1

    def beta(self, task: str) -> float:
        return float(self.beta_per_task.get(task, self.beta_risk))

    def as_json(self) -> dict[str, Any]:
        return {
            "lambda_cost": self.lambda_cost,
            "beta_risk": self.beta_risk,
            "beta_per_task": dict(self.beta_per_task),
            "runs": self.runs,
            "seed": self.seed,
        }


@dataclass
class RouterSpec:
    """How to build one router: `make(seed, n_models)` returns an unfitted estimator with
    fit(X, Y) / predict(X); `on_text`: X is the list of query texts (a user's router),
    else the shared feature matrix."""

    name: str
    make: Callable[[int, int], Any]
    on_text: bool = False


def parse_beta_per_task(items: Sequence[str] | None) -> dict[str, float]:
    """`TASK=BETA` strings -> {task: beta}; one clear line for a malformed item."""
    out: dict[str, float] = {}
    for item in items or []:
        task, sep, value = str(item).partition("=")
        try:
            beta = float(value)
        except ValueError:
            beta = float("nan")
        if not sep or not task.strip() or not np.isfinite(beta) or beta < 0:
            raise InputDataError(
                f"--beta-per-task {item!r} must look like TASK=BETA with BETA a number >= 0, "
                "e.g. gpqa=0.1"
            )
        out[task.strip()] = beta
    return out


# ---------------------------------------------------------------------------------------
# rows, costs and pair tables


def protocol_rows(
    outcomes: pd.DataFrame, *, splits: pd.DataFrame, tasks: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Outcome rows -> protocol rows: task, split (train | test), query_id, model, score,
    cost, routing_cost, order, in_rewrite, in_decoding. Train = our train and validation
    splits (the release's train file). Failed generations (null score) are left out and
    counted, never scored as wrong; rows of queries in no split are left out."""
    missing = [c for c in ROW_COLUMNS if c not in outcomes.columns]
    if missing:
        raise InputDataError(
            f"outcomes lack columns {missing} that the DARS protocol needs; they have "
            f"{list(outcomes.columns)}"
        )
    split_of = splits.drop_duplicates("query_id").set_index("query_id")["split"]
    task_of = tasks.drop_duplicates("query_id").set_index("query_id")["task"]
    df = outcomes.copy()
    df["split"] = df["query_id"].map(split_of).replace({"validation": "train"})
    df["task"] = df["query_id"].map(task_of)
    counts = {
        "rows": len(df),
        "failed_generations": int(df["score"].isna().sum()),
        "rows_without_split": int(df["split"].isna().sum()),
    }
    df = df[df["score"].notna() & df["split"].notna()]
    no_task = df["task"].isna()
    if no_task.any():
        raise InputDataError(
            f"{int(no_task.sum())} outcome rows belong to queries with no task in the queries "
            f"table, e.g. query_id {df.loc[no_task, 'query_id'].iloc[0]!r}"
        )
    df["cost"] = df["cost"].astype("float64")
    bad = ~np.isfinite(df["cost"]) | (df["cost"] < 0)
    if bad.any():
        r = df[bad].iloc[0]
        raise InputDataError(
            f"outcome row query_id={r['query_id']!r} model={r['model']!r} has cost {r['cost']!r}; "
            "the DARS protocol needs a finite cost >= 0 on every scored row"
        )
    df["score"] = df["score"].astype("float64")
    # their order: the release's row order where the import kept it, else ours
    order_cols = ["source_row"] if "source_row" in df.columns else []
    df = df.sort_values(
        order_cols + ["query_id", "model", "variant_id", "sample_id"], kind="stable"
    ).reset_index(drop=True)
    df["order"] = np.arange(len(df))
    lo = df.groupby("task")["cost"].transform("min")
    hi = df.groupby("task")["cost"].transform("max")
    span = (hi - lo).to_numpy()
    df["routing_cost"] = np.where(span > 0, (df["cost"] - lo) / np.where(span > 0, span, 1), 0.0)
    test = df["split"] == "test"
    obs = df["observation_type"] if "observation_type" in df.columns else None
    if obs is not None and obs[test].notna().any():
        df["in_rewrite"] = test & (obs == "prompt_variation")
        df["in_decoding"] = test & (obs == "decoding_variation")
    else:  # our own builds: the views of dars.labels.views
        df["in_rewrite"] = test & (df["sample_id"] == 0)
        df["in_decoding"] = test & (df["variant_id"] == 0)
    counts["scored_rows"] = len(df)
    return df[
        [
            "task",
            "split",
            "query_id",
            "model",
            "variant_id",
            "sample_id",
            "score",
            "cost",
            "routing_cost",
            "order",
            "in_rewrite",
            "in_decoding",
        ]
    ], counts


def pair_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (query, model) pair: mean_score, score_std (ddof = 1; 0 for one row),
    mean_cost (routing cost), mean_raw_cost, n_obs."""
    g = rows.groupby(["query_id", "model"], sort=True)
    out = g.agg(
        mean_score=("score", "mean"),
        score_std=("score", "std"),
        mean_cost=("routing_cost", "mean"),
        mean_raw_cost=("cost", "mean"),
        n_obs=("score", "size"),
    ).reset_index()
    out["score_std"] = out["score_std"].fillna(0.0)
    return out


def target_matrix(
    pairs: pd.DataFrame, column: str, query_ids: Sequence[str], models: Sequence[str]
) -> np.ndarray:
    """pairs[column] as (queries, models); a missing cell takes the model's mean over
    `pairs`, else the mean of the column, else 0 (their `pivot_targets`)."""
    wide = pairs.pivot(index="query_id", columns="model", values=column)
    wide = wide.reindex(index=list(query_ids), columns=list(models))
    model_mean = pairs.groupby("model")[column].mean().reindex(list(models))
    wide = wide.fillna(model_mean)
    fallback = float(pairs[column].mean()) if pairs[column].notna().any() else 0.0
    return wide.fillna(fallback).to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class DrawPlan:
    """A task's train rows grouped by pair in row order, for vectorised one-row draws."""

    pair_query: np.ndarray  # (P,) query index of each pair, pairs in first-appearance order
    pair_model: np.ndarray  # (P,) model index
    start: np.ndarray  # (P,) first row of the pair in `score` / `cost`
    size: np.ndarray  # (P,) rows of the pair
    score: np.ndarray  # (rows,) grouped by pair
    cost: np.ndarray

    @classmethod
    def build(cls, rows: pd.DataFrame, query_ids: Sequence[str], models: Sequence[str]) -> DrawPlan:
        rows = rows.sort_values("order", kind="stable")
        qi = pd.Index(list(query_ids)).get_indexer(rows["query_id"]).astype(np.int64)
        mi = pd.Index(list(models)).get_indexer(rows["model"]).astype(np.int64)
        codes, uniq = pd.factorize(qi * len(models) + mi)  # pairs in first-appearance order
        by_pair = np.argsort(codes, kind="stable")  # rows grouped by pair, row order kept
        size = np.bincount(codes, minlength=len(uniq))
        uniq = np.asarray(uniq, dtype=np.int64)
        return cls(
            pair_query=uniq // len(models),
            pair_model=uniq % len(models),
            start=np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64),
            size=size,
            score=rows["score"].to_numpy(dtype=np.float64)[by_pair],
            cost=rows["routing_cost"].to_numpy(dtype=np.float64)[by_pair],
        )

    def draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One row per pair: (score, routing cost), each (P,). The same numbers as drawing
        `rng.integers(0, size)` pair by pair in a Python loop (tested)."""
        pick = self.start + np.random.default_rng(seed).integers(0, self.size)
        return self.score[pick], self.cost[pick]

    def matrices(
        self, score: np.ndarray, cost: np.ndarray, n_queries: int, n_models: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drawn pair values -> (queries, models) targets, missing cells filled as
        `target_matrix` does (the model's mean, else the overall mean)."""
        out = []
        for v in (score, cost):
            m = np.full((n_queries, n_models), np.nan)
            m[self.pair_query, self.pair_model] = v
            sums = np.bincount(self.pair_model, weights=v, minlength=n_models)
            cnt = np.bincount(self.pair_model, minlength=n_models)
            fallback = float(v.mean()) if len(v) else 0.0
            col = np.where(cnt > 0, sums / np.maximum(cnt, 1), fallback)
            out.append(np.where(np.isnan(m), col[None, :], m))
        return out[0], out[1]


# ---------------------------------------------------------------------------------------
# routing and scoring


def route(
    quality: np.ndarray, cost: np.ndarray, std: np.ndarray, *, lambda_cost: float, beta: float
) -> np.ndarray:
    """argmax of clip(q) - lambda * clip(c) - beta * clip(s); the first model on ties."""
    q, c, s = (np.clip(a, 0.0, 1.0) for a in (quality, cost, std))
    return np.argmax(q - lambda_cost * c - beta * s, axis=1)


def split_prediction(
    pred: Any, *, n_models: int, train_cost: np.ndarray, who: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A router's prediction -> (quality, cost, std). Three heads (3 x n_models columns)
    are taken apart; one head (a router that predicts quality only, like a user's) gets
    the model's mean train cost and std 0."""
    arr = np.asarray(pred, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (n_models, 3 * n_models):
        raise InputDataError(
            f"router {who!r} predicted shape {arr.shape}; expected (queries, {n_models}) or "
            f"(queries, {3 * n_models}) = [quality | cost | std]"
        )
    if not np.isfinite(arr).all():
        raise InputDataError(f"router {who!r} predicted non-finite values")
    if arr.shape[1] == 3 * n_models:
        return heads.split(arr, n_models)
    cost = np.broadcast_to(train_cost, arr.shape)
    return arr, cost, np.zeros_like(arr)


@dataclass(frozen=True)
class ViewMatrices:
    """A task's test pairs of one view as (queries, models) matrices (NaN: no pair)."""

    score: np.ndarray
    cost: np.ndarray
    std: np.ndarray
    n: np.ndarray

    @classmethod
    def build(
        cls, pairs: pd.DataFrame, query_ids: Sequence[str], models: Sequence[str]
    ) -> ViewMatrices:
        def wide(col: str) -> np.ndarray:
            w = pairs.pivot(index="query_id", columns="model", values=col)
            return w.reindex(index=list(query_ids), columns=list(models)).to_numpy(np.float64)

        return cls(
            score=wide("mean_score"),
            cost=wide("mean_cost"),
            std=wide("score_std"),
            n=wide("n_obs"),
        )


def score_choices(
    choices: np.ndarray, rewrite: ViewMatrices, decoding: ViewMatrices
) -> dict[str, float]:
    """The authors' per-run summary of one routing decision (module docstring)."""
    rows = np.arange(len(choices))
    rw = {k: getattr(rewrite, k)[rows, choices] for k in ("score", "cost", "n")}
    dc = {k: getattr(decoding, k)[rows, choices] for k in ("score", "cost", "std", "n")}
    ok = np.isfinite(rw["score"]) & np.isfinite(dc["score"])
    if not ok.any():
        nan = float("nan")
        keys = (*RUN_METRICS, "rewrite_observations_per_query", "decoding_observations_per_query")
        return {k: nan for k in keys} | {"n_eval": 0}
    return {
        "rewrite_score": float(rw["score"][ok].mean()),
        "rewrite_cost": float(rw["cost"][ok].mean()),
        "rewrite_observations_per_query": float(rw["n"][ok].mean()),
        "decoding_score": float(dc["score"][ok].mean()),
        "decoding_cost": float(dc["cost"][ok].mean()),
        "decoding_score_std": float(dc["std"][ok].mean()),
        "decoding_observations_per_query": float(dc["n"][ok].mean()),
        "n_eval": int(ok.sum()),
    }


def view_baselines(pairs: pd.DataFrame, models: Sequence[str]) -> dict[str, Any]:
    """Best single model in hindsight (highest mean pair score; the first on ties) and the
    oracle (mean over queries of the best pair score), over every pair of the view."""
    if pairs.empty:
        return {"best_model": None, "best_model_score": float("nan"), "oracle_score": float("nan")}
    per_model = pairs.groupby("model", sort=False)["mean_score"].mean()
    per_model = per_model.reindex([m for m in models if m in per_model.index])
    best = str(per_model.idxmax())
    oracle = float(pairs.groupby("query_id")["mean_score"].max().mean())
    return {"best_model": best, "best_model_score": float(per_model[best]), "oracle_score": oracle}


def summarize_runs(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and std (ddof = 1; 0 for one run) across runs of every per-run metric."""
    out: dict[str, Any] = {"runs": len(runs)}
    for k in runs[0]:
        v = np.array([r[k] for r in runs], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[k] = {
            "mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        }
    out["chosen_decoding_instability"] = out["decoding_score_std"]["mean"]
    return out


# ---------------------------------------------------------------------------------------
# the whole protocol


def dars_tfidf() -> Any:
    """DARS's text features (`TFIDF_ARGS`), a sparse TfidfVectorizer."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(**TFIDF_ARGS)


def registry_router(
    name: str, params: Mapping[str, Any] | None = None, *, models: Sequence[str] | None = None
) -> RouterSpec:
    """A reference router by its registered name, on the shared features; `random_state`
    and `n_models` are set where the router has those parameters, and with `models` (the
    model names in column order) graphrouter's model descriptions
    (`dars.routers.model_kwargs`), unless `params` sets them."""
    from dars.routers import ROUTERS, model_kwargs

    cls = ROUTERS.get(name)
    known = cls().get_params()
    named = model_kwargs(name, models)

    def make(seed: int, n_models: int) -> Any:
        kwargs = dict(params or {})
        if "random_state" in known:
            kwargs.setdefault("random_state", seed)
        for key, value in named.items():
            kwargs.setdefault(key, value)
        if "n_models" in known:
            kwargs["n_models"] = n_models
        return cls(**kwargs)

    return RouterSpec(name=name, make=make)


def _fit(spec: RouterSpec, est: Any, X: Any, Y: np.ndarray, *, n_models: int) -> Any:
    if spec.on_text and Y.shape[1] == 3 * n_models:
        # a user's router keeps its contract: Y is quality only unless it asks for heads
        if "n_models" not in _params(est):
            Y = Y[:, :n_models]
    est.fit(X, Y)
    return est


def _params(est: Any) -> set[str]:
    get = getattr(est, "get_params", None)
    if callable(get):
        return set(get())
    return set(inspect.signature(type(est)).parameters)


def run_protocol(
    rows: pd.DataFrame,
    *,
    texts: Mapping[str, str],
    models: Sequence[str],
    routers: Sequence[RouterSpec],
    settings: ProtocolSettings,
    featurizer: Callable[[], Any] = dars_tfidf,
    progress: bool = True,
) -> dict[str, Any]:
    """The DARS protocol on `protocol_rows` output; `texts`: query_id -> query text."""
    from tqdm.auto import tqdm

    models = list(models)
    m = len(models)
    train = rows[rows["split"] == "train"]
    test = rows[rows["split"] == "test"]
    tasks = sorted(set(train["task"]) & set(test["task"]))
    if not tasks:
        raise InputDataError(
            "the DARS protocol needs train and test rows of at least one task; the rows have "
            f"train tasks {sorted(set(train['task']))} and test tasks {sorted(set(test['task']))}"
        )
    train_ids_all = sorted(train["query_id"].unique())
    missing = [q for q in train_ids_all if q not in texts]
    if missing:
        raise InputDataError(
            f"no query text for train query {missing[0]!r} (and {len(missing) - 1} more)"
        )
    feat = featurizer().fit([texts[q] for q in train_ids_all])
    result: dict[str, Any] = {"settings": settings.as_json(), "models": models, "tasks": {}}
    total = len(tasks) * len(routers) * (1 + settings.runs)
    bar = tqdm(total=total, desc="dars protocol", disable=not progress, unit="fit")
    for task in tasks:
        tr, te = train[train["task"] == task], test[test["task"] == task]
        tr_ids = first_appearance(tr)
        te_ids = first_appearance(te)
        X_tr = feat.transform([texts[q] for q in tr_ids])
        X_te = feat.transform([texts[q] for q in te_ids])
        T_tr = [texts[q] for q in tr_ids]
        T_te = [texts[q] for q in te_ids]
        pairs = pair_table(tr)
        dist = [
            target_matrix(pairs, c, tr_ids, models)
            for c in ("mean_score", "mean_cost", "score_std")
        ]
        plan = DrawPlan.build(tr, tr_ids, models)
        rw_pairs = pair_table(te[te["in_rewrite"]])
        dc_pairs = pair_table(te[te["in_decoding"]])
        rw, dc = (
            ViewMatrices.build(rw_pairs, te_ids, models),
            ViewMatrices.build(dc_pairs, te_ids, models),
        )
        both = np.isfinite(rw.score).any(1) & np.isfinite(dc.score).any(1)
        beta = settings.beta(task)
        entry: dict[str, Any] = {
            "n_train_queries": len(tr_ids),
            "n_test_queries": len(te_ids),
            "n_test_queries_with_both_views": int(both.sum()),
            "beta_risk": beta,
            "baselines": {
                "prompt_variation": view_baselines(rw_pairs, models),
                "decoding_variation": view_baselines(dc_pairs, models),
            },
            "routers": {},
        }
        draws = [plan.draw(settings.seed + r) for r in range(settings.runs)]
        for spec in routers:
            X, Xt = (T_tr, T_te) if spec.on_text else (X_tr, X_te)
            est = _fit(spec, spec.make(settings.seed, m), X, heads.stack(*dist), n_models=m)
            q, c, s = split_prediction(
                est.predict(Xt), n_models=m, train_cost=dist[1].mean(0), who=spec.name
            )
            choice = route(q, c, s, lambda_cost=settings.lambda_cost, beta=beta)
            bar.update(1)
            single: list[dict[str, float]] = []
            chosen = np.empty((settings.runs, len(te_ids)), dtype=np.int64)
            targets = (
                (r, *plan.matrices(ds, dcost, len(tr_ids), m))
                for r, (ds, dcost) in enumerate(draws)
            )
            one = functools.partial(_single_shot, spec=spec, X=X, Xt=Xt, m=m, settings=settings)
            n_jobs = (
                settings.n_jobs if settings.runs >= PARALLEL_FROM_RUNS and not spec.on_text else 1
            )
            if n_jobs == 1:
                done = (one(r, yq, yc) for r, yq, yc in targets)
            else:
                from joblib import Parallel, delayed

                done = Parallel(n_jobs=n_jobs, return_as="generator")(
                    delayed(one)(r, yq, yc) for r, yq, yc in targets
                )
            for r, row in done:
                chosen[r] = row
                single.append(score_choices(row, rw, dc))
                bar.update(1)
            entry["routers"][spec.name] = {
                "distribution": score_choices(choice, rw, dc),
                "single_shot": summarize_runs(single) if single else None,
                "single_shot_choice_agreement": _agreement(chosen) if single else None,
            }
        result["tasks"][task] = entry
    bar.close()
    result["macro"] = macro_average(result)
    return result


def first_appearance(rows: pd.DataFrame) -> list[str]:
    """The rows' query ids in the order they first appear (rows by `order`)."""
    return list(pd.unique(rows.sort_values("order", kind="stable")["query_id"]))


def query_texts(queries: pd.DataFrame) -> tuple[dict[str, str], dict[str, int]]:
    """query_id -> the routers' input text, and how many came from where: the authors'
    `context[:1200] + "\nQuestion: " + question` where the metadata JSON has a `question`
    or `context` string (an imported DARS release), else the query's `prompt`."""
    texts: dict[str, str] = {}
    counts = {"dars_fields": 0, "prompt": 0}
    metas = queries["metadata"] if "metadata" in queries.columns else [None] * len(queries)
    for qid, prompt, raw in zip(queries["query_id"], queries["prompt"], metas, strict=True):
        meta: Any = None
        if isinstance(raw, str) and raw.strip():
            try:
                meta = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputDataError(
                    f"query {qid!r} has metadata that is not valid JSON ({exc.msg}); the "
                    "queries table's `metadata` column holds one JSON object per query"
                ) from exc
        fields: dict[str, str] = {}
        if isinstance(meta, dict):
            fields = {k: v for k in ("question", "context") if isinstance(v := meta.get(k), str)}
        if any(v.strip() for v in fields.values()):
            texts[qid] = dars_query_text(fields.get("question", ""), fields.get("context"))
            counts["dars_fields"] += 1
        else:
            texts[qid] = str(prompt)
            counts["prompt"] += 1
    return texts, counts


def _single_shot(
    r: int,
    yq: np.ndarray,
    yc: np.ndarray,
    *,
    spec: RouterSpec,
    X: Any,
    Xt: Any,
    m: int,
    settings: ProtocolSettings,
) -> tuple[int, np.ndarray]:
    """Single-shot run r: fit on the drawn targets (std target 0, seed + r), route with
    beta = 0; returns (r, chosen model per test query)."""
    est = _fit(
        spec, spec.make(settings.seed + r, m), X, heads.stack(yq, yc, np.zeros_like(yq)), n_models=m
    )
    q, c, s = split_prediction(est.predict(Xt), n_models=m, train_cost=yc.mean(0), who=spec.name)
    return r, route(q, c, s, lambda_cost=settings.lambda_cost, beta=0.0)


def _agreement(chosen: np.ndarray) -> float:
    """Mean over test queries of the share of runs that pick the query's most frequent
    model (1 = every single-shot run routes the query the same way). Ours, not theirs."""
    R, n = chosen.shape
    if n == 0:
        return float("nan")
    counts = np.apply_along_axis(lambda c: np.bincount(c).max(), 0, chosen)
    return float(np.mean(counts / R))


def macro_average(result: Mapping[str, Any]) -> dict[str, Any]:
    """Per router: the unweighted mean over tasks of each headline number."""
    out: dict[str, Any] = {}
    tasks = list(result["tasks"].values())
    names = {n for t in tasks for n in t["routers"]}
    for name in sorted(names):
        per = [t["routers"][name] for t in tasks if name in t["routers"]]
        row: dict[str, float] = {}
        for k in (
            "rewrite_score",
            "decoding_score",
            "rewrite_cost",
            "decoding_cost",
            "decoding_score_std",
        ):
            row[f"distribution_{k}"] = float(np.nanmean([p["distribution"][k] for p in per]))
            ss = [p["single_shot"][k]["mean"] for p in per if p["single_shot"]]
            if ss:
                row[f"single_shot_{k}"] = float(np.nanmean(ss))
        out[name] = row
    return out


def markdown(result: Mapping[str, Any]) -> str:
    """The authors' table per task: rewrite and decoding score per supervision (single
    shot: mean ± std over runs), the chosen model's decoding std, and the baselines."""
    st = result["settings"]
    lines = [
        f"DARS protocol: lambda = {st['lambda_cost']}, beta = {st['beta_risk']}"
        + (f" (per task: {st['beta_per_task']})" if st["beta_per_task"] else "")
        + f", {st['runs']} single-shot runs seeded {st['seed']} + r.",
        "",
        "| task | router | supervision | rewrite score | decoding score | rewrite cost | "
        "decoding cost | chosen decoding std | queries scored |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, t in result["tasks"].items():
        for name, r in t["routers"].items():
            d = r["distribution"]
            lines.append(
                f"| {task} | {name} | distribution | {d['rewrite_score']:.4f} | "
                f"{d['decoding_score']:.4f} | {d['rewrite_cost']:.4f} | {d['decoding_cost']:.4f} "
                f"| {d['decoding_score_std']:.4f} | {d['n_eval']} |"
            )
            s = r["single_shot"]
            if s:
                cells = " | ".join(
                    f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}"
                    for k in ("rewrite_score", "decoding_score", "rewrite_cost", "decoding_cost")
                )
                lines.append(
                    f"| {task} | {name} | single-shot | {cells} | "
                    f"{s['chosen_decoding_instability']:.4f} | {s['n_eval']['mean']:.0f} |"
                )
        for view, b in t["baselines"].items():
            lines.append(
                f"| {task} | best single ({b['best_model']}) | {view} | "
                f"{b['best_model_score']:.4f} | | | | | |"
                if view == "prompt_variation"
                else f"| {task} | best single ({b['best_model']}) | {view} | | "
                f"{b['best_model_score']:.4f} | | | | |"
            )
        b = t["baselines"]
        lines.append(
            f"| {task} | oracle | both views | {b['prompt_variation']['oracle_score']:.4f} "
            f"| {b['decoding_variation']['oracle_score']:.4f} | | | | | |"
        )
    return "\n".join(lines) + "\n"


def read_rows(outcomes_dir: str | Path, models: Sequence[str]) -> pd.DataFrame:
    """Every model's outcome rows with the columns the protocol reads (plus
    `observation_type` and `source_row` where the files have them)."""
    from dars.core.io import read_model_files

    optional = ["observation_type", "source_row"]
    return read_model_files(outcomes_dir, models, required=ROW_COLUMNS, optional=optional)


def evaluate_tables(
    outcomes: pd.DataFrame,
    *,
    queries: pd.DataFrame,
    splits: pd.DataFrame,
    models: Sequence[str],
    routers: Sequence[RouterSpec],
    settings: ProtocolSettings,
    progress: bool = True,
) -> dict[str, Any]:
    """The protocol from contract tables (outcomes, queries with `task` and `prompt`,
    splits); the result records the rows left out, by reason."""
    if "task" not in queries.columns:
        raise InputDataError(
            "the queries table has no `task` column; the DARS protocol is per task"
        )
    rows, counts = protocol_rows(outcomes, splits=splits, tasks=queries[["query_id", "task"]])
    texts, text_counts = query_texts(queries.drop_duplicates("query_id"))
    result = run_protocol(
        rows, texts=texts, models=models, routers=routers, settings=settings, progress=progress
    )
    return {"protocol": "dars", "rows": counts, "query_text": text_counts, **result}


def table_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (task, router, supervision): the headline numbers (single shot: the
    mean over runs, with its std in `<metric>_std`)."""
    rows = []
    for task, t in result["tasks"].items():
        for name, r in t["routers"].items():
            d = {"task": task, "router": name, "supervision": "distribution"}
            rows.append(d | {k: r["distribution"][k] for k in RUN_METRICS})
            if r["single_shot"]:
                s = {"task": task, "router": name, "supervision": "single_shot"}
                for k in RUN_METRICS:
                    s[k], s[f"{k}_std"] = r["single_shot"][k]["mean"], r["single_shot"][k]["std"]
                rows.append(s)
    return pd.DataFrame(rows)


def evaluate_files(
    outcomes_dir: str | Path,
    *,
    queries: pd.DataFrame,
    splits: pd.DataFrame,
    models: Sequence[str],
    routers: Any,
    runs: int | None = None,
    beta_per_task: Sequence[str] | None = None,
) -> dict[str, Any]:
    """`dars evaluate --protocol dars`: the `routers` params section's routers (names and
    keyword arguments) on the outcome files, DARS's defaults for lambda and beta."""
    settings = ProtocolSettings(
        beta_per_task=parse_beta_per_task(beta_per_task),
        runs=DEFAULT_RUNS if runs is None else int(runs),
    )
    specs = [registry_router(n, routers.params.get(n), models=models) for n in routers.names]
    return evaluate_tables(
        read_rows(outcomes_dir, models),
        queries=queries,
        splits=splits,
        models=models,
        routers=specs,
        settings=settings,
    )
