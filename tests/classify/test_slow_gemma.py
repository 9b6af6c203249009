"""The real gemma3-270m: the exact-contribution identity and a sensible fit on the example sentences."""

from __future__ import annotations

import numpy as np
import pytest

from slmkit.classify import EmbeddingCache, LMClassifier, explain

pytestmark = pytest.mark.slow


def test_real_model_fit_and_exact_explanations(gemma, en_data):
    texts, y = en_data
    cache = EmbeddingCache(None)
    cache.add_model("gemma3-270m", gemma)  # reuse the session's loaded model instead of loading it twice
    clf = LMClassifier("gemma3-270m", template="Review: {text}\nIs this review positive or negative? Answer:",
                       pooling="mean", cv=4, cache=cache, random_state=0).fit(texts[::2], y[::2])
    assert clf.score(texts[1::2], y[1::2]) >= 0.7  # held-out half of our own sentences
    logits = clf.decision_function(texts[1:6:2])
    for ex, logit in zip(explain(clf, texts[1:6:2], labels=["positive"] * 3), logits):
        np.testing.assert_allclose(ex.bias + ex.template + ex.token_scores.sum(), logit, rtol=1e-3, atol=1e-3)
