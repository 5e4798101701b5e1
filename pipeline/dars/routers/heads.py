"""Prediction heads: a router may predict, per query and model, quality, cost and risk.

Routers keep scikit-learn's multi-output regressor contract: `fit(X, Y)` and
`predict(X)` with matrices of the same width. With one head, Y is the quality matrix
(n_queries, n_models), as every router has always been fitted. With three heads (DARS's
protocol: its routers predict score, cost and std per query), Y is the three matrices side
by side, `[quality | cost | std]` (n_queries, 3 * n_models), built by `stack` and taken
apart by `split`. A plain multi-output regressor handles either width unchanged; a router
with per-model structure takes `n_models` as a keyword argument (None: the width of Y,
one head) so that it knows where the heads start.

Routing on the heads is argmax of q - lambda * c - beta * s (`dars.evaluation`).
"""

from __future__ import annotations

import numpy as np

HEADS = ("quality", "cost", "std")


def stack(quality: np.ndarray, cost: np.ndarray, std: np.ndarray) -> np.ndarray:
    """[quality | cost | std] side by side: (n_queries, 3 * n_models)."""
    q, c, s = (np.asarray(a, dtype=np.float64) for a in (quality, cost, std))
    if not (q.shape == c.shape == s.shape) or q.ndim != 2:
        raise ValueError(
            f"heads must be three matrices of one shape (n_queries, n_models); got "
            f"{q.shape}, {c.shape}, {s.shape}"
        )
    return np.hstack([q, c, s])


def split(pred: np.ndarray, n_models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quality, cost, std) from a (n_queries, 3 * n_models) prediction."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[1] != 3 * n_models:
        raise ValueError(
            f"a three-head prediction has 3 x {n_models} = {3 * n_models} columns; got shape "
            f"{pred.shape}"
        )
    return pred[:, :n_models], pred[:, n_models : 2 * n_models], pred[:, 2 * n_models :]


def n_heads(width: int, n_models: int | None) -> int:
    """How many heads a target of `width` columns holds for a router told `n_models`."""
    if n_models is None or n_models == width:
        return 1
    if width == 3 * n_models:
        return 3
    raise ValueError(
        f"a target of {width} columns is neither one head nor three heads of n_models={n_models}"
    )
