"""`rm_softmax`: DARS's RM-Softmax, a choice network trained on softmax regret over a
lambda grid, with lambda as an input.

Behaviour matched to the authors' `methods/rm_softmax.py`: every training query is
repeated once per lambda of the grid linspace(0, max(0.10, lambda_cost), 11), with lambda
appended to its features as one more input column; the observed utility of model m is
u_m = (score_m - risk_beta * std_m) - lambda * cost_m (targets clipped to [0, 1] first;
a single-shot fit passes std = 0, so its performance is the drawn score, as theirs). A
ReLU MLP (256, 256) maps the augmented row to one logit per model and is trained on the
expected regret sum_m softmax(logits / T)_m (max_m' u_m' - u_m), T = 1. Adam, lr 1e-3,
20 epochs, batch 256 over the augmented rows, seeded.

Routing: the authors route with the argmax of the choice probabilities at lambda =
their cost weight (0.05). This router has no score, cost or std estimates, so it
predicts the choice probabilities at lambda = `lambda_cost` in the score head and 0 in
the cost and std heads: the shared rule argmax q - lambda c - beta s then picks exactly
the authors' choice whatever lambda and beta the caller uses. Its reported predicted
cost and std are therefore 0, not estimates.

Deviations, each for a reason:
* Sparse TF-IDF goes through the first layer as a sparse product plus lambda times the
  lambda column of the weights: the same numbers as the authors' dense concatenation,
  without an 11 x 600 x 20,001 dense matrix.
* With one head (Y = quality) there is no cost: every lambda sees the same utilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter
from dars.routers.dars_common import (
    Inputs,
    check_layers,
    check_positive_int,
    import_torch,
    matmul_t,
    mlp_weights,
    np_affine,
    np_mlp,
    seeded_torch,
    split_heads,
)


class RMSoftmaxRouter(BaseRouter):
    _poor_score = True  # predicts choice probabilities, not the targets

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (256, 256),
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        temperature: float = 1.0,
        lambda_max: float = 0.10,
        n_lambdas: int = 11,
        lambda_cost: float = 0.05,
        risk_beta: float = 0.2,
        n_models: int | None = None,
        random_state: int = 42,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.temperature = temperature
        self.lambda_max = lambda_max
        self.n_lambdas = n_lambdas
        self.lambda_cost = lambda_cost
        self.risk_beta = risk_beta
        self.n_models = n_models
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        layers = check_layers("rm_softmax", "hidden_layer_sizes", self.hidden_layer_sizes)
        check_positive_int(
            "rm_softmax", epochs=self.epochs, batch_size=self.batch_size, n_lambdas=self.n_lambdas
        )
        if not self.temperature > 0:
            raise ValueError(f"rm_softmax: temperature={self.temperature!r} must be > 0")
        hs = split_heads(Y, self.n_models)
        perf = hs[0] if len(hs) == 1 else hs[0] - self.risk_beta * hs[2]
        cost = np.zeros_like(perf) if len(hs) == 1 else hs[1]
        lam = np.linspace(
            0.0, max(self.lambda_max, self.lambda_cost), self.n_lambdas, dtype=np.float32
        )
        n, m = perf.shape
        # augmented rows, lambda-major as the authors build them: row l * n + i
        util = (perf[None] - lam[:, None, None] * cost[None]).reshape(-1, m)
        torch = import_torch("rm_softmax")
        nn = torch.nn
        with seeded_torch(torch, self.random_state) as gen:
            dims = [X.shape[1] + 1, *layers]
            mods: list[Any] = []
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                mods += [nn.Linear(a, b), nn.ReLU()]
            net = nn.Sequential(*mods, nn.Linear(dims[-1], m))
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            data = Inputs(torch, X)
            u = torch.from_numpy(util.astype(np.float32))
            lam_t = torch.from_numpy(lam)
            first = net[0]
            d = X.shape[1]
            total = n * len(lam)
            for _ in range(self.epochs):
                order = torch.randperm(total, generator=gen)
                for start in range(0, total, self.batch_size):
                    idx = order[start : start + self.batch_size]
                    x = data.rows(idx % n)
                    w = first.weight
                    xw = matmul_t(torch, x, w[:, :d])
                    h0 = xw + lam_t[idx // n][:, None] * w[:, d] + first.bias
                    logits = net[1:](h0)
                    probs = torch.softmax(logits / self.temperature, dim=1)
                    ub = u[idx]
                    regret = ub.max(dim=1, keepdim=True).values - ub
                    loss = (probs * regret).sum(dim=1).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        self.layers_ = mlp_weights(net)
        self.lambdas_ = lam.astype(np.float64)
        self.n_heads_ = len(hs)

    def choice_probabilities(self, X: Any, lambda_cost: float | None = None) -> np.ndarray:
        """softmax of the logits (T = 1 at prediction, as the authors') at `lambda_cost`
        (None: the router's own lambda), (n, n_models)."""
        lam = self.lambda_cost if lambda_cost is None else lambda_cost
        (w0, b0), rest = self.layers_[0], self.layers_[1:]
        h = np_affine(X, w0[:-1], b0 + lam * w0[-1].astype(np.float64))
        z = np_mlp(np.maximum(h, 0.0), rest) if rest else h
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def _predict(self, X: Any) -> np.ndarray:
        p = self.choice_probabilities(X)
        if self.n_heads_ == 1:
            return p
        return np.hstack([p, np.zeros_like(p), np.zeros_like(p)])
