"""What every reference router shares: scikit-learn's multi-output regressor contract.

A router's numeric core is fitted on a feature matrix X (n_queries, n_features) and a
target matrix Y (n_queries, n_models) and predicts a matrix of the same width: the
expected (risk-adjusted) quality of every candidate model on every query. The routing
decision (argmax of prediction - lambda * cost) lives in `dars.evaluation.metrics.route`.

`__init__` only stores keyword arguments; validation happens in `fit`; `fit` returns
`self`; learned attributes end in `_` (scikit-learn's estimator contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class BaseRouter(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Validation shared by the routers; subclasses implement `_fit` and `_predict`."""

    #: dummy baselines set this: scikit-learn's checks then do not expect a good R^2
    _poor_score = False
    #: routers that accept scipy.sparse features (TF-IDF) set this
    _accept_sparse: bool | str = "csr"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = self._poor_score
        tags.input_tags.sparse = bool(self._accept_sparse)
        return tags

    def fit(self, X: Any, y: Any) -> BaseRouter:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=self._accept_sparse,
            multi_output=True,
            y_numeric=True,
        )
        y = np.asarray(y, dtype=np.float64)
        self.y_ndim_ = y.ndim
        Y = y.reshape(len(y), -1)
        self.n_outputs_ = Y.shape[1]
        self._fit(X, Y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=self._accept_sparse, reset=False)
        out = np.asarray(self._predict(X), dtype=np.float64).reshape(X.shape[0], self.n_outputs_)
        return out.ravel() if self.y_ndim_ == 1 else out

    def _fit(self, X: Any, Y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
