"""What DARS's seven routers share: their targets, their heads and their torch training.

The DARS authors' routers (AIGNLAI/DARS `methods/`) each learn per query and model up to
three things, the score, the normalised cost and the score's std, and route with
argmax score - lambda * cost - beta * std. Under our scikit-learn contract a router is
fitted on Y = quality (n, m) (one head) or Y = [quality | cost | std] (n, 3m) (three
heads, `dars.routers.heads`) and predicts the same width.

Shared rules, as the authors' code has them:

* targets are clipped to [0, 1] before training and predictions after (every
  `router_targets` / `predict_*` of theirs does both);
* a single-shot fit passes a std head of zeros; it must train without a NaN (no scaler
  is ever fitted on a target column, so an all-zero head cannot divide by zero).

The torch routers train with torch (`embed` extra) and keep their learned weights as
numpy arrays, so prediction needs no torch and a saved router holds only numpy types.
A scipy.sparse input (TF-IDF) goes through the first linear layer as a sparse matrix
product: the same arithmetic as the authors' dense `toarray()` (up to float rounding),
without the 600 x 20,000 dense copy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from dars.core.errors import MissingExtraError
from dars.routers import heads


def split_heads(Y: np.ndarray, n_models: int | None) -> list[np.ndarray]:
    """[quality] or [quality, cost, std] column blocks of Y, each clipped to [0, 1]."""
    k = heads.n_heads(Y.shape[1], n_models)
    m = Y.shape[1] // k
    return [np.clip(Y[:, h * m : (h + 1) * m], 0.0, 1.0) for h in range(k)]


def check_positive_int(router: str, **values: Any) -> None:
    """One line naming the first keyword argument that is not an integer >= 1."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{router}: {name}={v!r} must be an integer >= 1")


def check_layers(router: str, name: str, layers: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in layers)
    except TypeError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"{router}: {name}={layers!r} must be a non-empty tuple of sizes >= 1")
    return sizes


def import_torch(router: str) -> Any:
    """torch, or one line naming the extra that installs it."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError(
            f"router {router!r} trains with torch, which is not installed; install the "
            "CPU build with the extra `pip install -e '.[embed]'` (torch==2.13.0)"
        ) from exc
    return torch


@contextlib.contextmanager
def seeded_torch(torch: Any, seed: int, n_threads: int = 1) -> Iterator[Any]:
    """A torch.Generator seeded with `seed`, the global torch RNG forked and seeded (layer
    initialisation reads it) and a fixed thread count, all restored afterwards.

    One thread: results do not depend on the machine's core count, and on a shared
    machine torch's spinning worker threads cost more than they give (120 Adam steps of
    a (256, 256) MLP: 17.3 s with 2 threads vs 0.98 s with 1, 2 cores at load 7)."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            gen = torch.Generator().manual_seed(int(seed))
            yield gen
    finally:
        torch.set_num_threads(old_threads)


class Inputs:
    """The training rows: `rows(idx)` gives a batch, a scipy CSR matrix (sparse input) or
    a dense torch tensor."""

    def __init__(self, torch: Any, X: Any) -> None:
        self.torch = torch
        self.sparse = sp.issparse(X)
        if self.sparse:
            self.X = sp.csr_matrix(X, dtype=np.float32)
        else:
            self.X = torch.from_numpy(np.array(X, dtype=np.float32))  # a writable copy
        self.n = X.shape[0]

    def rows(self, idx: Any) -> Any:
        return self.X[np.asarray(idx)] if self.sparse else self.X[idx]


@functools.lru_cache(maxsize=1)
def _sparse_matmul(torch: Any) -> Any:
    """x @ w.T for a scipy CSR x and a torch weight w, differentiable in w.

    scipy's CSR product instead of torch.sparse.mm: measured on 600 x 20,000 TF-IDF
    (132k non-zeros) times a 20,000 x 256 weight, torch's COO product took 0.38 s per
    call, scipy's a few hundredths."""

    class SparseMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, w: Any, x: Any) -> Any:
            ctx.x = x
            return torch.from_numpy(np.asarray(x @ w.detach().numpy().T, dtype=np.float32))

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            gw = np.asarray(ctx.x.T @ grad.numpy(), dtype=np.float32)  # (in, out)
            return torch.from_numpy(gw).t(), None  # a transposed view: no copy

    return SparseMatmul


def matmul_t(torch: Any, x: Any, w: Any) -> Any:
    """x @ w.T for a scipy CSR or dense torch x."""
    if sp.issparse(x):
        return _sparse_matmul(torch).apply(w, x)
    return x @ w.t()


def linear(torch: Any, layer: Any, x: Any) -> Any:
    """layer(x) for a scipy CSR or dense torch x."""
    return matmul_t(torch, x, layer.weight) + layer.bias


def batches(torch: Any, n: int, batch_size: int, gen: Any) -> Iterator[Any]:
    """One epoch of shuffled mini-batch indices (torch.randperm, as the authors' loops)."""
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def weights(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """(W.T, b) of a torch Linear as float32 numpy arrays (x @ W.T + b)."""
    return (
        layer.weight.detach().numpy().T.astype(np.float32, copy=True),
        layer.bias.detach().numpy().astype(np.float32, copy=True),
    )


def mlp_weights(seq: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Linear layers of an nn.Sequential of Linear/ReLU, in order."""
    return [weights(m) for m in seq if hasattr(m, "weight")]


def np_affine(x: Any, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x @ w + b for a dense or scipy.sparse x, in float64."""
    out = x @ w.astype(np.float64)
    return np.asarray(out, dtype=np.float64) + b


def np_mlp(x: Any, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Linear, ReLU, ..., Linear (no activation after the last) in numpy."""
    h = x
    for i, (w, b) in enumerate(layers):
        h = np_affine(h, w, b)
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
