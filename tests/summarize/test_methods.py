from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from slmkit.errors import ConfigError
from slmkit.summarize import (
    FewShotRetriever,
    LeadSummarizer,
    LongestTurnSummarizer,
    PromptSummarizer,
    summary_params,
)

DIALOGUES = [
    "#Person1#: 오늘 영화 볼래?\n#Person2#: 좋아, 일곱 시에 보자.\n#Person1#: 극장 앞에서 만나.",
    "#Person1#: Where is the station?\n#Person2#: Go straight and turn left at the bank, it is very close.",
    "#Person1#: I lost my wallet.\n#Person2#: Did you check your bag?\n#Person1#: Yes.",
]


def test_lead_and_longest():
    assert LeadSummarizer(2).summarize(DIALOGUES[:1]) == ["오늘 영화 볼래? 좋아, 일곱 시에 보자."]
    assert LeadSummarizer(1, keep_tags=True).summarize(DIALOGUES[1:2]) == ["#Person1#: Where is the station?"]
    assert LongestTurnSummarizer().summarize(DIALOGUES[1:2]) == [
        "Go straight and turn left at the bank, it is very close."
    ]
    with pytest.raises(ConfigError, match="lead k"):
        LeadSummarizer(0)


def test_retriever_skips_own_row_and_orders_by_similarity(tiny_lm):
    retriever = FewShotRetriever(tiny_lm, k=2, max_example_chars=500).fit(DIALOGUES, ["a", "b", "c"], ["x", "y", "z"])
    (shots,) = retriever.select([DIALOGUES[0]], ids=["x"])
    assert len(shots) == 2 and all(s.dialogue != DIALOGUES[0] for s in shots)
    (shots,) = retriever.select([DIALOGUES[0]])
    assert shots[-1].dialogue == DIALOGUES[0]  # identical text is the nearest, placed last
    with pytest.raises(ConfigError, match="only 0 pool dialogue"):
        FewShotRetriever(tiny_lm, k=1, max_example_chars=5).fit(DIALOGUES, ["a", "b", "c"])


def test_prompt_summarizer_runs_and_post_processes(tiny_lm):
    params = summary_params(tiny_lm, max_new_tokens=8, seed=1)
    assert params.suppress_leading_newline and "\n\n" in params.stop and not params.extra
    retriever = FewShotRetriever(tiny_lm, k=1).fit(DIALOGUES, ["a", "b", "c"], ["x", "y", "z"])
    summarizer = PromptSummarizer(tiny_lm, "en", params, retriever=retriever, max_dialogue_chars=60, batch_size=2)
    out = summarizer.summarize(DIALOGUES, ids=["x", "y", "z"])
    assert len(out) == 3 and all(isinstance(s, str) and "\n" not in s for s in out)
    assert summarizer.n_cut_ >= 1  # the longer dialogues were cut at a turn boundary
    assert summarizer.prompts_[0].count("Dialogue:") == 2
    assert out == PromptSummarizer(tiny_lm, "en", params, retriever=retriever, max_dialogue_chars=60).summarize(
        DIALOGUES, ids=["x", "y", "z"]
    )


class _FakeEmbedder:
    """Vectors = a large shared direction + small topic directions; "h" is a hub with a larger shared part."""

    VECTORS: ClassVar[dict] = {"a1": [10, 1, 0], "b1": [10, 0, 1], "h1": [20, 0.2, 0.2], "b2": [12, 0.2, 0.5]}

    def embed(self, texts, **kwargs):
        return np.asarray([self.VECTORS[t] for t in texts], dtype=np.float32)


def test_centering_removes_the_shared_direction():
    pool, summaries = ["a1", "b1", "h1"], ["A", "B", "H"]
    raw = FewShotRetriever(_FakeEmbedder(), k=1, center=False).fit(pool, summaries)
    centred = FewShotRetriever(_FakeEmbedder(), k=1, center=True).fit(pool, summaries)
    assert raw.select(["b2"])[0][0].summary == "H"  # the hub wins under raw cosine
    assert centred.select(["b2"])[0][0].summary == "B"


def test_pool_vectors_come_from_the_embedding_cache_on_a_second_fit(tiny_lm):
    from slmkit.classify import EmbeddingCache

    cache = EmbeddingCache(":memory:")
    first = FewShotRetriever(tiny_lm, k=1, cache=cache).fit(DIALOGUES, ["a", "b", "c"], ["x", "y", "z"])
    assert cache.misses == len(DIALOGUES) and cache.hits == 0
    second = FewShotRetriever(tiny_lm, k=1, cache=cache).fit(DIALOGUES, ["a", "b", "c"], ["x", "y", "z"])
    assert cache.hits == len(DIALOGUES) and cache.misses == len(DIALOGUES)
    np.testing.assert_allclose(first.vectors_, second.vectors_, rtol=1e-5, atol=1e-6)


def test_pool_vectors_are_the_classifier_embeddings_of_the_same_texts(tiny_lm, tiny_causal_dir):
    from slmkit.classify import EmbeddingCache, LMEmbedder

    cache = EmbeddingCache(":memory:")
    cache.add_model(str(tiny_causal_dir), tiny_lm)
    FewShotRetriever(tiny_lm, k=1, cache=cache).fit(DIALOGUES, ["a", "b", "c"], ["x", "y", "z"])
    misses = cache.misses
    LMEmbedder(str(tiny_causal_dir), cache=cache).fit().transform(DIALOGUES)
    assert cache.misses == misses  # one cache, one key: classification re-embeds nothing
