"""`ridge`: one ridge regression per candidate model (a multi-output Ridge)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from dars.routers.base import BaseRouter


class RidgeRouter(BaseRouter):
    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        self.ridge_ = Ridge(alpha=self.alpha).fit(X, Y)

    def _predict(self, X: Any) -> np.ndarray:
        return self.ridge_.predict(X)
