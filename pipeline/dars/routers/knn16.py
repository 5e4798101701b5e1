"""`knn16`: DARS's kNNRouter, inverse-distance-weighted targets of the 16 nearest queries.

Behaviour matched to the authors' `methods/knn_router.py`: Euclidean distance on the query
features, the k = 16 nearest training queries (all of them when fewer), weights
1 / (d + 1e-8) normalised to sum 1, and where a training query sits at distance 0 (an
exact duplicate) the zero-distance neighbours share the weight equally. Every head
(score, cost, std) is the same weighted average of its clipped training targets, so the
std head of a single-shot fit (zeros) predicts zeros, as theirs does. Predictions are
clipped to [0, 1].

Deviations, each for a reason:
* The authors compute all test-to-train distances with `torch.cdist` on a dense copy
  (GPU if present). This uses scikit-learn's brute-force `NearestNeighbors`, which reads
  scipy.sparse TF-IDF directly (no 20,000-column dense copy) and needs no torch; the
  neighbours and weights are the same up to float rounding (float64 here, float32
  there), which can only reorder neighbours at exactly tied distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from dars.routers.base import BaseRouter
from dars.routers.dars_common import check_positive_int


class DarsKNNRouter(BaseRouter):
    _poor_score = True  # targets and predictions are clipped to [0, 1], as DARS does

    def __init__(self, n_neighbors: int = 16, eps: float = 1e-8) -> None:
        self.n_neighbors = n_neighbors
        self.eps = eps

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        check_positive_int("knn16", n_neighbors=self.n_neighbors)
        if not (isinstance(self.eps, int | float) and self.eps > 0):
            raise ValueError(f"knn16: eps={self.eps!r} must be a number > 0")
        self.k_ = min(int(self.n_neighbors), X.shape[0])
        self.nn_ = NearestNeighbors(n_neighbors=self.k_, algorithm="brute").fit(X)
        self.targets_ = np.clip(Y, 0.0, 1.0)

    def _predict(self, X: Any) -> np.ndarray:
        dist, idx = self.nn_.kneighbors(X, n_neighbors=self.k_)
        zero = dist <= 1e-12
        inv = 1.0 / (dist + self.eps)
        w = np.where(zero.any(axis=1, keepdims=True), zero.astype(np.float64), inv)
        w /= w.sum(axis=1, keepdims=True) + 1e-12
        pred = np.einsum("qk,qkj->qj", w, self.targets_[idx])
        return np.clip(pred, 0.0, 1.0)
