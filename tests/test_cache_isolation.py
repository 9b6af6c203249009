"""The test session's caches live in a temp dir, never in the user's home (see tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

from slmkit.models import cache_dir


def test_tests_write_their_caches_to_a_temp_dir(test_cache_dir, tiny_causal_dir):
    from slmkit.classify import EmbeddingCache, LMEmbedder

    assert cache_dir() == test_cache_dir == Path(os.environ["SLMKIT_CACHE"])
    assert Path.home() / ".cache" not in cache_dir().parents
    cache = EmbeddingCache()  # the default on-disk cache
    LMEmbedder(str(tiny_causal_dir), cache=cache).fit().transform(["a short text"])
    assert (test_cache_dir / "classify").is_dir()


def test_shared_model_entries_are_links_to_the_users_cache(test_cache_dir):
    for name in ("gguf", "converted"):
        entry = test_cache_dir / name
        assert not entry.exists() or entry.is_symlink()
