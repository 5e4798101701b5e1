"""Saved routers and the tables routers are trained on: read and write them safely.

A saved router is a skops file holding a dict: the fitted text -> scores Pipeline
("pipeline"), the model names in column order ("models"), the cost estimate
("cost_estimate") and metadata. `load_router` refuses any type outside `TRUSTED_TYPES`
(skops.io.get_untrusted_types), so a file from elsewhere cannot run code on load.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from dars.core import schema
from dars.core.errors import InputDataError, UntrustedModelError
from dars.core.io import canonical_skops, model_file, read_frame
from dars.core.skops_io import skops_io
from dars.routers import ROUTERS
from dars.routers.targets import LABEL_COLUMNS

sio = skops_io()  # skops.io, without the torch import its estimator walk makes

#: types skops does not trust by default but a saved router may hold. Anything else in a
#: file (a class from another package, a function) makes `load_router` refuse it.
TRUSTED_TYPES = frozenset(
    [
        "scipy.sparse._csr.csr_matrix",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "dars.routers.features.SentenceEmbedder",
        "dars.routers.features.TfidfFeatures",
        *(f"{cls.__module__}.{cls.__qualname__}" for cls in (ROUTERS.get(n) for n in ROUTERS)),
    ]
)


def save_router(obj: dict[str, Any], path: Path) -> str:
    """Write `obj` with skops (deflate-compressed, canonical bytes); returns the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # reproducible bytes (same model, same file), deflate-compressed
    data = canonical_skops(sio.dumps(obj, compression=zipfile.ZIP_DEFLATED, compresslevel=9))
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_router(path: str | Path) -> dict[str, Any]:
    """Load a saved router, refusing any type that is not in TRUSTED_TYPES."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"router file {str(path)!r} does not exist; run `dars train`")
    data = path.read_bytes()
    untrusted = sio.get_untrusted_types(data=data)
    unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
    if unexpected:
        raise UntrustedModelError(
            f"router file {str(path)!r} holds types outside the trusted set: {unexpected}; "
            "refusing to load it. Only files written by `dars train` load without review."
        )
    obj = sio.loads(data, trusted=list(untrusted))
    if not isinstance(obj, dict) or not {"pipeline", "models", "cost_estimate"} <= set(obj):
        raise InputDataError(
            f"router file {str(path)!r} is not a `dars train` router (a dict with "
            "'pipeline', 'models' and 'cost_estimate')"
        )
    return obj


def read_outcomes(outcomes_dir: str | Path, models: list[str]) -> pd.DataFrame:
    """The scored observations routers are drawn from: one file per model."""
    cols = ["query_id", "model", "variant_id", "sample_id", "score", "cost"]
    frames = [
        read_frame(model_file(outcomes_dir, m), cols, what=f"outcomes[{m}]")[cols] for m in models
    ]
    return pd.concat(frames, ignore_index=True)


def read_routing_inputs(
    *, labels: str, queries: str, splits: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The labels, query texts and splits that `train` and `evaluate` both read."""
    lab = read_frame(labels, LABEL_COLUMNS, what="labels")
    q = read_frame(queries, ["query_id", "prompt"], what="queries")
    spl = read_frame(splits, schema.names(schema.SPLIT), what="splits")
    return lab, q, spl
