from __future__ import annotations

import pandas as pd

import json

import numpy as np

from slmkit.summarize import EdaConfig, describe, find_example_data, load_dialogues, write_eda_report
from slmkit.summarize._eda import recommend_lengths


def test_describe_korean_with_token_counts(tiny_lm):
    frame = load_dialogues(find_example_data() / "dialogues_ko.csv")
    result = describe(frame, EdaConfig(keyword_topics=5, n_keywords=3), lm=tiny_lm)
    assert result.language == "ko" and result.n_rows == 12
    assert result.lengths["dialogue_tokens"].shape == (12,)
    assert result.stats["turns"]["min"] >= 4 and result.stats["speaker_counts"] == {2: 10, 3: 2}
    assert 0 < result.stats["compression_chars"]["mean"] < 1
    assert result.stats["topics"]["distinct"] == 12 and result.stats["topics"]["singletons"] == 12
    # Korean keywords are kiwipiepy nouns of two or more characters.
    assert all(len(w) > 1 for words in result.keywords.values() for w in words) and len(result.keywords) == 5
    assert result.recommendation["max_input_tokens"] % 64 == 0


def test_report_files(tmp_path, tiny_lm):
    frame = load_dialogues(find_example_data() / "dialogues_en.csv")
    path = write_eda_report(describe(frame, lm=tiny_lm), tmp_path / "eda")
    text = path.read_text()
    assert "## Recommended lengths" in text and "| dialogue_tokens |" in text
    for name in ("lengths_chars.png", "lengths_tokens.png", "turns_speakers.png", "compression.png", "topics.png"):
        assert (tmp_path / "eda" / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "eda" / "eda.json").read_text())["n_rows"] == 12


def test_characters_only_without_model():
    frame = load_dialogues(find_example_data() / "dialogues_en.csv")
    result = describe(frame)
    assert "dialogue_tokens" not in result.lengths and result.recommendation == {}


def test_recommend_lengths_rounds_up_and_counts_truncation():
    lengths = {"dialogue_tokens": np.arange(1, 101), "summary_tokens": np.full(100, 20)}
    rec = recommend_lengths(lengths, coverage=90)
    assert rec["max_input_tokens"] == 128 and rec["max_input_tokens_truncates"] == 0
    assert rec["max_output_tokens"] == 32


def test_topics_without_a_usable_word_get_no_keywords_not_a_crash():
    from slmkit.summarize._eda import topic_keywords

    frame = pd.DataFrame({"dialogue": ["#Person1#: 123 456", "#Person1#: 789 012"], "topic": ["a", "b"]})
    assert topic_keywords(frame, "en", n_topics=5, n_keywords=3) == {"a": [], "b": []}


def test_rows_without_a_topic_are_counted_apart():
    frame = load_dialogues(find_example_data() / "dialogues_en.csv")
    frame.loc[:2, "topic"] = ""
    stats = describe(frame, EdaConfig(keyword_topics=2, n_keywords=2)).stats["topics"]
    assert stats["rows_without_topic"] == 3 and "" not in dict(stats["top"])
    counted = sum(n for _, n in stats["top"])
    assert stats["share_in_top"] == round(counted / len(frame), 4)  # of all rows, the topic-less included
    from slmkit.summarize._eda import topic_keywords

    frame.loc[:, "topic"] = [""] * 6 + ["a", "a", "b"] + [""] * (len(frame) - 9)  # most rows have no topic
    assert set(topic_keywords(frame, "en", n_topics=2, n_keywords=2)) == {"a", "b"}  # "" took a slot
