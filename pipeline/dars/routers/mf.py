"""`mf`: a matrix-factorisation router in the style of EmbedLLM.

EmbedLLM scores a (query, model) pair by the inner product of a learned query
embedding and a learned model embedding. This router fits that bilinear form in closed
form as a reduced-rank ridge regression:

1. ridge regression B = argmin ||X B + b - Y||^2 + alpha ||B||^2 (all models at once);
2. the top `n_components` right singular vectors V of the fitted values X B are the
   model embeddings (n_models x r); the query embedding is phi(x) = x B V.
3. prediction = phi(x) V^T + b, i.e. <phi(x), e_m> + b_m: rank r shared across models.

Sharing a low-rank structure lets models with few or noisy labels borrow strength from
the others, which is the point of EmbedLLM's factorisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

from dars.routers.base import BaseRouter


class MFRouter(BaseRouter):
    def __init__(self, n_components: int = 2, alpha: float = 1.0) -> None:
        self.n_components = n_components
        self.alpha = alpha

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        if not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"n_components={self.n_components!r} must be an integer >= 1")
        ridge = Ridge(alpha=self.alpha).fit(X, Y)
        coef = ridge.coef_.reshape(Y.shape[1], -1).T  # (n_features, n_models)
        fitted = np.asarray(X @ coef)
        _, _, vt = np.linalg.svd(fitted - fitted.mean(axis=0), full_matrices=False)
        r = min(self.n_components, vt.shape[0])
        self.model_embeddings_ = vt[:r].T  # (n_models, r)
        self.query_projection_ = coef @ self.model_embeddings_  # (n_features, r)
        # the intercept absorbs the centring, so predictions on train means stay exact
        self.intercept_ = np.asarray(ridge.intercept_).reshape(-1) + (
            fitted.mean(axis=0) - fitted.mean(axis=0) @ vt[:r].T @ vt[:r]
        )

    def query_embedding(self, X: Any) -> np.ndarray:
        """phi(x): the r-dimensional query embedding of each row of X."""
        return np.asarray(X @ self.query_projection_)

    def _predict(self, X: Any) -> np.ndarray:
        return self.query_embedding(X) @ self.model_embeddings_.T + self.intercept_
