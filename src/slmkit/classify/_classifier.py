"""LMClassifier: LMEmbedder + PLRClassifier in one estimator that saves to (and loads from) an artifact dir."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from slmkit._constants import DEFAULT_MODEL
from slmkit.classify._cache import EmbeddingCache
from slmkit.classify._embedder import LMEmbedder, check_texts
from slmkit.classify._plr import PLRClassifier, check_label_counts
from slmkit.errors import DataError

# The paper's finding, and ours on the training folds: an instruction around the text beats the bare text.
DEFAULT_TEMPLATE = "Text: {text}\nQuestion: What is this text about, and what is its tone?\nAnswer:"


class LMClassifier(ClassifierMixin, BaseEstimator):
    """Tens-of-shot text classifier: a small LM's pooled hidden states -> penalised logistic regression.

    Args:
        model: registry name (`slmkit models list`), local directory or ModelSpec.
        template: instruction around the text ("{text}" exactly once); a task-specific one helps most, e.g.
            "Review: {text}\\nIs the review positive or negative? Answer:".
        pooling: "mean" (exact per-token explanations) or "last".
        layers: hidden-state indices to concatenate; floats in (0, 1] are depth fractions (0.5 = middle).
        penalty, Cs, l1_ratios, cv, class_weight: see PLRClassifier.
        batch_size: texts per forward pass.
        random_state: seed for the CV folds.
        cache: EmbeddingCache shared across estimators (and their clones); default: one in the slmkit cache dir.

    Attributes:
        embedder_: the fitted LMEmbedder; head_: the fitted PLRClassifier; classes_: array of shape (n_classes,).
        fit_seconds_: time spent fitting the head; embed_seconds_: time spent in the LM during fit.

    Example:
        >>> clf = LMClassifier(template="Review: {text}\\nSentiment:").fit(texts, labels)
        >>> clf.predict(["What a lovely film."])
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, template: str = DEFAULT_TEMPLATE, pooling: str = "mean",
                 layers: Sequence[int | float] = (-1,), penalty: str = "l2", Cs=13,
                 l1_ratios=(0.2, 0.5, 0.8), cv: int = 5, class_weight="balanced", batch_size: int = 16,
                 random_state=None, cache: EmbeddingCache | None = None) -> None:
        self.model = model
        self.template = template
        self.pooling = pooling
        self.layers = layers
        self.penalty = penalty
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.class_weight = class_weight
        self.batch_size = batch_size
        self.random_state = random_state
        self.cache = cache

    def _make_embedder(self) -> LMEmbedder:
        return LMEmbedder(self.model, template=self.template, pooling=self.pooling, layers=self.layers,
                          batch_size=self.batch_size, cache=self.cache)

    def _make_head(self) -> PLRClassifier:
        return PLRClassifier(penalty=self.penalty, Cs=self.Cs, l1_ratios=self.l1_ratios, cv=self.cv,
                             class_weight=self.class_weight, random_state=self.random_state)

    def fit(self, X, y) -> LMClassifier:
        """Embed the texts (cached) and fit the penalised head.

        Args:
            X: sequence of n_samples non-empty texts.
            y: sequence of n_samples labels; every label needs at least two examples.
        """
        texts = check_texts(X)
        y = np.asarray(y)
        if len(y) != len(texts):
            raise DataError(f"X has {len(texts)} texts but y has {len(y)} labels; they must match row for row")
        check_label_counts(y)
        self.embedder_ = self._make_embedder().fit()
        features = self.embedder_.transform(texts)
        self.embed_seconds_ = self.embedder_.embed_seconds_
        start = time.perf_counter()
        self.head_ = self._make_head().fit(features, y)
        self.fit_seconds_ = time.perf_counter() - start
        self.classes_ = self.head_.classes_
        return self

    def transform(self, X) -> np.ndarray:
        """The embeddings the head sees, array of shape (n_samples, n_features)."""
        check_is_fitted(self, "head_")
        return self.embedder_.transform(X)

    def decision_function(self, X) -> np.ndarray:
        """Logits, shape (n_samples,) for two classes (positive = classes_[1]) else (n_samples, n_classes)."""
        return self.head_.decision_function(self.transform(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes)."""
        return self.head_.predict_proba(self.transform(X))

    def predict(self, X) -> np.ndarray:
        """Labels, array of shape (n_samples,)."""
        return self.head_.predict(self.transform(X))

    def save(self, directory) -> None:
        """Write the fitted classifier as an artifact directory (see `slmkit.classify.save_classifier`)."""
        from slmkit.classify._artifact import save_classifier

        save_classifier(self, directory)

    @classmethod
    def load(cls, directory, *, cache: EmbeddingCache | None = None) -> LMClassifier:
        """Rebuild a fitted classifier from `save`'s directory (loads the LM it names)."""
        from slmkit.classify._artifact import load_classifier

        return load_classifier(directory, cache=cache)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
