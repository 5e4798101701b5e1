"""`mirt`: DARS's MIRT router, sigma(theta(x) . a_m - b_m) with theta an MLP of the query.

Behaviour matched to the authors' `methods/mirt.py`: each head (score, cost, std) is a
multidimensional IRT head: an ability vector theta(x) from an MLP of the query features
(one hidden layer of 128 ReLU units, 16 latent dimensions), a discrimination vector a_m
per model (initialised N(0, 0.02)) and a difficulty b_m (initialised 0); the head's
output is sigmoid(theta(x) . a_m - b_m). The three heads share nothing. Losses: binary
cross-entropy on the score logits, plus 1.0 x MSE of the cost head and 0.5 x MSE of the
std head against their clipped targets. Adam, lr 1e-3, no weight decay, 30 epochs,
batch 256, seeded. A single-shot fit trains its std head on zeros, as theirs does.
Predictions are the three sigmoids, clipped to [0, 1].

Deviations, each for a reason:
* The three heads' first layers see the same input, so they are applied as one
  20,000 x 384 product (sparse TF-IDF stays sparse): the same numbers as three separate
  products, fewer passes over the features.
* With one head (Y = quality) only the score head is built and trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter
from dars.routers.dars_common import (
    Inputs,
    batches,
    check_layers,
    check_positive_int,
    import_torch,
    matmul_t,
    mlp_weights,
    np_mlp,
    seeded_torch,
    sigmoid,
    split_heads,
)


class MIRTRouter(BaseRouter):
    _poor_score = True  # sigmoid outputs trained on [0, 1] targets, as DARS does

    def __init__(
        self,
        latent_dim: int = 16,
        hidden_layer_sizes: tuple[int, ...] = (128,),
        epochs: int = 30,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        cost_loss_weight: float = 1.0,
        std_loss_weight: float = 0.5,
        n_models: int | None = None,
        random_state: int = 42,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.cost_loss_weight = cost_loss_weight
        self.std_loss_weight = std_loss_weight
        self.n_models = n_models
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        layers = check_layers("mirt", "hidden_layer_sizes", self.hidden_layer_sizes)
        check_positive_int(
            "mirt", latent_dim=self.latent_dim, epochs=self.epochs, batch_size=self.batch_size
        )
        hs = split_heads(Y, self.n_models)
        torch = import_torch("mirt")
        nn = torch.nn
        m = hs[0].shape[1]
        with seeded_torch(torch, self.random_state) as gen:
            nets, disc, diff = [], [], []
            for _ in hs:  # score, cost, std heads, built in the authors' order
                dims = [X.shape[1], *layers]
                mods: list[Any] = []
                for a, b in zip(dims[:-1], dims[1:], strict=True):
                    mods += [nn.Linear(a, b), nn.ReLU()]
                nets.append(nn.Sequential(*mods, nn.Linear(dims[-1], self.latent_dim)))
                disc.append(nn.Parameter(torch.randn(m, self.latent_dim) * 0.02))
                diff.append(nn.Parameter(torch.zeros(m)))
            params = [p for net in nets for p in net.parameters()] + disc + diff
            opt = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
            bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()
            data = Inputs(torch, X)
            ys = [torch.from_numpy(h.astype(np.float32)) for h in hs]
            first = [net[0] for net in nets]
            width = first[0].out_features

            def logits(x: Any) -> list[Any]:
                # the heads' first layers in one product over the (sparse) features
                w = torch.cat([f.weight for f in first], dim=0)
                b = torch.cat([f.bias for f in first], dim=0)
                h0 = matmul_t(torch, x, w) + b
                out = []
                for j, net in enumerate(nets):
                    theta = net[1:](h0[:, j * width : (j + 1) * width])
                    out.append(theta @ disc[j].t() - diff[j])
                return out

            weights = (1.0, self.cost_loss_weight, self.std_loss_weight)
            for _ in range(self.epochs):
                for idx in batches(torch, data.n, min(self.batch_size, data.n), gen):
                    z = logits(data.rows(idx))
                    loss = bce(z[0], ys[0][idx])
                    for j in range(1, len(z)):
                        loss = loss + weights[j] * mse(torch.sigmoid(z[j]), ys[j][idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.theta_layers_ = [mlp_weights(net) for net in nets]
        self.discrimination_ = [d.detach().numpy().astype(np.float64) for d in disc]
        self.difficulty_ = [d.detach().numpy().astype(np.float64) for d in diff]

    def _predict(self, X: Any) -> np.ndarray:
        out = []
        for layers, a, b in zip(
            self.theta_layers_, self.discrimination_, self.difficulty_, strict=True
        ):
            theta = np_mlp(X, layers)
            out.append(np.clip(sigmoid(theta @ a.T - b), 0.0, 1.0))
        return np.hstack(out)
