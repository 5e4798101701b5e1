"""`mlp`: a multi-layer perceptron regressor with one output per candidate model."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neural_network import MLPRegressor

from dars.routers.base import BaseRouter


class MLPRouter(BaseRouter):
    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64,),
        alpha: float = 1e-3,
        max_iter: int = 300,
        random_state: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        self.mlp_ = MLPRegressor(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            alpha=self.alpha,
            max_iter=self.max_iter,
            random_state=self.random_state,
        ).fit(X, Y[:, 0] if Y.shape[1] == 1 else Y)
        # the optimizer's state (two moments per weight) only serves further training; it
        # would triple the saved router
        self.mlp_._optimizer = None
        self.n_iter_ = self.mlp_.n_iter_

    def _predict(self, X: Any) -> np.ndarray:
        return self.mlp_.predict(X).reshape(X.shape[0], self.n_outputs_)
