"""A complete router for `dars bench`: TF-IDF features and one ridge regression per model.

Run: dars bench --dataset <hub-id-or-folder> --router examples/example_router.py:TfidfRidgeRouter
"""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge


class TfidfRidgeRouter:
    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, Y):
        """X: n query prompts (str); Y: (n, n_models) targets, mean - beta * std."""
        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.ridge_ = Ridge(alpha=self.alpha).fit(self.vectorizer_.fit_transform(X), Y)
        return self

    def predict(self, X):
        """(len(X), n_models) predicted targets; the harness routes to the argmax - λ·cost."""
        return np.asarray(self.ridge_.predict(self.vectorizer_.transform(X)))
