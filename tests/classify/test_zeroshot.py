"""ZeroShotClassifier: shapes, calibration removes the content-free prior, caching, errors."""

from __future__ import annotations

import numpy as np
import pytest

from slmkit.classify import ZeroShotClassifier
from slmkit.errors import ConfigError

WORDS = {"negative": " bad", "positive": [" good", " great"]}


def test_predicts_known_labels_with_probabilities(tiny_causal_dir, en_data, cache):
    texts, y = en_data
    zs = ZeroShotClassifier(str(tiny_causal_dir), prompt="Review: {text}\nVerdict:", label_words=WORDS,
                            cache=cache).fit(texts, y)
    proba = zs.predict_proba(texts[:6])
    assert proba.shape == (6, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(zs.predict(texts)) <= {"negative", "positive"}
    assert 0 <= zs.score(texts, y) <= 1


def test_calibration_divides_out_the_prior(tiny_causal_dir, en_data, cache):
    texts, _ = en_data
    raw = ZeroShotClassifier(str(tiny_causal_dir), label_words=WORDS, cache=cache).fit()
    cal = ZeroShotClassifier(str(tiny_causal_dir), label_words=WORDS, calibrate=True, cache=cache).fit()
    expected = raw.predict_log_proba(texts) - raw.prior_
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(cal.predict_log_proba(texts), expected, rtol=1e-6, atol=1e-9)


def test_classes_follow_scikit_learns_order_whatever_the_order_of_label_words(tiny_causal_dir, en_data, cache):
    from sklearn.metrics import get_scorer

    texts, y = en_data
    y01 = np.where(np.asarray(y) == "positive", 1, 0)
    a = ZeroShotClassifier(str(tiny_causal_dir), label_words={1: " good", 0: " bad"}, cache=cache).fit()
    b = ZeroShotClassifier(str(tiny_causal_dir), label_words={0: " bad", 1: " good"}, cache=cache).fit()
    assert a.classes_.tolist() == b.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(a.predict_proba(texts), b.predict_proba(texts))
    assert get_scorer("neg_log_loss")(a, texts, y01) == get_scorer("neg_log_loss")(b, texts, y01)
    decision = a.decision_function(texts)  # binary: the log-odds of classes_[1], as roc_auc reads it
    assert decision.shape == (len(texts),) and 0 <= get_scorer("roc_auc")(a, texts, y01) <= 1
    np.testing.assert_allclose(decision, np.log(a.predict_proba(texts)[:, 1] / a.predict_proba(texts)[:, 0]),
                               rtol=1e-5)


def test_scores_are_cached(tiny_causal_dir, en_data, cache):
    texts, _ = en_data
    zs = ZeroShotClassifier(str(tiny_causal_dir), label_words=WORDS, cache=cache).fit()
    zs.predict(texts)
    misses = cache.misses
    zs.predict(texts)
    assert cache.misses == misses


def test_errors(tiny_causal_dir, cache):
    with pytest.raises(ConfigError, match="label_words is required"):
        ZeroShotClassifier(str(tiny_causal_dir), cache=cache).fit()
    with pytest.raises(ConfigError, match="exactly once"):
        ZeroShotClassifier(str(tiny_causal_dir), prompt="no slot", label_words=WORDS, cache=cache).fit()
    with pytest.raises(ConfigError, match="no entry in label_words"):
        ZeroShotClassifier(str(tiny_causal_dir), label_words=WORDS, cache=cache).fit(["x"], ["neutral"])
