"""Explanations: the exact mean-pooling identity, word/phrase aggregation (Korean too), occlusion, global, stability."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from slmkit.classify import LMClassifier, explain, explanation_stability, global_explanation
from slmkit.classify._segment import assign, phrases, words
from slmkit.errors import ConfigError


def test_exact_contributions_reproduce_the_decision_function(fitted, en_data):
    texts = en_data[0][:6]
    # The reference is the batched embed path through the *unfolded* model: StandardScaler, then the LR.
    head = fitted.head_
    logits = head.estimator_.decision_function(head.scaler_.transform(fitted.transform(texts)))
    for ex, logit in zip(explain(fitted, texts, labels=["positive"] * 6), logits):
        assert ex.method == "exact"
        total = ex.bias + ex.template + ex.token_scores.sum()
        np.testing.assert_allclose(total, logit, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ex.logit, logit, rtol=1e-4, atol=1e-5)
        # nothing lost or double-counted when tokens are spread onto words
        np.testing.assert_allclose(sum(w.score for w in ex.words), ex.token_scores.sum(), rtol=1e-6, atol=1e-9)


def test_negative_label_is_the_mirror_image(fitted, en_data):
    text = en_data[0][:1]
    pos = explain(fitted, text, labels=["positive"])[0]
    neg = explain(fitted, text, labels=["negative"])[0]
    np.testing.assert_allclose([w.score for w in pos.words], [-w.score for w in neg.words])
    np.testing.assert_allclose(pos.probability + neg.probability, 1.0)


def test_multiclass_identity_uses_centred_logits(tiny_causal_dir, ko_data, en_data, session_cache):
    texts = ko_data[0] + en_data[0][:20]
    y = np.array(list(ko_data[1]) + ["영어"] * 20)
    clf = LMClassifier(str(tiny_causal_dir), pooling="mean", cv=3, random_state=0, cache=session_cache).fit(texts, y)
    scores = clf.decision_function(texts[:4])
    for ex, row in zip(explain(clf, texts[:4]), scores):
        k = list(clf.classes_).index(ex.label)
        np.testing.assert_allclose(ex.bias + ex.template + ex.token_scores.sum(), row[k] - row.mean(),
                                   rtol=1e-4, atol=1e-5)
        assert ex.label == clf.classes_[row.argmax()]


def test_korean_words_come_from_kiwi():
    text = "배우들의 연기가 훌륭했고, 음악도 좋았어요."
    pieces = [w.text for w in words(text)]
    assert "배우" in pieces and "연기" in pieces and "음악" in pieces
    assert [p.text for p in phrases(text)] == ["배우들의 연기가 훌륭했고,", "음악도 좋았어요."]
    spans = words(text)
    assert all(text[s.start:s.end] == s.text for s in spans)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_assign_splits_by_overlap():
    spans = words("good film")
    # "good film": (2, 6) covers 2 chars of "good" and 1 of "film"; the blank (4, 5) goes to the next word
    leftover = assign([(0, 2), (2, 6), (4, 5), (6, 9)], [1.0, 3.0, 0.5, 2.0], spans)
    assert leftover == 0
    np.testing.assert_allclose([s.score for s in spans], [1.0 + 2.0, 1.0 + 0.5 + 2.0])


def test_occlusion_for_last_pooling(tiny_causal_dir, en_data, session_cache):
    texts, y = en_data
    clf = LMClassifier(str(tiny_causal_dir), pooling="last", cv=3, cache=session_cache, random_state=0).fit(texts, y)
    ex = explain(clf, texts[:2])
    assert all(e.method == "occlusion" for e in ex)
    assert len(ex[0].words) == len(words(texts[0])) and any(w.score != 0 for w in ex[0].words)
    with pytest.raises(ConfigError, match="pooling='mean'"):
        explain(clf, texts[:1], method="exact")
    with pytest.raises(ConfigError, match="pooling='mean'"):
        global_explanation(clf, texts)


def test_global_explanation_ranks_words_per_class(fitted, en_data):
    result = global_explanation(fitted, en_data[0], top_k=5, min_count=2)
    assert set(result) == {"negative", "positive"}
    for rows in result.values():
        assert 0 < len(rows) <= 5
        means = [r["mean"] for r in rows]
        assert means == sorted(means, reverse=True) and all(r["count"] >= 2 for r in rows)


def test_stability_is_measured_and_seeded(fitted, en_data):
    texts, y = en_data
    a = explanation_stability(fitted, texts, y, texts[:8], n_boot=3, seed=1)
    b = explanation_stability(fitted, texts, y, texts[:8], n_boot=3, seed=1)
    assert a.spearman.shape == (3,) and np.all(np.abs(a.spearman) <= 1)
    np.testing.assert_array_equal(a.spearman, b.spearman)
    assert 0 <= a.to_dict()["top_overlap_mean"] <= 1


def test_stability_is_seeded_for_a_classifier_without_random_state(tiny_causal_dir, en_data, session_cache):
    texts, y = en_data  # random_state=None (the default): the refits' CV folds must still follow `seed`
    clf = LMClassifier(str(tiny_causal_dir), template="Review: {text}\nAnswer:", pooling="mean", layers=(-1,), cv=3,
                       cache=session_cache).fit(texts, y)
    a = explanation_stability(clf, texts, y, texts[:8], n_boot=4, seed=1)
    b = explanation_stability(clf, texts, y, texts[:8], n_boot=4, seed=1)
    np.testing.assert_array_equal(a.spearman, b.spearman)
    np.testing.assert_array_equal(a.top_overlap, b.top_overlap)


def test_bad_requests(fitted):
    with pytest.raises(ConfigError, match="method must be one of"):
        explain(fitted, ["text"], method="shap")
    with pytest.raises(ConfigError, match="cannot explain label 'neutral'"):
        explain(fitted, ["text"], labels=["neutral"])
