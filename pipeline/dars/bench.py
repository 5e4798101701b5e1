"""`dars bench`: fit a user's router on a published DARS dataset and score it on a split.

    dars bench --dataset <hub-id-or-local-folder> --router my_module:MyRouter
               [--split test] [--output results.json]

The dataset is read with `datasets.load_dataset(dataset, config, split=...)` for the
configs `queries` and `labels` (a Hub repo or a local folder in the publish layout:
`<config>/<split>-*.parquet` declared under `configs:` in README.md). The router is fitted
on the `train` split and scored on `--split` with the metrics of `dars.evaluation.metrics`,
next to the reference routers (fitted the same way) and the oracle.

Router interface (scikit-learn style; see README "Benchmark a router"):

* `Router()` must work with no arguments (give every `__init__` argument a default);
* `fit(X, Y)`: X is a list of n query prompts (str), Y a float array (n, n_models) of
  targets, mean - beta * std of the distributional label (risk-adjusted quality), columns
  in the order of `models`. If `fit` also accepts keyword arguments named `models` (the
  model names) or `cost` (a (n, n_models) array of normalised costs), they are passed.
  Returns self.
* `predict(X)`: a finite float array (len(X), n_models), higher = better. The harness
  routes each query to argmax(prediction - lambda * mean train cost of the model).

Utility weights: by default the dataset's own, recorded per task in its MANIFEST.json
(`utility`; read from a local folder or the Hub repo), else lambda 0.05 and beta 0.2;
`--lambda-cost` / `--beta-risk` override them with one number for every task.

Evaluation views: when the dataset publishes the `outcomes` config, every router is also
scored under DARS's views of the split, `prompt_variation` (K variants, one decode each)
and `decoding_variation` (the original prompt, N decodes); see `dars.labels.views`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import InputDataError, RouterInterfaceError
from dars.core.io import write_json
from dars.labels import utility as W
from dars.labels import views as V
from dars.routers import ROUTERS, make_router
from dars.stages.evaluate import (
    DEFAULT_LAMBDAS,
    EvalSettings,
    check_predictions,
    evaluate_systems,
    evaluate_views,
)
from dars.stages.train import LABEL_COLUMNS, dars_targets

CONFIGS = ("queries", "labels")


def load_split(dataset: str, config: str, split: str) -> pd.DataFrame:
    """One config/split of a published dataset (Hub id or local folder) as a DataFrame."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except DatasetNotFoundError as exc:
        raise InputDataError(
            f"dataset {dataset!r} was not found (neither a local folder nor a Hub repo): {exc}"
        ) from exc
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise InputDataError(
            f"dataset {dataset!r} has no config {config!r} with split {split!r} in the publish "
            f"layout (README.md `configs:` with data_files `{config}/{split}-*.parquet`): {exc}"
        ) from exc
    return ds.to_pandas()


def load_published(dataset: str, *, split: str) -> dict[str, pd.DataFrame]:
    """labels and queries of the train split and of `split`, checked for contract columns."""
    out = {}
    for sp in dict.fromkeys(("train", split)):
        for cfg, cols in (("queries", ["query_id", "prompt"]), ("labels", LABEL_COLUMNS)):
            df = load_split(dataset, cfg, sp)
            missing = [c for c in cols if c not in df.columns]
            if missing:
                raise InputDataError(
                    f"dataset {dataset!r} config {cfg!r} split {sp!r} lacks contract columns "
                    f"{missing}; it has {list(df.columns)}"
                )
            out[f"{cfg}/{sp}"] = df
    return out


