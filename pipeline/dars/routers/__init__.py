"""Reference routers, registered by name (one file each).

`make_router(name, features=...)` returns a scikit-learn Pipeline that maps query text to
a (n_queries, n_models) matrix of predicted targets: the text featuriser of
`dars.routers.features` followed by the router's numeric core from this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.pipeline import Pipeline

from dars.core.errors import ParamsError
from dars.core.registry import Registry
from dars.routers.avengers_pro import AvengersProRouter
from dars.routers.base import BaseRouter
from dars.routers.best_single import BestSingleRouter
from dars.routers.cheapest import CheapestRouter
from dars.routers.embedllm import EmbedLLMRouter
from dars.routers.graphrouter import GraphRouter
from dars.routers.knn import KNNRouter
from dars.routers.knn16 import DarsKNNRouter
from dars.routers.linear import RidgeRouter
from dars.routers.mf import MFRouter
from dars.routers.mirt import MIRTRouter
from dars.routers.mlp import MLPRouter
from dars.routers.mlp3 import DarsMLPRouter
from dars.routers.random_router import RandomRouter
from dars.routers.rm_softmax import RMSoftmaxRouter

ROUTERS: Registry[type[BaseRouter]] = Registry("router")
ROUTERS.register("random")(RandomRouter)
ROUTERS.register("best-single")(BestSingleRouter)
ROUTERS.register("cheapest")(CheapestRouter)
ROUTERS.register("knn")(KNNRouter)
ROUTERS.register("ridge")(RidgeRouter)
ROUTERS.register("mlp")(MLPRouter)
ROUTERS.register("mf")(MFRouter)
# DARS's seven (AIGNLAI/DARS `methods/`), behaviour matched; see docs/routers.md
ROUTERS.register("mlp3")(DarsMLPRouter)
ROUTERS.register("knn16")(DarsKNNRouter)
ROUTERS.register("embedllm")(EmbedLLMRouter)
ROUTERS.register("mirt")(MIRTRouter)
ROUTERS.register("rm_softmax")(RMSoftmaxRouter)
ROUTERS.register("graphrouter")(GraphRouter)
ROUTERS.register("avengers_pro")(AvengersProRouter)

#: DARS's seven routers, in the paper's order
DARS_ROUTERS = ("mlp3", "knn16", "embedllm", "mirt", "rm_softmax", "graphrouter", "avengers_pro")

#: routers whose decision does not depend on the query text
BASELINES = ("random", "best-single", "cheapest")


def model_kwargs(name: str, models: Sequence[str] | None) -> dict[str, Any]:
    """What router `name` is told about the models it routes between, where it takes it:
    `n_models` (where its three heads start) and `model_descriptions` (graphrouter's model
    nodes: `graphrouter.describe_models(models)`). Empty when `models` is None."""
    if models is None:
        return {}
    from dars.routers.graphrouter import describe_models

    known = ROUTERS.get(name)().get_params()
    out: dict[str, Any] = {}
    if "n_models" in known:
        out["n_models"] = len(models)
    if "model_descriptions" in known:
        out["model_descriptions"] = describe_models(models)
    return out


def make_router(
    name: str,
    *,
    features: str = "tfidf",
    params: dict[str, Any] | None = None,
    random_state: int | None = None,
    models: Sequence[str] | None = None,
) -> Pipeline:
    """A fresh, unfitted text -> predictions pipeline for the router `name`; `models` (the
    target columns' model names) fills `model_kwargs` where `params` leaves them unset."""
    from dars.routers.features import make_featurizer

    cls = ROUTERS.get(name)
    kwargs = dict(params or {})
    if random_state is not None and "random_state" in cls().get_params():
        kwargs.setdefault("random_state", random_state)
    for key, value in model_kwargs(name, models).items():
        kwargs.setdefault(key, value)
    try:
        core = cls(**kwargs)
    except TypeError as exc:
        valid = sorted(cls().get_params())
        raise ParamsError(
            f"Parameter 'routers.params.{name}' = {kwargs!r} has unknown keys; "
            f"valid keys for router {name!r}: {valid}"
        ) from exc
    return Pipeline([("features", make_featurizer(features)), ("router", core)])


__all__ = [
    "BASELINES",
    "DARS_ROUTERS",
    "ROUTERS",
    "AvengersProRouter",
    "BaseRouter",
    "BestSingleRouter",
    "CheapestRouter",
    "DarsKNNRouter",
    "DarsMLPRouter",
    "EmbedLLMRouter",
    "GraphRouter",
    "KNNRouter",
    "MFRouter",
    "MIRTRouter",
    "MLPRouter",
    "RMSoftmaxRouter",
    "RandomRouter",
    "RidgeRouter",
    "make_router",
    "model_kwargs",
]
