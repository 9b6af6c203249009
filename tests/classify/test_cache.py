"""The embedding cache: a bound on what it keeps in memory (a served classifier runs for days)."""

from __future__ import annotations

import numpy as np
import pytest

from slmkit.classify import EmbeddingCache


def test_max_items_drops_the_oldest_vectors():
    cache = EmbeddingCache(None, max_items=3)
    texts = [f"text {i}" for i in range(5)]
    for i, text in enumerate(texts):
        cache.put("space", [text], np.full((1, 4), i, np.float32))
    kept = cache.get("space", texts)
    assert [v is not None for v in kept] == [False, False, True, True, True]
    np.testing.assert_array_equal(kept[-1], np.full(4, 4, np.float32))


def test_unbounded_by_default_and_bad_bound_refused():
    cache = EmbeddingCache(None)
    cache.put("space", [f"t{i}" for i in range(50)], np.zeros((50, 2), np.float32))
    assert all(v is not None for v in cache.get("space", [f"t{i}" for i in range(50)]))
    with pytest.raises(ValueError, match="max_items"):
        EmbeddingCache(None, max_items=0)


def test_cache_dir_none_keeps_vectors_in_memory_and_makes_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spelling in ("none", "None", ":memory:"):
        cache = EmbeddingCache(spelling)
        cache.put("space", ["a"], np.ones((1, 2), np.float32))
        assert cache.directory is None and cache.get("space", ["a"])[0] is not None
    assert list(tmp_path.iterdir()) == []
