"""`best-single`: always the model with the best mean target on the training queries.

It predicts the per-model training mean for every query (DummyRegressor(strategy="mean")
over the outputs), so the routing decision is the single model with the best mean
utility on train.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter


class BestSingleRouter(BaseRouter):
    _poor_score = True

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        self.means_ = Y.mean(axis=0)

    def _predict(self, X: Any) -> np.ndarray:
        return np.tile(self.means_, (X.shape[0], 1))
