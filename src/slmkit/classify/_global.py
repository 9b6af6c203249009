"""Data-set level explanations: which words push toward each class, and how stable that is across re-fits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from slmkit.classify._embedder import check_texts
from slmkit.classify._explain import class_weights, token_shares
from slmkit.classify._plr import PLRClassifier
from slmkit.classify._segment import assign, words
from slmkit.errors import ConfigError


def _word_table(clf_head, shares_per_text, texts, label) -> dict[str, list[float]]:
    """word (lower-cased) -> its exact contribution toward `label` in every text where it occurs."""
    w, _, _ = class_weights(clf_head, label)
    table: dict[str, list[float]] = defaultdict(list)
    for text, (_, spans, scaled, in_text, _) in zip(texts, shares_per_text):
        keep = np.flatnonzero(in_text)
        word_spans = words(text)
        assign([spans[i] for i in keep], (scaled @ w)[keep], word_spans)
        for span in word_spans:
            if any(ch.isalnum() for ch in span.text):  # punctuation alone is rarely what a reader asks about
                table[span.text.lower()].append(span.score)
    return table


def global_explanation(clf, texts: Sequence[str], *, top_k: int = 15, min_count: int = 2) -> dict:
    """The words whose mean exact contribution pushes most toward each class, over `texts`.

    Args:
        clf: a fitted LMClassifier with pooling="mean".
        texts: the texts to aggregate over (e.g. the training set).
        top_k: words kept per class.
        min_count: ignore words seen fewer times (one-off words are noise).

    Returns:
        label -> list of {"word", "mean", "count"} sorted by mean contribution, largest first.
    """
    check_is_fitted(clf, "head_")
    if clf.embedder_.pooling != "mean":
        raise ConfigError("global explanations use exact contributions and need pooling='mean'")
    texts = check_texts(texts)
    shares = token_shares(clf, texts)
    classes = clf.classes_ if len(clf.classes_) > 2 else clf.classes_[1:]
    out = {}
    for label in classes:
        table = _word_table(clf.head_, shares, texts, label)
        rows = [{"word": w, "mean": float(np.mean(v)), "count": len(v)}
                for w, v in table.items() if len(v) >= min_count]
        rows.sort(key=lambda r: -r["mean"])
        key = label.item() if hasattr(label, "item") else label
        out[key] = rows[:top_k]
        if len(clf.classes_) == 2:  # the other class is pushed by the same words, negated
            other = clf.classes_[0]
            other = other.item() if hasattr(other, "item") else other
            out[other] = [{**r, "mean": -r["mean"]} for r in sorted(rows, key=lambda r: r["mean"])[:top_k]]
    return out


@dataclass
class StabilityReport:
    """How much word-level explanations move when the head is refit on bootstrap resamples.

    Attributes:
        spearman: per resample, the rank correlation between each word's mean contribution over the
            evaluation texts under the original fit and under the resample, shape (n_boot,).
        top_overlap: per resample, Jaccard overlap of the `top_k` global words per class, shape (n_boot,).
        n_boot, top_k: the settings used.
    """

    spearman: np.ndarray
    top_overlap: np.ndarray
    n_boot: int
    top_k: int

    def to_dict(self) -> dict:
        return {"spearman_mean": round(float(self.spearman.mean()), 4),
                "spearman_std": round(float(self.spearman.std()), 4),
                "top_overlap_mean": round(float(self.top_overlap.mean()), 4), "n_boot": self.n_boot,
                "top_k": self.top_k}


def explanation_stability(clf, train_texts: Sequence[str], y, eval_texts: Sequence[str], *, n_boot: int = 10,
                          top_k: int = 10, seed: int = 0) -> StabilityReport:
    """Refit the head on `n_boot` stratified bootstrap resamples; compare word explanations with the original.

    The LM is not rerun: training embeddings come from the cache and the evaluation texts' token states are
    computed once, because a contribution is linear in the head's weights.
    """
    check_is_fitted(clf, "head_")
    if clf.embedder_.pooling != "mean":
        raise ConfigError("explanation stability uses exact contributions and needs pooling='mean'")
    if n_boot < 2:
        raise ConfigError(f"n_boot must be >= 2, got {n_boot}")
    y = np.asarray(y)
    features = clf.embedder_.transform(check_texts(train_texts))
    eval_texts = check_texts(eval_texts, "eval_texts")
    shares = token_shares(clf, eval_texts)
    label = clf.classes_[-1]
    base = _word_table(clf.head_, shares, eval_texts, label)
    base_top = _top_words(base, top_k)
    rng = np.random.default_rng(seed)
    rho, overlap = np.zeros(n_boot), np.zeros(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(np.flatnonzero(y == c), size=(y == c).sum()) for c in np.unique(y)])
        if min(np.unique(y[idx], return_counts=True)[1]) < 2 or len(set(idx)) < 4:
            idx = np.arange(len(y))  # a degenerate resample cannot be cross-validated; count it as unchanged
        # The refit's CV folds are seeded from `seed` too: a head built with random_state=None drew new folds on
        # every call, so the same seed gave different stability scores.
        head: PLRClassifier = clone(clf.head_).set_params(random_state=int(rng.integers(2**31 - 1)))
        head.fit(features[idx], y[idx])
        table = _word_table(head, shares, eval_texts, label)
        keys = sorted(base)
        a = np.array([np.mean(base[k]) for k in keys])
        c = np.array([np.mean(table[k]) for k in keys])
        rho[b] = spearmanr(a, c).statistic if len(keys) > 2 and a.std() and c.std() else 1.0
        top = _top_words(table, top_k)
        overlap[b] = len(top & base_top) / max(1, len(top | base_top))
    return StabilityReport(rho, overlap, n_boot, top_k)


def _top_words(table: dict[str, list[float]], k: int) -> set[str]:
    means = sorted(((np.mean(v), w) for w, v in table.items()), reverse=True)
    return {w for _, w in means[:k]} | {w for _, w in means[-k:]}