def published_weights(dataset: str) -> dict[str, Any] | None:
    """The `utility` record ({lambda_cost, beta_risk}) of the dataset's MANIFEST.json, from a
    local folder or the Hub repo; None when there is none (older builds, no network)."""
    import json

    folder = Path(dataset)
    if folder.is_dir():
        path: Path | None = folder / "MANIFEST.json"
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(dataset, "MANIFEST.json", repo_type="dataset"))
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError):
            path = None  # no network, no such repo or file: the defaults apply
    if path is None or not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8")).get("utility")
    except (json.JSONDecodeError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def view_outcomes(dataset: str, split: str, query_ids: list[str]) -> pd.DataFrame | None:
    """The split's outcomes (the columns the views need), or None if not published."""
    try:
        df = load_split(dataset, "outcomes", split)
    except InputDataError:
        return None
    if any(c not in df.columns for c in V.OUTCOME_COLUMNS):
        return None
    keep = V.OUTCOME_COLUMNS + (["true_p"] if "true_p" in df.columns else [])
    return df.loc[df["query_id"].isin(set(query_ids)), keep]


def import_router(spec: str) -> type:
    """`module:Class` or `path/to/file.py:Class` -> the class, with clear errors."""
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise RouterInterfaceError(
            f"--router {spec!r} must look like 'my_module:MyRouter' or 'path/to/file.py:MyRouter'"
        )
    mod_name, cls_name = spec.split(":")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.exists():
            raise RouterInterfaceError(f"--router {spec!r}: file {mod_name!r} does not exist")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert loader_spec is not None and loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # like `python -m`: the working folder imports
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            raise RouterInterfaceError(
                f"--router {spec!r}: cannot import module {mod_name!r} ({exc}); run from the "
                "folder that holds it, set PYTHONPATH, or pass path/to/file.py:Class"
            ) from exc
    cls = getattr(module, cls_name, None)
    if cls is None:
        classes = sorted(n for n, o in vars(module).items() if inspect.isclass(o))
        raise RouterInterfaceError(
            f"--router {spec!r}: module {mod_name!r} has no attribute {cls_name!r}; "
            f"classes in it: {classes}"
        )
    if not inspect.isclass(cls):
        raise RouterInterfaceError(f"--router {spec!r}: {cls_name!r} is not a class")
    return cls


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""


def _call(who: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except RouterInterfaceError:
        raise
    except Exception as exc:  # the user's code failed: name it, keep the cause chained
        raise RouterInterfaceError(
            f"{who} raised {type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc


def instantiate(cls: type) -> Any:
    """`cls()` with its interface checked: fit(X, Y) and predict(X) must exist and bind."""
    name = cls.__name__
    try:
        router = cls()
    except TypeError as exc:
        raise RouterInterfaceError(
            f"{name}() failed: {exc}. A router must be constructible with no arguments "
            "(give every __init__ argument a default, scikit-learn style)"
        ) from exc
    for method, args in (("fit", ("X", "Y")), ("predict", ("X",))):
        fn = getattr(router, method, None)
        if not callable(fn):
            raise RouterInterfaceError(
                f"{name} has no method {method!r}. A router needs fit(X, Y) -> self and "
                "predict(X) -> array of shape (n_queries, n_models)"
            )
        try:
            inspect.signature(fn).bind(*args)
        except TypeError as exc:
            raise RouterInterfaceError(
                f"{name}.{method}{inspect.signature(fn)} cannot be called as "
                f"{method}({', '.join(args)}): {exc}"
            ) from exc
    return router


def fit_user_router(
    router: Any, *, texts: list[str], y: np.ndarray, cost: np.ndarray, models: list[str]
) -> Any:
    name = type(router).__name__
    params = inspect.signature(router.fit).parameters
    extra: dict[str, Any] = {}
    if "models" in params:
        extra["models"] = list(models)
    if "cost" in params:
        extra["cost"] = cost
    _call(f"{name}.fit(X, Y)", router.fit, texts, y, **extra)
    return router


def train_frame(
    queries: pd.DataFrame, labels: pd.DataFrame, *, models: list[str], beta_risk: W.Weight
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Train prompts and DARS targets, keeping queries whose targets are all known."""
    q = queries[queries["query_id"].isin(labels["query_id"])].sort_values("query_id")
    ids = q["query_id"].tolist()
    y, c = dars_targets(labels, query_ids=ids, models=models, beta_risk=beta_risk)
    keep = np.isfinite(y).all(1) & np.isfinite(c).all(1)
    texts = [t for t, k in zip(q["prompt"], keep, strict=True) if k]
    return texts, y[keep], c[keep]


def print_table(result: dict[str, Any], user: str) -> None:
    from rich.console import Console
    from rich.table import Table

    cols = ["quality", "cost", "utility", "regret", "apgr", "nauc"]
    t = Table(
        title=f"dars bench: {result['dataset']} [{result['split']}], "
        f"{result['n_test_queries']} queries, λ={W.describe(result['settings']['lambda_cost'])}, "
        f"β={W.describe(result['settings']['beta_risk'])}"
    )
    t.add_column("router")
    for c in cols:
        t.add_column(c, justify="right")
    rows = [(n, r["dars"]) for n, r in result["routers"].items()]
    rows += list(result["reference"].items())
    for n, s in rows:
        cells = []
        for c in cols:
            v = s[c]
            cells.append(
                "n/a"
                if not np.isfinite(v["value"])
                else f"{v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
            )
        t.add_row(f"[bold]{n}[/bold]" if n == user else n, *cells)
    console = Console(width=200)
    console.print(t)
    views = result.get("views") or {}
    if views:
        v = Table(title="utility by DARS evaluation view (same outcomes; queries scored)")
        v.add_column("router")
        v.add_column(f"{V.FULL} ({result['n_test_queries']})", justify="right")
        for name, entry in views.items():
            v.add_column(f"{name} ({entry['n_test_queries']})", justify="right")
        every = [(n, r.get("dars"), "routers") for n, r in result["routers"].items()]
        every += [(n, s, "reference") for n, s in result["reference"].items()]
        for n, s, group in every:
            cells = [_cell(s)]
            for entry in views.values():
                found = entry[group].get(n)
                cells.append(_cell(found.get("dars") if group == "routers" and found else found))
            v.add_row(f"[bold]{n}[/bold]" if n == user else n, *cells)
        console.print(v)


def _cell(summary: dict[str, Any] | None) -> str:
    if not summary or not np.isfinite(summary["utility"]["value"]):
        return "n/a"
    u = summary["utility"]
    return f"{u['value']:.3f} [{u['ci_low']:.3f}, {u['ci_high']:.3f}]"


def run(
    *,
    dataset: str,
    router: str,
    split: str = "test",
    output: str | None = None,
    baselines: list[str] | None = None,
    lambda_cost: float | None = None,
    beta_risk: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    cls = import_router(router)
    user = instantiate(cls)
    user_name = f"{cls.__name__} (yours)"
    baselines = list(ROUTERS.names() if baselines is None else baselines)
    for b in baselines:
        ROUTERS.get(b)  # unknown name -> "Did you mean ...?"
    data = load_published(dataset, split=split)
    recorded = published_weights(dataset) or {}
    lam: W.Weight = W.parse_weight(
        recorded.get("lambda_cost", 0.05) if lambda_cost is None else lambda_cost, "lambda_cost"
    )
    beta: W.Weight = W.parse_weight(
        recorded.get("beta_risk", 0.2) if beta_risk is None else beta_risk, "beta_risk"
    )
    lab_tr, lab_te = data["labels/train"], data[f"labels/{split}"]
    models = sorted(lab_tr["model"].unique())
    if sorted(lab_te["model"].unique()) != models:
        raise InputDataError(
            f"dataset {dataset!r}: split {split!r} has models {sorted(lab_te['model'].unique())}"
            f", train has {models}"
        )
    texts, y, cost = train_frame(data["queries/train"], lab_tr, models=models, beta_risk=beta)
    if len(texts) < 2:
        raise InputDataError(f"dataset {dataset!r}: fewer than 2 usable train queries")
    cost_est = cost.mean(axis=0)

    from dars.evaluation import metrics as M
    from dars.stages.evaluate import test_label_matrix

    q_te = data[f"queries/{split}"].sort_values("query_id")
    q_te = q_te[q_te["query_id"].isin(lab_te["query_id"])]
    lm, ok = test_label_matrix(lab_te, q_te["query_id"].tolist(), models)
    test_texts = [t for t, k in zip(q_te["prompt"], ok, strict=True) if k]
    if not test_texts:
        raise InputDataError(f"dataset {dataset!r}: no {split!r} query has complete labels")

    fit_user_router(user, texts=texts, y=y, cost=cost, models=models)
    pred = _call(f"{cls.__name__}.predict(X)", user.predict, test_texts)
    pred = check_predictions(pred, n_queries=len(test_texts), models=models, who=cls.__name__)
    systems = {user_name: {"dars": [(pred, cost_est)]}}
    for b in baselines:
        pipe = make_router(b, random_state=seed).fit(texts, y)
        systems[b] = {"dars": [(np.asarray(pipe.predict(test_texts)), cost_est)]}
    settings = EvalSettings(
        lambda_cost=lam,
        beta_risk=beta,
        lambdas=DEFAULT_LAMBDAS,
        n_boot=n_boot,
        seed=seed,
        ci=0.95,
    )
    result, scored, _, _ = evaluate_systems(systems, lm=lm, settings=settings)
    result.update(
        dataset=dataset,
        split=split,
        router=router,
        n_train_queries=len(texts),
        n_test_dropped=int((~ok).sum()),
        versus={b: M.compare(scored[user_name]["dars"], scored[b]["dars"]) for b in baselines},
        weights_source="MANIFEST.json" if recorded else "defaults",
    )
    outcomes = view_outcomes(dataset, split, lm.query_ids)
    if outcomes is None:
        result["views"] = {}
        print(f"bench: {dataset!r} publishes no `outcomes` config; evaluation views skipped")
    else:
        by_view = V.all_view_labels(
            outcomes,
            query_ids=lm.query_ids,
            cost_scale=V.cost_scale(pd.concat([lab_tr, lab_te])),
            tasks=lab_te[["query_id", "task"]] if "task" in lab_te.columns else None,
        )
        result["views"] = evaluate_views(systems, lm=lm, labels_by_view=by_view, settings=settings)
    print_table(result, user_name)
    if output:
        write_json(result, output)
        print(f"bench -> {output}")
    return result
