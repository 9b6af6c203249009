"""Per-prediction explanations: exact token contributions under mean pooling, occlusion otherwise.

With mean pooling the pooled vector is x = (1/T) sum_t h_t over the T pooled tokens, and the head is linear, so
a class logit is  b + w.x = b + sum_t (w.h_t) / T : each token's share w.h_t / T is exact, not an approximation.
The head's StandardScaler is already folded into `coef_`, so w acts on raw hidden states. Tokens of the template
(the instruction around the text) also carry shares; they are reported together as `template`, so
`bias + template + sum(token_scores) == logit` holds to float precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils.validation import check_is_fitted

from slmkit.classify._embedder import check_texts
from slmkit.classify._segment import Span, assign, phrases, words
from slmkit.errors import ConfigError

METHODS = ("auto", "exact", "occlusion")


@dataclass
class Explanation:
    """Why one text got (or did not get) one label.

    Attributes:
        text: the user's text.
        label: the label explained; probability: its predicted probability.
        logit: the explained score: for two classes the logit of `label` vs the other; for more, the label's
            logit minus the mean of all class logits.
        bias: the part of `logit` that does not depend on the text (the intercept).
        template: the share of the template's tokens (exact method), 0 for occlusion.
        tokens, token_spans, token_scores: the text's tokens, their (start, end) in `text`, their shares.
        words, phrases: Spans of `text` with aggregated scores.
        method: "exact" or "occlusion".
    """

    text: str
    label: object
    probability: float
    logit: float
    bias: float
    template: float
    tokens: list[str] = field(default_factory=list)
    token_spans: list[tuple[int, int]] = field(default_factory=list)
    token_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    words: list[Span] = field(default_factory=list)
    phrases: list[Span] = field(default_factory=list)
    method: str = "exact"

    def to_dict(self) -> dict:
        def spans(items):
            return [{"text": s.text, "start": s.start, "end": s.end, "score": round(s.score, 5)} for s in items]

        label = self.label.item() if hasattr(self.label, "item") else self.label
        return {"text": self.text, "label": label, "probability": round(self.probability, 5),
                "logit": round(self.logit, 5), "bias": round(self.bias, 5), "template": round(self.template, 5),
                "method": self.method, "words": spans(self.words), "phrases": spans(self.phrases)}


def class_weights(head, label) -> tuple[np.ndarray, float, int]:
    """(w, b, column) such that X @ w + b is the explained score of `label` (see Explanation.logit)."""
    classes = list(head.classes_)
    if label not in classes:
        raise ConfigError(f"cannot explain label {label!r}: the classifier knows {classes!r}")
    k = classes.index(label)
    if len(classes) == 2:
        sign = 1.0 if k == 1 else -1.0
        return sign * head.coef_[0], sign * float(head.intercept_[0]), k
    # Softmax ignores a shift shared by all classes: centring makes "pushes toward k, away from the others".
    return (head.coef_[k] - head.coef_.mean(axis=0),
            float(head.intercept_[k] - head.intercept_.mean()), k)


def explain(clf, texts: Sequence[str], *, labels: Sequence | None = None, method: str = "auto") -> list[Explanation]:
    """Word and phrase contributions to each text's predicted label (or to `labels`).

    Args:
        clf: a fitted LMClassifier.
        texts: n texts to explain.
        labels: the label to explain per text; default the predicted one.
        method: "exact" (mean pooling only), "occlusion" (drop each word, measure the score change) or "auto"
            (exact when the pooling allows it).

    Returns:
        One Explanation per text.

    Raises:
        ConfigError: unknown method, or "exact" asked of a classifier that does not mean-pool.
    """
    check_is_fitted(clf, "head_")
    texts = check_texts(texts)
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    exact_ok = supports_exact(clf)
    if method == "auto":
        method = "exact" if exact_ok else "occlusion"
    if method == "exact" and not exact_ok:
        raise ConfigError(f"exact contributions need pooling='mean' in one embedder (this classifier uses "
                          f"{clf.embedder_.pooling!r} pooling); use method='occlusion'")
    proba = clf.predict_proba(texts)
    if labels is None:
        labels = clf.classes_[proba.argmax(axis=1)]
    if len(labels) != len(texts):
        raise ConfigError(f"got {len(labels)} labels for {len(texts)} texts; give one per text or none")
    run = _exact if method == "exact" else _occlusion
    return [run(clf, text, label, proba[i]) for i, (text, label) in enumerate(zip(texts, labels))]


def supports_exact(clf) -> bool:
    """Exact token shares exist for one mean-pooled LM embedder (a frozen LM or a fine-tuned encoder alike);
    concatenated embedders (pooling "concat") tokenize differently and are explained by occlusion."""
    return clf.embedder_.pooling == "mean" and hasattr(clf.embedder_, "lm_")


def token_shares(clf, texts: Sequence[str]) -> list[tuple[list[str], list[tuple[int, int]], np.ndarray, np.ndarray,
                                                           np.ndarray]]:
    """Per text: (tokens, spans in the text, H (n_tokens, d) / T, in_text mask, template mask) for exact shares."""
    emb = clf.embedder_
    out = []
    for text, ts in zip(texts, emb.lm_.token_states(list(texts), layers=emb.layers_, template=emb.template)):
        pooled = np.asarray(ts.pooled_mask, bool)
        scaled = ts.states[pooled].astype(np.float64) / pooled.sum()
        lo, hi = ts.text_span
        spans, in_text = [], []
        for start, end in (o for o, p in zip(ts.offsets, pooled) if p):
            s, e = max(start, lo) - lo, min(end, hi) - lo
            in_text.append(e > s)
            spans.append((s, e) if e > s else (0, 0))
        tokens = [t for t, p in zip(ts.tokens, pooled) if p]
        out.append((tokens, spans, scaled, np.array(in_text, bool), ~np.array(in_text, bool)))
    return out


def _exact(clf, text: str, label, proba: np.ndarray) -> Explanation:
    w, b, k = class_weights(clf.head_, label)
    tokens, spans, scaled, in_text, in_template = token_shares(clf, [text])[0]
    shares = scaled @ w
    keep = np.flatnonzero(in_text)
    word_spans, phrase_spans = words(text), phrases(text)
    kept_spans = [spans[i] for i in keep]
    assign(kept_spans, shares[keep], word_spans)
    assign(kept_spans, shares[keep], phrase_spans)
    return Explanation(text=text, label=label, probability=float(proba[k]), logit=float(shares.sum() + b), bias=b,
                       template=float(shares[in_template].sum()), tokens=[tokens[i] for i in keep],
                       token_spans=kept_spans, token_scores=shares[keep], words=word_spans, phrases=phrase_spans,
                       method="exact")


def _occlusion(clf, text: str, label, proba: np.ndarray) -> Explanation:
    w, b, k = class_weights(clf.head_, label)
    word_spans, phrase_spans = words(text), phrases(text)
    variants = [text] + [_drop(text, s) for s in word_spans] + [_drop(text, s) for s in phrase_spans]
    # Straight to the LM(s), not through the cache: occluded variants are throw-away texts.
    feats = clf.embedder_.embed_uncached(variants).astype(np.float64)
    scores = feats @ w + b
    for span, score in zip(word_spans + phrase_spans, scores[1:]):
        span.score = float(scores[0] - score)
    return Explanation(text=text, label=label, probability=float(proba[k]), logit=float(scores[0]), bias=b,
                       template=0.0, words=word_spans, phrases=phrase_spans, method="occlusion")


def _drop(text: str, span: Span) -> str:
    dropped = (text[: span.start] + text[span.end :]).strip()
    return dropped or "…"  # an empty text would not embed; a lone ellipsis carries no content
