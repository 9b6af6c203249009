"""LMEmbedder and EmbeddingCache: shapes, layer choice, caching without a second LM call, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.base import clone

from slmkit.classify import EmbeddingCache, LMEmbedder
from slmkit.classify._embedder import resolve_layers
from slmkit.errors import ConfigError, DataError

TEXTS = ["A calm and lovely morning.", "The bus was late again.", "Numbers: 3, 5 and 8."]


class CountingLM:
    """Wraps a LanguageModel and counts the texts that reach `embed`."""

    def __init__(self, lm):
        self.lm, self.embedded = lm, 0

    def __getattr__(self, name):
        return getattr(self.lm, name)

    def embed(self, texts, **kwargs):
        self.embedded += len(texts)
        return self.lm.embed(texts, **kwargs)


def test_shapes_and_layer_concatenation(tiny_causal_dir, cache):
    one = LMEmbedder(str(tiny_causal_dir), cache=cache).fit().transform(TEXTS)
    two = LMEmbedder(str(tiny_causal_dir), layers=(1, -1), cache=cache).fit().transform(TEXTS)
    assert one.shape == (3, 32) and one.dtype == np.float32
    assert two.shape == (3, 64)
    np.testing.assert_allclose(two[:, 32:], one, rtol=1e-5, atol=1e-6)


def test_matches_the_runtime_embed(tiny_causal_dir, tiny_lm, cache):
    emb = LMEmbedder(str(tiny_causal_dir), template="Q: {text}\nA:", pooling="last", cache=cache).fit()
    expected = tiny_lm.embed(TEXTS, pooling="last", template="Q: {text}\nA:")
    np.testing.assert_allclose(emb.transform(TEXTS), expected, rtol=1e-5, atol=1e-6)


def test_cache_serves_repeats_and_other_layer_sets_without_the_lm(tiny_causal_dir, cache):
    emb = LMEmbedder(str(tiny_causal_dir), layers=(1, -1), cache=cache).fit()
    counter = CountingLM(emb.lm_)
    emb.lm_ = counter
    first = emb.transform(TEXTS + TEXTS[:1])
    assert counter.embedded == 3  # the repeated text is embedded once
    again = emb.transform(TEXTS)
    assert counter.embedded == 3
    np.testing.assert_array_equal(first[:3], again)
    last_only = LMEmbedder(str(tiny_causal_dir), layers=(-1,), cache=cache).fit()
    last_only.lm_ = counter
    np.testing.assert_array_equal(last_only.transform(TEXTS), again[:, 32:])
    assert counter.embedded == 3


def test_cache_key_separates_templates_and_poolings(tiny_causal_dir, cache):
    a = LMEmbedder(str(tiny_causal_dir), cache=cache).fit().transform(TEXTS)
    b = LMEmbedder(str(tiny_causal_dir), template="Text: {text}", cache=cache).fit().transform(TEXTS)
    c = LMEmbedder(str(tiny_causal_dir), pooling="last", cache=cache).fit().transform(TEXTS)
    assert not np.allclose(a, b) and not np.allclose(a, c)


def test_cache_persists_on_disk(tiny_causal_dir, tmp_path):
    first = LMEmbedder(str(tiny_causal_dir), cache=EmbeddingCache(tmp_path)).fit().transform(TEXTS)
    reopened = EmbeddingCache(tmp_path)
    emb = LMEmbedder(str(tiny_causal_dir), cache=reopened).fit()
    emb.lm_ = counter = CountingLM(emb.lm_)
    np.testing.assert_array_equal(emb.transform(TEXTS), first)
    assert counter.embedded == 0 and (tmp_path / "embeddings.sqlite").is_file()


def test_clone_shares_the_cache_and_loaded_model(tiny_causal_dir, cache):
    emb = LMEmbedder(str(tiny_causal_dir), cache=cache)
    twin = clone(emb)
    assert twin.cache is cache and copy.deepcopy(cache) is cache
    assert twin.fit().lm_ is emb.fit().lm_


def test_layer_resolution():
    assert resolve_layers((-1,), 18) == (18,)
    assert resolve_layers((0.5, -1), 18) == (9, 18)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_layers((19,), 18)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        resolve_layers((1.5,), 18)


@pytest.mark.parametrize(("params", "message"), [
    ({"pooling": "max"}, "pooling must be one of"),
    ({"template": "no slot"}, "exactly once"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_params_are_named(tiny_causal_dir, cache, params, message):
    with pytest.raises(ConfigError, match=message):
        LMEmbedder(str(tiny_causal_dir), cache=cache, **params).fit()


def test_empty_text_is_rejected_with_its_row(tiny_causal_dir, cache):
    emb = LMEmbedder(str(tiny_causal_dir), cache=cache).fit()
    with pytest.raises(DataError, match="row 2: empty text"):
        emb.transform(["fine", "   "])
    with pytest.raises(DataError, match="single string"):
        emb.transform("not a list")


def test_transform_before_fit_raises(tiny_causal_dir):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LMEmbedder(str(tiny_causal_dir)).transform(TEXTS)
