"""Fixtures for the classify tests: an in-memory cache and the project's own labelled example sentences."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture()
def cache():
    from slmkit.classify import EmbeddingCache

    return EmbeddingCache(None)


@pytest.fixture(scope="session")
def en_data():
    frame = pd.read_csv(EXAMPLES / "sentences_en.csv")
    return frame["text"].tolist(), frame["label"].to_numpy()


@pytest.fixture(scope="session")
def ko_data():
    frame = pd.read_csv(EXAMPLES / "sentences_ko.csv")
    return frame["text"].tolist(), frame["label"].to_numpy()


@pytest.fixture(scope="session")
def session_cache():
    from slmkit.classify import EmbeddingCache

    return EmbeddingCache(None)


@pytest.fixture(scope="session")
def fitted(tiny_causal_dir, en_data, session_cache):
    """A mean-pooled two-layer classifier on the English sentences (fitted once per run)."""
    from slmkit.classify import LMClassifier

    texts, y = en_data
    return LMClassifier(str(tiny_causal_dir), template="Review: {text}\nAnswer:", pooling="mean", layers=(1, -1), cv=3,
                        cache=session_cache, random_state=0).fit(texts, y)
