"""`knn`: the average target of the k nearest training queries (cosine distance).

This is the kNN router of the routing literature (RouterBench, EmbedLLM's kNN baseline),
without their `fillna(0)`: training targets never contain missing values (pairs whose
label is missing are dropped before fitting).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsRegressor

from dars.routers.base import BaseRouter


class KNNRouter(BaseRouter):
    def __init__(self, n_neighbors: int = 10, weights: str = "distance") -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        if not isinstance(self.n_neighbors, int) or self.n_neighbors < 1:
            raise ValueError(f"n_neighbors={self.n_neighbors!r} must be an integer >= 1")
        k = min(self.n_neighbors, X.shape[0])  # fewer training queries than k: use them all
        self.knn_ = KNeighborsRegressor(
            n_neighbors=k, weights=self.weights, metric="cosine", algorithm="brute"
        ).fit(X, Y)

    def _predict(self, X: Any) -> np.ndarray:
        return self.knn_.predict(X)
