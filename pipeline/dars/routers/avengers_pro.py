"""`avengers_pro`: DARS's AvengersPro, per-cluster tables read at the 3 nearest centroids.

Behaviour matched to the authors' `methods/avengers_pro.py`: KMeans with 32 clusters
(fewer when there are fewer training queries), n_init = 10, max_iter = 300, seeded with
the router's seed; per cluster the mean of every clipped target column (score, cost and
std alike; an empty cluster takes the global mean); a query's prediction is the plain
(unweighted) mean of the tables of its 3 nearest centroids by Euclidean distance. So the
std head of a single-shot fit (zeros) predicts zeros, as theirs does. Predictions are
clipped to [0, 1].

Deviations, each for a reason:
* KMeans runs on the sparse TF-IDF matrix as scikit-learn accepts it, where the authors
  pass a dense float32 copy: Lloyd's algorithm is the same; the float64 arithmetic can
  break exact ties differently.
* The authors seed single-shot run r with 42 + r; here the seed is the `random_state`
  keyword (default 42), which the caller sets per run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from dars.routers.base import BaseRouter
from dars.routers.dars_common import check_positive_int


class AvengersProRouter(BaseRouter):
    _poor_score = True  # targets and predictions are clipped to [0, 1], as DARS does

    def __init__(
        self,
        n_clusters: int = 32,
        n_nearest: int = 3,
        n_init: int = 10,
        max_iter: int = 300,
        random_state: int = 42,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_nearest = n_nearest
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        check_positive_int(
            "avengers_pro",
            n_clusters=self.n_clusters,
            n_nearest=self.n_nearest,
            n_init=self.n_init,
            max_iter=self.max_iter,
        )
        k = min(int(self.n_clusters), X.shape[0])
        self.n_nearest_ = min(int(self.n_nearest), k)
        with warnings.catch_warnings():
            # fewer distinct queries than clusters: KMeans says so and leaves duplicate
            # centroids, whose tables are then equal (the authors' code does the same)
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.kmeans_ = KMeans(
                n_clusters=k,
                n_init=self.n_init,
                max_iter=self.max_iter,
                random_state=self.random_state,
            ).fit(X)
        Yc = np.clip(Y, 0.0, 1.0)
        labels = self.kmeans_.labels_
        table = np.tile(Yc.mean(axis=0), (k, 1))
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(table)
        np.add.at(sums, labels, Yc)
        filled = counts > 0
        table[filled] = sums[filled] / counts[filled, None]
        self.cluster_table_ = table
        self.cluster_sizes_ = counts
        self.n_iter_ = self.kmeans_.n_iter_

    def _predict(self, X: Any) -> np.ndarray:
        d = self.kmeans_.transform(X)  # Euclidean distance to every centroid
        near = np.argpartition(d, self.n_nearest_ - 1, axis=1)[:, : self.n_nearest_]
        return np.clip(self.cluster_table_[near].mean(axis=1), 0.0, 1.0)
