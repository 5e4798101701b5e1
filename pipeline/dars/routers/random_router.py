"""`random`: picks a model uniformly at random (DummyClassifier(strategy="uniform") style).

It predicts independent Uniform(0, 1) scores, so the argmax is a uniform random model.
Predictions are a pure function of `random_state` and the row count (not of X), so two
calls on the same input agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter


class RandomRouter(BaseRouter):
    _poor_score = True

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        self.seed_ = int(np.random.default_rng(self.random_state).integers(2**31))

    def _predict(self, X: Any) -> np.ndarray:
        rng = np.random.default_rng(self.seed_)
        return rng.uniform(size=(X.shape[0], self.n_outputs_))
