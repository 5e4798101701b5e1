"""`dars bench`: fit a user's router on a published DARS dataset and score it on a split.

    dars bench --dataset <hub-id-or-local-folder> --router my_module:MyRouter
               [--router-arg k=v ...] [--split test] [--lambda L] [--beta B]
               [--output results.json]
    dars bench --dataset <...> --predictions choices.csv      # query_id,model per line

    from dars.bench import run
    results = run(dataset="./publish", router=MyRouter(alpha=0.5))  # or the class, or
    results["versus"], results.table                                 # "module:Class"

The dataset is read with `datasets.load_dataset(dataset, config, split=...)` for the
configs `queries` and `labels` (a Hub repo or a local folder in the publish layout:
`<config>/<split>-*.parquet` declared under `configs:` in README.md). The router is fitted
on the `train` split and scored on `--split` with the metrics of `dars.evaluation.metrics`,
next to the reference routers (fitted the same way) and the oracle.

Router interface (scikit-learn style; see README "Benchmark a router"):

* `Router(**router_args)` must work with the given keyword arguments (`--router-arg k=v`;
  none by default, so give every `__init__` argument a default). The Python API also
  takes a class or an instance (used as it is);
* `fit(X, Y)`: X is a list of n query prompts (str), Y a float array (n, n_models) of
  targets, mean - beta * std of the distributional label (risk-adjusted quality), columns
  in the order of `models`. `fit` gets more when it names these keyword arguments:
  - `models`: the model names (the columns of Y);
  - `cost`: a (n, n_models) array of normalised costs;
  - `labels`: the train labels of those n queries as a DataFrame, one row per
    (query_id, model) with `mean, std, ci_low, ci_high, alpha, beta, n, task` (and every
    other published label column), so a distribution-aware router can use the spread,
    the interval or the task;
  - `tasks`: a list of the n queries' tasks, aligned with X.
  Returns self.
* `predict(X)`: a finite float array (len(X), n_models), higher = better. The harness
  routes each query to argmax(prediction - lambda * mean train cost of the model).

Predictions instead of a router (`--predictions FILE`, RouterArena-style): a CSV or JSONL
file of `query_id,model` choices, one per scored query of the split (the layout and its
checks: `dars.evaluation.prediction_file`). The choices are scored exactly as a router's
routing is, at every cost weight (a fixed choice does not move with lambda), next to the
same reference routers and the oracle; no code is imported.

Utility weights (lambda, beta): `--lambda` / `--beta` when given (one number for every
task); else the dataset's own from its MANIFEST.json: the `utility` record (per task where
the build has per-task weights), else the `aggregate` section of the params.yaml it was
built with; else 0.05 and 0.2. The results record the values used, where each came from
(`weights_source`), and the dataset's version and revision. Scoring `--split train` warns:
the router was fitted on it.

Evaluation views: when the dataset publishes the `outcomes` config, every router is also
scored under DARS's views of the split, `prompt_variation` (K variants, one decode each)
and `decoding_variation` (the original prompt, N decodes); see `dars.labels.views`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dars.core.errors import DarsWarning, InputDataError, RouterInterfaceError
from dars.core.io import write_json
from dars.evaluation.routing import (
    DEFAULT_LAMBDAS,
    EvalSettings,
    check_predictions,
    test_label_matrix,
)
from dars.labels import utility as W
from dars.labels import views as V
from dars.routers import ROUTERS, make_router
from dars.routers.targets import LABEL_COLUMNS, dars_targets

CONFIGS = ("queries", "labels")
#: label columns a router's `fit(..., labels=...)` is promised (when the dataset has them)
FIT_LABEL_COLUMNS = [
    "query_id",
    "model",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "alpha",
    "beta",
    "n",
    "task",
]
DEFAULT_LAMBDA, DEFAULT_BETA = 0.05, 0.2
#: the keyword arguments `fit` gets when its signature names them
FIT_EXTRAS = ("models", "cost", "labels", "tasks")


def is_local(dataset: str) -> bool:
    return Path(dataset).exists()


def load_split(dataset: str, config: str, split: str) -> pd.DataFrame:
    """One config/split of a published dataset (Hub id or local folder) as a DataFrame."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except DatasetNotFoundError as exc:
        raise InputDataError(
            f"dataset {dataset!r} was not found (neither a local folder nor a Hub repo): "
            f"{_first_line(exc)}"
        ) from exc
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise InputDataError(
            f"dataset {dataset!r} has no config {config!r} with split {split!r} in the publish "
            f"layout (README.md `configs:` with data_files `{config}/{split}-*.parquet`): {exc}"
        ) from exc
    except Exception as exc:  # network: the HTTP client's own errors, offline mode, ...
        if is_local(dataset):
            raise
        raise InputDataError(
            f"dataset {dataset!r} could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {_first_line(exc)}); check the network, or pass a "
            "local folder in the publish layout"
        ) from exc
    return ds.to_pandas()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_manifest(dataset: str) -> tuple[dict[str, Any], str | None]:
    """The dataset's MANIFEST.json ({} when it has none) and its revision: the Hub commit
    sha for a Hub id, the sha256 of MANIFEST.json for a local folder."""
    import hashlib

    if is_local(dataset):
        path = Path(dataset) / "MANIFEST.json"
        if not path.is_file():
            return {}, None
        data = path.read_bytes()
        return json.loads(data), "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        from huggingface_hub import HfApi, hf_hub_download

        revision = HfApi().dataset_info(dataset).sha
        path = Path(
            hf_hub_download(dataset, "MANIFEST.json", repo_type="dataset", revision=revision)
        )
        return json.loads(path.read_text(encoding="utf-8")), revision
    except Exception as exc:  # the splits loaded, so the repo exists: it just has no manifest
        warnings.warn(
            f"dataset {dataset!r}: no MANIFEST.json read ({type(exc).__name__}: "
            f"{_first_line(exc)}); its version is not recorded",
            DarsWarning,
            stacklevel=2,
        )
        return {}, None


