"""Zero-shot baseline: score each label's words as the LM's continuation of a prompt, optionally calibrated.

Contextual calibration (Zhao et al. 2021, "Calibrate before use"): the LM's prior over the label words is
estimated from content-free inputs ("N/A", "", "[MASK]") put through the same prompt, and divided out, so a
model that simply prefers the word " positive" stops predicting it for everything.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from slmkit._constants import DEFAULT_MODEL
from slmkit.classify._cache import EmbeddingCache, namespace_key
from slmkit.classify._embedder import check_texts
from slmkit.errors import ConfigError
from slmkit.models._base import log_softmax

CONTENT_FREE = ("N/A", "", "[MASK]")


class ZeroShotClassifier(ClassifierMixin, BaseEstimator):
    """Pick the label whose verbaliser the LM finds most likely after `prompt` (no training).

    Args:
        model: registry name, directory or ModelSpec of a causal LM.
        prompt: the prompt with "{text}" where the input goes, ending where the label word would follow,
            e.g. "Review: {text}\\nSentiment (positive or negative):".
        label_words: label -> continuation (e.g. {1: " positive", 0: " negative"}); a list of strings per label
            sums the probability of several phrasings (the label is said if any of them is; uncalibrated, a label
            with more phrasings is favoured, which calibration divides out). Keys must cover the labels given to
            `fit`.
        calibrate: apply contextual calibration with content-free inputs.
        reduction: "sum" (default) or "mean" of the continuation's token log-probs.
        cache: EmbeddingCache that memoises the loaded model and the scores.

    Attributes:
        classes_: the labels, sorted (scikit-learn's order: `predict_proba`'s columns and the binary
            `decision_function`'s positive class follow it, whatever the order of `label_words`).
        prior_: log-probabilities of each label on content-free inputs (what calibration divides out).
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, prompt: str = "{text}\nAnswer:",
                 label_words: Mapping | None = None, calibrate: bool = False, reduction: str = "sum",
                 cache: EmbeddingCache | None = None) -> None:
        self.model = model
        self.prompt = prompt
        self.label_words = label_words
        self.calibrate = calibrate
        self.reduction = reduction
        self.cache = cache

    def _words(self) -> tuple[list, list[list[str]]]:
        if not self.label_words:
            raise ConfigError("ZeroShotClassifier: label_words is required, e.g. {1: ' positive', 0: ' negative'}")
        try:  # sorted as scikit-learn orders classes_ (scorers and ensembles pair columns with sorted labels)
            labels = sorted(self.label_words)
        except TypeError:
            labels = sorted(self.label_words, key=str)
        words = [[w] if isinstance(w, str) else list(w) for w in (self.label_words[k] for k in labels)]
        if any(not ws or any(not w for w in ws) for ws in words):
            raise ConfigError(f"ZeroShotClassifier: every label needs non-empty words, got {dict(self.label_words)!r}")
        return labels, words

    def fit(self, X=None, y=None) -> ZeroShotClassifier:
        """Load the model and (with `calibrate`) measure the prior; X is ignored, y is checked against the labels."""
        if self.prompt.count("{text}") != 1:
            raise ConfigError(f"ZeroShotClassifier: prompt must contain '{{text}}' exactly once, got {self.prompt!r}")
        if self.reduction not in ("sum", "mean"):
            raise ConfigError(f"ZeroShotClassifier: reduction must be 'sum' or 'mean', got {self.reduction!r}")
        labels, self.words_ = self._words()
        if y is not None:
            unknown = sorted(set(np.asarray(y).tolist()) - set(labels), key=str)
            if unknown:
                raise ConfigError(f"ZeroShotClassifier: labels {unknown!r} have no entry in label_words "
                                  f"(known: {labels!r})")
        self.classes_ = np.asarray(labels)
        self.cache_ = self.cache if self.cache is not None else EmbeddingCache()
        self.lm_ = self.cache_.model(self.model)
        self.prior_ = self._label_log_probs(list(CONTENT_FREE), allow_empty=True).mean(axis=0)
        return self

    def _label_log_probs(self, texts: list[str], allow_empty: bool = False) -> np.ndarray:
        if not allow_empty:
            texts = check_texts(texts)
        flat = [w for ws in self.words_ for w in ws]
        space = namespace_key(kind="zeroshot", checksum=self.lm_.info.get("checksum"), prompt=self.prompt,
                              choices=flat, reduction=self.reduction)
        def score(batch: list[str]) -> np.ndarray:
            # When every label word is one token, score_choices reads them all off one forward pass per text
            # (the LM's next-token path); otherwise it runs one pass per text and word. Same numbers either way.
            prompts = [self.prompt.replace("{text}", t) for t in batch]
            return self.lm_.score_choices(prompts, flat, reduction=self.reduction)

        scores = self.cache_.get_or_compute(space, texts, score)
        # Several phrasings of one label: log of their summed probability, then renormalise over labels.
        per_label, start = [], 0
        for ws in self.words_:
            block = scores[:, start : start + len(ws)]
            per_label.append(np.logaddexp.reduce(block, axis=1))
            start += len(ws)
        return log_softmax(np.column_stack(per_label), axis=1)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-probabilities over labels (calibrated if asked), array of shape (n_samples, n_classes)."""
        check_is_fitted(self, "prior_")
        logp = self._label_log_probs(list(X) if not isinstance(X, str) else X)
        return log_softmax(logp - self.prior_, axis=1) if self.calibrate else logp

    def decision_function(self, X) -> np.ndarray:
        """scikit-learn's convention: for two classes the log-odds of `classes_[1]`, shape (n_samples,);
        otherwise the log-probabilities, shape (n_samples, n_classes)."""
        logp = self.predict_log_proba(X)
        return logp[:, 1] - logp[:, 0] if logp.shape[1] == 2 else logp

    def predict_proba(self, X) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_log_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
