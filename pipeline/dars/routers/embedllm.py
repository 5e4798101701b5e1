"""`embedllm`: DARS's EmbedLLM, a query projection scored against learned model embeddings.

Behaviour matched to the authors' `methods/embed_llm.py`: a linear query projection to
256 dimensions, one learned 256-dimensional embedding per model (initialised N(0, 0.02))
and a per-model bias; the score logit of (query, model) is <projection, embedding> +
bias, trained with binary cross-entropy on soft labels. The soft label is the clipped
score minus beta times the clipped std, clipped to [0, 1] (beta = `risk_beta`, 0.2 as in
the paper; a single-shot fit passes std = 0, so its label is the drawn score, as theirs).
Cost is a linear head on the model embedding, one number per model whatever the query,
fitted by MSE on the clipped per-query costs (loss weight 1). During training Gaussian
noise of scale 0.05 is added to both projections. Adam, lr 1e-3, no weight decay, 20
epochs, batch 2048 (so one full batch per epoch at the published size), seeded.
Prediction: sigmoid of the logit (score head), the clipped per-model cost (cost head)
and 0 (std head): the authors' EmbedLLM predicts no std, its risk sits in the label.

Deviations, each for a reason:
* Sparse TF-IDF goes through the projection as a sparse product (the authors densify);
  same arithmetic, no dense copy.
* The fitted router keeps only the folded linear map coef_ = W_q E^T and intercept_ =
  b_q E^T + bias (exactly the same logits, in float64), not the 256-dim factors: a
  20,000 x 6 matrix instead of 20,000 x 256 keeps a saved router small.
* With one head (Y = quality) there is no cost to learn: the cost loss is left out and
  the prediction has the quality columns only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dars.routers.base import BaseRouter
from dars.routers.dars_common import (
    Inputs,
    batches,
    check_positive_int,
    import_torch,
    linear,
    seeded_torch,
    sigmoid,
    split_heads,
)


class EmbedLLMRouter(BaseRouter):
    _poor_score = True  # a sigmoid score trained on [0, 1] soft labels, as DARS does

    def __init__(
        self,
        embed_dim: int = 256,
        epochs: int = 20,
        batch_size: int = 2048,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        noise: float = 0.05,
        cost_loss_weight: float = 1.0,
        risk_beta: float = 0.2,
        n_models: int | None = None,
        random_state: int = 42,
    ) -> None:
        self.embed_dim = embed_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.noise = noise
        self.cost_loss_weight = cost_loss_weight
        self.risk_beta = risk_beta
        self.n_models = n_models
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        check_positive_int(
            "embedllm", embed_dim=self.embed_dim, epochs=self.epochs, batch_size=self.batch_size
        )
        hs = split_heads(Y, self.n_models)
        soft = hs[0] if len(hs) == 1 else np.clip(hs[0] - self.risk_beta * hs[2], 0.0, 1.0)
        torch = import_torch("embedllm")
        nn = torch.nn
        m = soft.shape[1]
        with seeded_torch(torch, self.random_state) as gen:
            query_proj = nn.Linear(X.shape[1], self.embed_dim)
            model_embed = nn.Embedding(m, self.embed_dim)
            model_bias = nn.Parameter(torch.zeros(m))
            cost_head = nn.Linear(self.embed_dim, 1)
            nn.init.normal_(model_embed.weight, mean=0.0, std=0.02)
            params = [*query_proj.parameters(), model_embed.weight, model_bias]
            params += list(cost_head.parameters())
            opt = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
            bce, mse = nn.BCEWithLogitsLoss(), nn.MSELoss()
            data = Inputs(torch, X)
            y = torch.from_numpy(soft.astype(np.float32))
            c = torch.from_numpy(hs[1].astype(np.float32)) if len(hs) == 3 else None
            for _ in range(self.epochs):
                for idx in batches(torch, data.n, min(self.batch_size, data.n), gen):
                    q = linear(torch, query_proj, data.rows(idx))
                    e = model_embed.weight
                    if self.noise > 0:
                        q = q + self.noise * torch.randn(q.shape, generator=gen)
                        e = e + self.noise * torch.randn(e.shape, generator=gen)
                    loss = bce(q @ e.t() + model_bias, y[idx])
                    if c is not None:
                        cost = cost_head(e).squeeze(1).expand(len(idx), -1)
                        loss = loss + self.cost_loss_weight * mse(cost, c[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                e = model_embed.weight.double()
                w = query_proj.weight.double().t() @ e.t()
                b = query_proj.bias.double() @ e.t() + model_bias.double()
                cost = cost_head(model_embed.weight).squeeze(1)
        self.coef_ = w.numpy().astype(np.float32)
        self.intercept_ = b.numpy()
        self.model_cost_ = np.clip(cost.numpy().astype(np.float64), 0.0, 1.0)
        self.n_heads_ = len(hs)

    def _predict(self, X: Any) -> np.ndarray:
        z = np.asarray(X @ self.coef_.astype(np.float64)) + self.intercept_
        score = np.clip(sigmoid(z), 0.0, 1.0)
        if self.n_heads_ == 1:
            return score
        cost = np.broadcast_to(self.model_cost_, score.shape)
        return np.hstack([score, cost, np.zeros_like(score)])
