"""`cheapest`: always the cheapest model.

It predicts the same score (0) for every model and query, so the decision rule
`argmax(prediction - lambda * cost)` picks the model with the lowest estimated cost, and
its tie-break (ties go to the cheaper model) does the same at lambda = 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter


class CheapestRouter(BaseRouter):
    _poor_score = True

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        self.constant_ = 0.0

    def _predict(self, X: Any) -> np.ndarray:
        return np.full((X.shape[0], self.n_outputs_), self.constant_)
