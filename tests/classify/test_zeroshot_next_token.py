"""Zero-shot with one-token label words runs one forward pass per text, with the per-choice path's numbers."""

from __future__ import annotations

import numpy as np

from slmkit.classify import EmbeddingCache, ZeroShotClassifier

SINGLE = {"negative": " b", "positive": [" c", " g"]}  # one token each in the tiny test vocabulary


def _fitted(tiny_causal_dir, calibrate=False):
    return ZeroShotClassifier(str(tiny_causal_dir), prompt="Review: {text}\nVerdict:", label_words=SINGLE,
                              calibrate=calibrate, cache=EmbeddingCache(None)).fit()


def test_one_token_label_words_take_one_forward_pass_per_text(tiny_causal_dir, en_data):
    texts, _ = en_data
    zs = _fitted(tiny_causal_dir)
    lm = zs.lm_
    assert lm.single_token_ids([" b", " c", " g"]) is not None
    rows = []
    original = lm._backbone
    lm._backbone = lambda ids, mask, hidden_states: rows.append(ids.shape[0]) or original(ids, mask, hidden_states)
    try:
        zs.decision_function(texts[:5])
    finally:
        del lm._backbone
    assert sum(rows) == 5


def test_next_token_path_gives_the_per_choice_numbers(tiny_causal_dir, en_data, monkeypatch):
    # Equal to 1e-5 is float32's promise; bf16 (auto's choice on AVX-512 BF16 CPUs) rounds the two paths'
    # different sequence lengths differently (~2e-4).
    monkeypatch.setenv("SLMKIT_DTYPE", "float32")
    texts, _ = en_data
    for calibrate in (False, True):
        fast = _fitted(tiny_causal_dir, calibrate)
        expected_fast = fast.decision_function(texts)
        slow = _fitted(tiny_causal_dir, calibrate)
        slow.lm_.single_token_ids = lambda tokens: None  # force one pass per text and label word
        try:
            slow.fit()
            expected_slow = slow.decision_function(texts)
        finally:
            del slow.lm_.single_token_ids
        np.testing.assert_allclose(expected_fast, expected_slow, rtol=0, atol=1e-5)
        assert (fast.predict(texts) == slow.predict(texts)).all()
