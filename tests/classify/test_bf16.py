"""The classifier in bfloat16: what `dtype="auto"` runs on an AVX-512 BF16 or AMX CPU (here forced, on any CPU)."""

from __future__ import annotations

import numpy as np

from slmkit.classify import EmbeddingCache, LMClassifier, explain


def test_auto_configured_classifier_fits_explains_and_round_trips_in_bf16(tiny_causal_dir, en_data, monkeypatch,
                                                                           tmp_path):
    monkeypatch.setenv("SLMKIT_DTYPE", "bfloat16")
    texts, y = en_data
    cache = EmbeddingCache(None)
    clf = LMClassifier(str(tiny_causal_dir), cv=3, cache=cache, random_state=0).fit(texts, y)
    assert clf.embedder_.lm_.info["dtype"] == "bfloat16" and clf.auto_ is not None
    proba = clf.predict_proba(texts[:6])
    assert proba.dtype == np.float64 and np.allclose(proba.sum(axis=1), 1)
    assert clf.score(texts, y) > 0.5  # training rows: the head fits them
    # Exact contributions (mean pooling) explain the score the classifier computes, in bf16 as in float32.
    exact = LMClassifier(str(tiny_causal_dir), template="Review: {text}", pooling="mean", layers=(-1,), cv=3,
                         cache=cache, random_state=0).fit(texts, y)
    (one,) = explain(exact, texts[:1])
    sign = 1.0 if one.label == exact.classes_[1] else -1.0
    assert one.method == "exact" and len(one.token_scores) > 0
    np.testing.assert_allclose(one.logit, sign * exact.decision_function(texts[:1])[0], rtol=0.02, atol=0.02)
    clf.save(tmp_path / "m")
    loaded = LMClassifier.load(tmp_path / "m", cache=cache)
    np.testing.assert_allclose(loaded.predict_proba(texts[:6]), proba, rtol=1e-5)