# what a MANIFEST.json params_yaml should be, and the fix when it is not
REPUBLISH = "it should be the params.yaml the dataset was built with: republish it with `dars card`"


def manifest_weights(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """lambda_cost and beta_risk of the dataset, each a number or {task: number}, and where
    each came from: the manifest's `utility` record (what the build used, per task), else
    the `aggregate` section of the params.yaml it records (parsed by the params schema,
    like any params.yaml), else the defaults ("MANIFEST.json" or "defaults" per weight)."""
    import yaml

    from dars.core.params import parse, section

    utility = manifest.get("utility")
    utility = utility if isinstance(utility, dict) else {}
    try:
        raw = yaml.safe_load(manifest.get("params_yaml") or "") or {}
    except yaml.YAMLError as exc:
        raise InputDataError(
            f"MANIFEST.json params_yaml is not valid YAML ({_first_line(exc)}); {REPUBLISH}"
        ) from exc
    if not isinstance(raw, dict):
        raise InputDataError(
            f"MANIFEST.json params_yaml is a YAML {type(raw).__name__}, not a mapping; {REPUBLISH}"
        )
    recorded = parse(raw, "MANIFEST.json params_yaml")
    agg = section(recorded, "aggregate") if recorded.has("aggregate") else None
    out: dict[str, Any] = {}
    source: dict[str, str] = {}
    for key, default in (("lambda_cost", DEFAULT_LAMBDA), ("beta_risk", DEFAULT_BETA)):
        if utility.get(key) is not None:
            out[key] = W.parse_weight(utility[key], f"MANIFEST.json utility.{key}")
        elif agg is not None:
            out[key] = W.weight(getattr(agg, key))
        else:
            out[key], source[key] = default, "defaults"
            continue
        source[key] = "MANIFEST.json"
    return out, source


def check_hub(dataset: str) -> None:
    """A Hub id must be reachable: one request, so an offline machine fails at once in one
    line (instead of the loader's retries). A missing or gated repo is left to the loader,
    whose message says which."""
    from huggingface_hub import constants

    if is_local(dataset) or constants.HF_HUB_OFFLINE:
        return  # offline mode: the loader reads its cache (or fails in one line)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().dataset_info(dataset)
    except HfHubHTTPError:
        return  # the Hub answered (404, 401, ...): the loader names the problem
    except Exception as exc:  # the HTTP client's transport errors, offline mode, ...
        raise InputDataError(
            f"dataset {dataset!r} could not be fetched from the Hugging Face Hub "
            f"({type(exc).__name__}: {_first_line(exc)}); check the network, or pass a "
            "local folder in the publish layout"
        ) from exc


def load_published(dataset: str, *, split: str) -> dict[str, pd.DataFrame]:
    """labels and queries of the train split and of `split`, checked for contract columns."""
    check_hub(dataset)
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


def view_outcomes(dataset: str, split: str, query_ids: list[str]) -> pd.DataFrame | None:
    """The split's outcomes (the columns the views need), or None if not published."""
    try:
        df = load_split(dataset, "outcomes", split)
    except InputDataError:
        return None
    if any(c not in df.columns for c in V.OUTCOME_COLUMNS):
        return None
    keep = V.OUTCOME_COLUMNS + [c for c in V.OPTIONAL_COLUMNS if c in df.columns]
    return df.loc[df["query_id"].isin(set(query_ids)), keep]


def parse_router_args(items: list[str] | None) -> dict[str, Any]:
    """`k=v` strings -> keyword arguments; values are read as YAML (1, 0.5, true, [1, 2])."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise RouterInterfaceError(
                f"--router-arg {item!r} must look like name=value, e.g. alpha=0.5"
            )
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def resolve_router(router: Any, router_args: dict[str, Any] | None = None) -> tuple[Any, str]:
    """A router instance and its display name from an instance, a class or 'module:Class'."""
    if isinstance(router, str):
        router = import_router(router)
    if inspect.isclass(router):
        return instantiate(router, router_args), router.__name__
    if router_args:
        raise RouterInterfaceError(
            f"router arguments {sorted(router_args)} were given with an instance of "
            f"{type(router).__name__}; pass the class (or 'module:Class') to have them used"
        )
    check_interface(router, type(router).__name__)
    return router, type(router).__name__


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


def instantiate(cls: type, kwargs: dict[str, Any] | None = None) -> Any:
    """`cls(**kwargs)` with its interface checked: fit(X, Y) and predict(X) must bind."""
    name = cls.__name__
    kwargs = dict(kwargs or {})
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    try:
        router = cls(**kwargs)
    except TypeError as exc:
        need = (
            "with the --router-arg keyword arguments only (give every other __init__ "
            "argument a default, scikit-learn style)"
            if kwargs
            else "with no arguments (give every __init__ argument a default, scikit-learn "
            "style, or pass them with --router-arg name=value)"
        )
        raise RouterInterfaceError(
            f"{name}({shown}) failed: {exc}. A router must be constructible {need}"
        ) from exc
    return check_interface(router, name)


def check_interface(router: Any, name: str) -> Any:
    """fit(X, Y) and predict(X) must exist and bind; returns the router."""
    for method, args in (("fit", ("X", "Y")), ("predict", ("X",))):
        fn = getattr(router, method, None)
        if not callable(fn):
            raise RouterInterfaceError(
                f"{name} has no method {method!r}. A router needs fit(X, Y) -> self and "
                "predict(X) -> array of shape (n_queries, n_models)"
            )
        sig = inspect.signature(fn)
        extras = {k: None for k in FIT_EXTRAS if method == "fit" and k in sig.parameters}
        try:
            sig.bind(*args, **extras)
        except TypeError as exc:
            raise RouterInterfaceError(
                f"{name}.{method}{inspect.signature(fn)} cannot be called as "
                f"{method}({', '.join(args)}): {exc}"
            ) from exc
    return router


def fit_user_router(
    router: Any,
    *,
    texts: list[str],
    y: np.ndarray,
    cost: np.ndarray,
    models: list[str],
    labels: pd.DataFrame | None = None,
    tasks: list[str] | None = None,
) -> Any:
    """router.fit(X, Y, ...) with the named extras its signature asks for."""
    name = type(router).__name__
    params = inspect.signature(router.fit).parameters
    offered: dict[str, Any] = {"models": list(models), "cost": cost}
    if labels is not None:
        offered["labels"] = labels
    if tasks is not None:
        offered["tasks"] = tasks
    extra = {k: v for k, v in offered.items() if k in params}
    for k in ("labels", "tasks"):
        if k in params and k not in offered:
            raise RouterInterfaceError(
                f"{name}.fit asks for {k!r}, but the dataset's labels have no "
                f"{'task' if k == 'tasks' else 'distribution'} columns"
            )
    _call(f"{name}.fit(X, Y)", router.fit, texts, y, **extra)
    return router


def train_frame(
    queries: pd.DataFrame, labels: pd.DataFrame, *, models: list[str], beta_risk: W.Weight
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Train query ids, prompts and DARS targets, keeping queries whose targets are all
    known."""
    q = queries[queries["query_id"].isin(labels["query_id"])].sort_values("query_id")
    ids = q["query_id"].tolist()
    y, c = dars_targets(labels, query_ids=ids, models=models, beta_risk=beta_risk)
    keep = np.isfinite(y).all(1) & np.isfinite(c).all(1)
    texts = [t for t, k in zip(q["prompt"], keep, strict=True) if k]
    kept = [i for i, k in zip(ids, keep, strict=True) if k]
    return kept, texts, y[keep], c[keep]


def fit_extras(
    labels: pd.DataFrame, ids: list[str], models: list[str]
) -> tuple[pd.DataFrame | None, list[str] | None]:
    """The `labels` frame (rows of the kept train queries, ordered like X and models) and
    the `tasks` list a router's fit may ask for; None where the dataset lacks columns."""
    need = [c for c in FIT_LABEL_COLUMNS if c not in ("task",)]
    lab = None
    if all(c in labels.columns for c in need):
        order = {q: i for i, q in enumerate(ids)}
        col = {m: j for j, m in enumerate(models)}
        lab = labels[labels["query_id"].isin(order) & labels["model"].isin(col)].copy()
        lab["_o"] = lab["query_id"].map(order) * len(models) + lab["model"].map(col)
        lab = lab.sort_values("_o").drop(columns="_o").reset_index(drop=True)
    tasks = None
    if "task" in labels.columns:
        by_query = labels.drop_duplicates("query_id").set_index("query_id")["task"]
        tasks = [str(by_query[q]) for q in ids]
    return lab, tasks


def results_table(result: dict[str, Any], user: str) -> pd.DataFrame:
    """One row per system (yours, the reference routers, oracle, best single): every
    metric's value and interval, and, for the baselines, yours minus it."""
    rows = []
    systems = [(n, r["dars"], "router") for n, r in result["routers"].items()]
    systems += [(n, s, "reference") for n, s in result["reference"].items()]
    for name, s, kind in systems:
        row: dict[str, Any] = {"system": name, "kind": "yours" if name == user else kind}
        for metric, v in s.items():
            if isinstance(v, dict) and "value" in v:
                row[metric] = v["value"]
                row[f"{metric}_ci_low"] = v.get("ci_low")
                row[f"{metric}_ci_high"] = v.get("ci_high")
        for metric, d in (result.get("versus", {}).get(name) or {}).items():
            row[f"yours_minus_{metric}"] = d["diff"]
            row[f"yours_minus_{metric}_ci_low"] = d["ci_low"]
            row[f"yours_minus_{metric}_ci_high"] = d["ci_high"]
            row[f"yours_minus_{metric}_p"] = d["p_value"]
        rows.append(row)
    return pd.DataFrame(rows)


class BenchResult(dict):
    """The results dict (what `--output` writes), with `.table`: the same as a DataFrame."""

    table: pd.DataFrame


def print_table(result: dict[str, Any], user: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    cols = ["quality", "cost", "utility", "regret", "apgr", "nauc"]
    t = Table(
        title=f"dars bench: {escape(result['dataset'])} \\[{result['split']}], "
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
    if result.get("versus"):
        d = Table(
            title=f"{user} minus each baseline (paired bootstrap, "
            f"{int(result['settings']['ci'] * 100)}% interval, p-value)"
        )
        d.add_column("baseline")
        for c in ("utility", "quality", "cost", "regret"):
            d.add_column(f"Δ {c}", justify="right")
        for b, cmp in result["versus"].items():
            cells = []
            for c in ("utility", "quality", "cost", "regret"):
                v = cmp.get(c)
                cells.append(
                    "n/a"
                    if not v or not np.isfinite(v["diff"])
                    else f"{v['diff']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}] "
                    f"p={v['p_value']:.3f}"
                )
            d.add_row(b, *cells)
        console.print(d)
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
    field = result.get("field")
    if field:
        from dars.evaluation.report import FIELD_COLUMNS

        f = Table(
            title=f"the field's metrics (RouteLLM pair: {escape(field['strong_model'])} vs "
            f"{escape(field['weak_model'])}; all queries | per-task macro)"
        )
        f.add_column("router")
        for _, title in FIELD_COLUMNS:
            f.add_column(title, justify="right")
        for n, sups in field["systems"].items():
            e = sups.get("dars") or next(iter(sups.values()))
            cells = []
            for k, _ in FIELD_COLUMNS:
                a, m = e["all"].get(k, float("nan")), e["macro"].get(k, float("nan"))
                cells.append("n/a" if not np.isfinite(a) else f"{a:.3f} | {m:.3f}")
            f.add_row(f"[bold]{escape(n)}[/bold]" if n == user else escape(n), *cells)
        console.print(f)


def _cell(summary: dict[str, Any] | None) -> str:
    if not summary or not np.isfinite(summary["utility"]["value"]):
        return "n/a"
    u = summary["utility"]
    return f"{u['value']:.3f} [{u['ci_low']:.3f}, {u['ci_high']:.3f}]"


def run(
    *,
    dataset: str,
    router: Any = None,
    predictions: str | Path | None = None,
    router_args: dict[str, Any] | None = None,
    split: str = "test",
    output: str | None = None,
    baselines: list[str] | None = None,
    lambda_cost: float | None = None,
    beta_risk: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    protocol: str = "ours",
    runs: int | None = None,
    beta_per_task: list[str] | None = None,
) -> BenchResult:
    """Fit `router` (an instance, a class or 'module:Class') on the train split of
    `dataset` and score it on `split`; or score the choices in the file `predictions`
    instead; returns the results dict with `.table`. `protocol="dars"`: DARS's protocol
    instead (`run_dars_protocol`)."""
    if (router is None) == (predictions is None):
        raise RouterInterfaceError(
            "give a router (--router my_module:MyRouter) or a predictions file "
            "(--predictions FILE), exactly one"
        )
    if protocol == "dars":
        if predictions is not None:
            raise RouterInterfaceError(
                "--protocol dars fits the router per task and single-shot run; it cannot score "
                "a predictions file (use the default protocol)"
            )
        return run_dars_protocol(
            dataset=dataset,
            router=router,
            router_args=router_args,
            output=output,
            baselines=baselines,
            lambda_cost=lambda_cost,
            beta_risk=beta_risk,
            runs=runs,
            beta_per_task=beta_per_task,
        )
    if predictions is None:
        user, cls_name = resolve_router(router, router_args)
    else:
        user, cls_name = None, f"predictions {Path(predictions).name}"
    user_name = f"{cls_name} (yours)"
    baselines = list(ROUTERS.names() if baselines is None else baselines)
    for b in baselines:
        ROUTERS.get(b)  # unknown name -> "Did you mean ...?"
    if split == "train":
        msg = (
            "scoring the train split: the router (and the baselines) were fitted on it, so "
            "these numbers measure fit, not generalisation; use --split test"
        )
        warnings.warn(msg, DarsWarning, stacklevel=2)
        print(f"bench: warning: {msg}", file=sys.stderr)
    data = load_published(dataset, split=split)
    manifest, revision = read_manifest(dataset)
    recorded, weights_source = manifest_weights(manifest)
    weights_from = {
        "lambda_cost": weights_source["lambda_cost"] if lambda_cost is None else "--lambda",
        "beta_risk": weights_source["beta_risk"] if beta_risk is None else "--beta",
    }
    lam: W.Weight = (
        recorded["lambda_cost"] if lambda_cost is None else W.parse_weight(lambda_cost, "--lambda")
    )
    beta: W.Weight = (
        recorded["beta_risk"] if beta_risk is None else W.parse_weight(beta_risk, "--beta")
    )
    lab_tr, lab_te = data["labels/train"], data[f"labels/{split}"]
    models = sorted(lab_tr["model"].unique())
    if sorted(lab_te["model"].unique()) != models:
        raise InputDataError(
            f"dataset {dataset!r}: split {split!r} has models {sorted(lab_te['model'].unique())}"
            f", train has {models}"
        )
    ids, texts, y, cost = train_frame(data["queries/train"], lab_tr, models=models, beta_risk=beta)
    if len(texts) < 2:
        raise InputDataError(f"dataset {dataset!r}: fewer than 2 usable train queries")
    cost_est = cost.mean(axis=0)

    from dars.evaluation import metrics as M
    from dars.evaluation import scoring

    q_te = data[f"queries/{split}"].sort_values("query_id")
    q_te = q_te[q_te["query_id"].isin(lab_te["query_id"])]
    lm, ok = test_label_matrix(lab_te, q_te["query_id"].tolist(), models)
    test_texts = [t for t, k in zip(q_te["prompt"], ok, strict=True) if k]
    if not test_texts:
        raise InputDataError(f"dataset {dataset!r}: no {split!r} query has complete labels")
    val_lm, val_texts = validation_frame(dataset, split=split, models=models)

    fitted: dict[str, Any] = {}
    systems: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    if user is None:  # --predictions: fixed choices, routed at any lambda (zero cost)
        from dars.evaluation.prediction_file import one_hot, read_choices

        known = data[f"queries/{split}"]["query_id"].tolist()
        assert predictions is not None  # user is None only with --predictions
        picks = read_choices(
            predictions, scored=lm.query_ids, known=known, models=models, split=split
        )
        systems[user_name] = {"dars": [(one_hot(picks, len(models)), np.zeros(len(models)))]}
    else:
        fit_labels, fit_tasks = fit_extras(lab_tr, ids, models)
        fit_user_router(
            user, texts=texts, y=y, cost=cost, models=models, labels=fit_labels, tasks=fit_tasks
        )
        fitted[user_name] = user
    for b in baselines:
        fitted[b] = make_router(b, random_state=seed, models=models).fit(texts, y)

    def predict(name: str, xs: list[str]) -> np.ndarray:
        who = cls_name if name == user_name else name
        pred = _call(f"{who}.predict(X)", fitted[name].predict, xs)
        return check_predictions(pred, n_queries=len(xs), models=models, who=who)

    systems |= {n: {"dars": [(predict(n, test_texts), cost_est)]} for n in fitted}
    validation = None
    if val_lm is not None:
        validation = scoring.Validation(
            lm=val_lm, predictions={n: {"dars": [predict(n, val_texts)]} for n in fitted}
        )
    settings = EvalSettings(
        lambda_cost=lam,
        beta_risk=beta,
        lambdas=DEFAULT_LAMBDAS,
        n_boot=n_boot,
        seed=seed,
        ci=0.95,
    )
    rewrites = None
    variant_texts = rewrite_texts(dataset, split, lm.query_ids)
    if variant_texts is not None:
        rewrites = {
            n: {"dars": [[_predict_rows(predict, n, col) for col in variant_texts]]} for n in fitted
        }
    outcomes = view_outcomes(dataset, split, lm.query_ids)
    if outcomes is None:
        print(f"bench: {dataset!r} publishes no `outcomes` config; evaluation views skipped")
    result, scored, _, _ = scoring.score(
        systems,
        lm=lm,
        settings=settings,
        outcomes=outcomes,
        labels=pd.concat([lab_tr, lab_te]) if outcomes is not None else lab_te,
        validation=validation,
        rewrite_predictions=rewrites,
    )
    result.setdefault("views", {})
    result.update(
        dataset=dataset,
        dataset_version=manifest.get("dataset_version"),
        dataset_revision=revision,
        split=split,
        router=(
            router
            if isinstance(router, str)
            else str(predictions)
            if user is None
            else f"{type(user).__module__}:{cls_name}"
        ),
        router_args=dict(router_args or {}),
        weights_source=weights_from,
        weights_recorded=recorded,
        n_train_queries=len(texts),
        n_test_dropped=int((~ok).sum()),
        versus={
            b: M.compare(scored[user_name]["dars"], scored[b]["dars"], level=settings.ci)
            for b in baselines
        },
    )
    print_table(result, user_name)
    if output:
        write_json(result, output)
        print(f"bench -> {output}")
    out = BenchResult(result)
    out.table = results_table(result, user_name)
    return out


def rewrite_texts(dataset: str, split: str, query_ids: list[str]) -> list[list[str | None]] | None:
    """The accepted prompt variants of `query_ids` as K columns (None where a query has
    fewer), for robustness across rewrites; None when the dataset publishes no variants."""
    try:
        v = load_split(dataset, "variants", split)
    except InputDataError:
        return None
    if any(c not in v.columns for c in ("query_id", "variant_id", "prompt")):
        return None
    if "accepted" in v.columns:
        v = v[v["accepted"].fillna(False).astype(bool)]
    v = v[v["query_id"].isin(set(query_ids))].sort_values(["query_id", "variant_id"])
    if v.empty:
        return None
    v["k"] = v.groupby("query_id").cumcount()
    wide = v.pivot(index="query_id", columns="k", values="prompt").reindex(query_ids)
    return [[t if isinstance(t, str) else None for t in wide[k]] for k in wide.columns]


def _predict_rows(
    predict: Callable[[str, list[str]], np.ndarray], name: str, texts: list[str | None]
) -> np.ndarray:
    """Predictions for the present texts, NaN rows where a query has no such variant."""
    rows = [i for i, t in enumerate(texts) if t is not None]
    present = [t for t in texts if t is not None]
    first = predict(name, present) if rows else None
    out = np.full((len(texts), first.shape[1] if first is not None else 1), np.nan)
    if first is not None:
        out[rows] = first
    return out


def validation_frame(dataset: str, *, split: str, models: list[str]) -> tuple[Any, list[str]]:
    """The validation split's label matrix and texts (for tuning thresholds off the test
    split), or (None, []) when the dataset publishes none or scores it."""
    if split == "validation":
        return None, []
    try:
        lab = load_split(dataset, "labels", "validation")
        q = load_split(dataset, "queries", "validation").sort_values("query_id")
    except InputDataError:
        return None, []
    if any(c not in lab.columns for c in LABEL_COLUMNS) or sorted(lab["model"].unique()) != models:
        return None, []
    q = q[q["query_id"].isin(lab["query_id"])]
    lm, ok = test_label_matrix(lab, q["query_id"].tolist(), models)
    texts = [t for t, k in zip(q["prompt"], ok, strict=True) if k]
    return (lm, texts) if texts else (None, [])


def run_dars_protocol(
    *,
    dataset: str,
    router: Any,
    router_args: dict[str, Any] | None = None,
    output: str | None = None,
    baselines: list[str] | None = None,
    lambda_cost: float | None = None,
    beta_risk: float | None = None,
    runs: int | None = None,
    beta_per_task: list[str] | None = None,
) -> BenchResult:
    """DARS's protocol (`dars.evaluation.dars_protocol`) on a published dataset's outcome
    rows (configs `queries` and `outcomes`, splits train, validation and test): your
    router and the learned reference routers, fitted per task, R single-shot runs."""
    from sklearn.base import clone

    from dars.evaluation import dars_protocol as P
    from dars.routers import BASELINES

    user, cls_name = resolve_router(router, router_args)
    check_hub(dataset)
    frames: dict[str, list[Any]] = {"queries": [], "outcomes": []}
    splits: list[str] = []
    for sp in ("train", "validation", "test"):
        for cfg in frames:
            try:
                df = load_split(dataset, cfg, sp)
            except InputDataError:
                if sp == "validation":
                    continue
                raise
            frames[cfg].append(df)
            if cfg == "queries":
                splits.append(pd.DataFrame({"query_id": df["query_id"], "split": sp}))
    queries = pd.concat(frames["queries"], ignore_index=True)
    outcomes = pd.concat(frames["outcomes"], ignore_index=True)
    models = sorted(outcomes["model"].unique())

    def make_user(seed: int, n_models: int) -> Any:
        try:
            return clone(user)
        except (TypeError, RuntimeError):
            return user  # not a scikit-learn estimator: refitted in place

    names = [b for b in (ROUTERS.names() if baselines is None else baselines) if b not in BASELINES]
    specs = [P.RouterSpec(f"{cls_name} (yours)", make_user, on_text=True)]
    specs += [P.registry_router(b, models=models) for b in names]
    settings = P.ProtocolSettings(
        lambda_cost=P.DEFAULT_LAMBDA if lambda_cost is None else float(lambda_cost),
        beta_risk=P.DEFAULT_BETA if beta_risk is None else float(beta_risk),
        beta_per_task=P.parse_beta_per_task(beta_per_task),
        runs=P.DEFAULT_RUNS if runs is None else int(runs),
    )
    result = P.evaluate_tables(
        outcomes,
        queries=queries,
        splits=pd.concat(splits, ignore_index=True),
        models=models,
        routers=specs,
        settings=settings,
    )
    result.update(dataset=dataset, router=router if isinstance(router, str) else cls_name)
    print(P.markdown(result))
    if output:
        write_json(result, output)
        print(f"bench -> {output}")
    out = BenchResult(result)
    out.table = P.table_frame(result)
    return out
