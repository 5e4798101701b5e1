"""`graphrouter`: DARS's GraphRouter, an edge MLP over query and model nodes.

Behaviour matched to the authors' `methods/graph_router.py`: every (query, model) pair is
an edge. The query node is relu(W_q x + b_q) and the model node relu(W_m d_m + b_m), both
128-dimensional, where d_m encodes the model's description text; the edge input is
[q, m, q * m, |q - m|] (512 numbers) and an MLP (256, 128, ReLU) maps it to the edge's
targets (score, cost, std), trained jointly by MSE against the clipped targets. Adam,
lr 1e-3, no weight decay, 50 epochs, batch 256 queries (with all their edges), seeded.
A single-shot fit trains the std output on zeros, as theirs does. Predictions are
clipped to [0, 1].

Model descriptions come from the keyword `model_descriptions` (one text per model, in
column order). The train stage and `--protocol dars` pass `describe_models(models)`:
"<name>. Large language model." per model, the authors' "generic" description of a
model outside their table of six hand-written ones (which we do not copy: a build's
models are rarely theirs; pass `routers.params.graphrouter.model_descriptions` to use your
own texts). The default, None (a router not told the names), describes model j as
"model_j": distinct one-token descriptions, i.e. free per-model node features.

Deviations, each for a reason:
* The authors encode descriptions with the query encoder (their TF-IDF is fitted on the
  train texts plus the descriptions). Under our contract the router sees numeric query
  features only, so the descriptions get their own TF-IDF (word uni- and bigrams) fitted
  on the descriptions. W_m is learned either way, so only the descriptions' geometry
  (which models share words) matters; with sentence embeddings the spaces also differ.
* Without `model_descriptions` (a router built outside the train stage and the
  protocol) the descriptions are placeholders, because the router is not told the
  model names.
* With one head (Y = quality) the edge MLP has one output.
* Sparse TF-IDF goes through W_q as a sparse product (the authors densify).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from dars.routers import heads
from dars.routers.base import BaseRouter
from dars.routers.dars_common import (
    Inputs,
    batches,
    check_layers,
    check_positive_int,
    import_torch,
    linear,
    mlp_weights,
    np_affine,
    np_mlp,
    seeded_torch,
    split_heads,
    weights,
)

#: the authors' description of a model they wrote none for (`description_source` "generic")
GENERIC_DESCRIPTION = "{name}. Large language model."


def describe_models(models: Any) -> list[str]:
    """One description per model name, in order: `GENERIC_DESCRIPTION`."""
    return [GENERIC_DESCRIPTION.format(name=str(m)) for m in models]


def describe(model_descriptions: Any, n_models: int) -> np.ndarray:
    """Dense TF-IDF node features of the descriptions, (n_models, n_terms)."""
    if model_descriptions is None:
        texts = [f"model_{j}" for j in range(n_models)]
    else:
        texts = [str(t) for t in model_descriptions]
        if len(texts) != n_models:
            raise ValueError(
                f"graphrouter: model_descriptions has {len(texts)} texts but the targets "
                f"have {n_models} models; give one description per model, in column order"
            )
    vec = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b")
    return vec.fit_transform(texts).toarray()


class GraphRouter(BaseRouter):
    _poor_score = True  # targets and predictions are clipped to [0, 1], as DARS does

    def __init__(
        self,
        model_descriptions: list[str] | None = None,
        node_dim: int = 128,
        hidden_layer_sizes: tuple[int, ...] = (256, 128),
        epochs: int = 50,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        n_models: int | None = None,
        random_state: int = 42,
    ) -> None:
        self.model_descriptions = model_descriptions
        self.node_dim = node_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.n_models = n_models
        self.random_state = random_state

    def _fit(self, X: Any, Y: np.ndarray) -> None:
        layers = check_layers("graphrouter", "hidden_layer_sizes", self.hidden_layer_sizes)
        check_positive_int(
            "graphrouter", node_dim=self.node_dim, epochs=self.epochs, batch_size=self.batch_size
        )
        k = heads.n_heads(Y.shape[1], self.n_models)
        hs = split_heads(Y, self.n_models)
        m = hs[0].shape[1]
        desc = describe(self.model_descriptions, m).astype(np.float32)
        target = np.stack(hs, axis=2).astype(np.float32)  # (n, m, heads)
        torch = import_torch("graphrouter")
        nn = torch.nn
        with seeded_torch(torch, self.random_state) as gen:
            query_proj = nn.Linear(X.shape[1], self.node_dim)
            model_proj = nn.Linear(desc.shape[1], self.node_dim)
            dims = [4 * self.node_dim, *layers]
            mods: list[Any] = []
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                mods += [nn.Linear(a, b), nn.ReLU()]
            edge_mlp = nn.Sequential(*mods, nn.Linear(dims[-1], k))
            params = [*query_proj.parameters(), *model_proj.parameters(), *edge_mlp.parameters()]
            opt = torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)
            mse = nn.MSELoss()
            data = Inputs(torch, X)
            d_t = torch.from_numpy(desc)
            y = torch.from_numpy(target)
            for _ in range(self.epochs):
                for idx in batches(torch, data.n, self.batch_size, gen):
                    q = torch.relu(linear(torch, query_proj, data.rows(idx)))
                    mn = torch.relu(model_proj(d_t))
                    qe = q[:, None, :].expand(-1, m, -1)
                    me = mn[None, :, :].expand(q.shape[0], -1, -1)
                    edge = torch.cat([qe, me, qe * me, (qe - me).abs()], dim=2)
                    loss = mse(edge_mlp(edge), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                nodes = torch.relu(model_proj(d_t)).numpy().astype(np.float64)
        self.query_proj_ = weights(query_proj)
        self.model_nodes_ = nodes
        self.edge_layers_ = mlp_weights(edge_mlp)
        self.n_heads_ = k

    def _predict(self, X: Any) -> np.ndarray:
        q = np.maximum(np_affine(X, *self.query_proj_), 0.0)  # (n, d)
        mn = self.model_nodes_  # (m, d)
        n, m = q.shape[0], mn.shape[0]
        qe = np.broadcast_to(q[:, None, :], (n, m, q.shape[1]))
        me = np.broadcast_to(mn[None, :, :], (n, m, q.shape[1]))
        edge = np.concatenate([qe, me, qe * me, np.abs(qe - me)], axis=2)
        out = np_mlp(edge.reshape(n * m, -1), self.edge_layers_).reshape(n, m, self.n_heads_)
        # heads side by side: [score | cost | std], each (n, m)
        return np.clip(np.concatenate([out[:, :, h] for h in range(self.n_heads_)], axis=1), 0, 1)
