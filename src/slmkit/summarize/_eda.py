"""Exploratory statistics of a dialogue-summary table: lengths, turns, speakers, topics, keywords, compression.

`describe` computes; `_eda_report.write_eda_report` draws the plots and writes the Markdown summary.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slmkit.errors import ConfigError
from slmkit.summarize._dialogue import detect_language, parse_dialogue

PERCENTILES = (50, 90, 95, 99)


@dataclass
class EdaConfig:
    """What `describe` computes.

    Attributes:
        top_topics: topics listed by frequency (the rest is "the tail").
        keyword_topics: topics (most frequent first) that get keywords.
        n_keywords: keywords per topic.
        coverage: token percentile the recommended max lengths cover.
    """

    top_topics: int = 20
    keyword_topics: int = 20
    n_keywords: int = 8
    coverage: int = 99

    def __post_init__(self) -> None:
        if not 1 <= self.coverage <= 100:
            raise ConfigError(f"coverage is a percentile: it must be between 1 and 100, got {self.coverage}")
        for name in ("top_topics", "keyword_topics", "n_keywords"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class EdaResult:
    """Computed statistics; `lengths` holds the per-row arrays the plots need."""

    n_rows: int
    language: str
    stats: dict = field(default_factory=dict)
    lengths: dict[str, np.ndarray] = field(default_factory=dict)
    topics: list[tuple[str, int]] = field(default_factory=list)
    keywords: dict[str, list[str]] = field(default_factory=dict)
    recommendation: dict = field(default_factory=dict)
    model: str | None = None

    def to_dict(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "language": self.language,
            "model": self.model,
            "stats": self.stats,
            "topics": self.topics,
            "keywords": self.keywords,
            "recommendation": self.recommendation,
        }


def describe(frame: pd.DataFrame, config: EdaConfig | None = None, *, lm=None) -> EdaResult:
    """Compute EDA statistics of a `load_dialogues` table.

    Args:
        frame: columns fname, dialogue, summary, topic (summary/topic may be empty strings).
        config: what to compute.
        lm: a LanguageModel whose `count_tokens` gives token lengths (None: characters only).
    """
    config = config or EdaConfig()
    result = EdaResult(len(frame), detect_language(list(frame["dialogue"])), model=getattr(lm, "info", {}).get("name"))
    turns = [parse_dialogue(d) for d in frame["dialogue"]]
    columns = [c for c in ("dialogue", "summary", "topic") if frame[c].astype(bool).any()]
    for column in columns:
        result.lengths[f"{column}_chars"] = frame[column].str.len().to_numpy()
        if lm is not None:
            result.lengths[f"{column}_tokens"] = np.asarray(lm.count_tokens(list(frame[column])))
    result.lengths["turns"] = np.array([len(t) for t in turns])
    result.lengths["speakers"] = np.array([len({x.speaker for x in t if x.speaker}) for t in turns])
    if "summary" in columns:
        result.lengths["compression_chars"] = result.lengths["summary_chars"] / np.maximum(
            result.lengths["dialogue_chars"], 1
        )
        if lm is not None:
            result.lengths["compression_tokens"] = result.lengths["summary_tokens"] / np.maximum(
                result.lengths["dialogue_tokens"], 1
            )
    result.stats = {name: summarize_array(values) for name, values in result.lengths.items()}
    result.stats["speaker_counts"] = dict(sorted(Counter(result.lengths["speakers"].tolist()).items()))
    if "topic" in columns:
        # Rows without a topic are counted apart, not as a topic named ""
        result.topics = Counter(t for t in frame["topic"] if str(t).strip()).most_common()
        without = int(sum(not str(t).strip() for t in frame["topic"]))
        result.stats["topics"] = topic_stats(result.topics, config.top_topics, n_rows=len(frame))
        result.stats["topics"]["rows_without_topic"] = without
        result.keywords = topic_keywords(frame, result.language, config.keyword_topics, config.n_keywords)
    if lm is not None:
        result.recommendation = recommend_lengths(result.lengths, config.coverage)
    return result


def summarize_array(values: np.ndarray) -> dict:
    """mean, min, max and the PERCENTILES of a numeric array."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return {}
    out = {"mean": round(float(values.mean()), 3), "min": float(values.min()), "max": float(values.max())}
    out.update({f"p{p}": round(float(np.percentile(values, p)), 3) for p in PERCENTILES})
    return out


def topic_stats(counts: list[tuple[str, int]], top: int, n_rows: int | None = None) -> dict:
    """Top topics, and how long the tail is (topics seen once, share of rows outside the top). `share_in_top` is
    of all `n_rows` (rows without a topic included), else of the rows counted."""
    total = (n_rows if n_rows is not None else sum(n for _, n in counts)) or 1
    return {
        "distinct": len(counts),
        "top": counts[:top],
        "singletons": sum(1 for _, n in counts if n == 1),
        "share_in_top": round(sum(n for _, n in counts[:top]) / total, 4),
        "tail_topics": max(len(counts) - top, 0),
    }


def topic_keywords(frame: pd.DataFrame, language: str, n_topics: int, n_keywords: int) -> dict[str, list[str]]:
    """TF-IDF keywords per topic: each topic's dialogues form one document (Korean: kiwipiepy nouns)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    topics = [t for t, _ in Counter(t for t in frame["topic"] if str(t).strip()).most_common(n_topics)]
    if len(topics) < 2:
        return {}
    docs = [" ".join(frame.loc[frame["topic"] == t, "dialogue"]) for t in topics]
    if language == "ko":
        nouns = _korean_nouns()
        vectorizer = TfidfVectorizer(analyzer=nouns, sublinear_tf=True)
    else:
        vectorizer = TfidfVectorizer(
            stop_words="english", token_pattern=r"(?u)\b[A-Za-z][A-Za-z]+\b", sublinear_tf=True
        )
    try:
        matrix = vectorizer.fit_transform(docs).toarray()
    except ValueError:  # "empty vocabulary": no word the analyser keeps (numbers only, another script, no nouns)
        return {t: [] for t in topics}
    vocab = vectorizer.get_feature_names_out()
    return {t: [str(vocab[j]) for j in np.argsort(-row)[:n_keywords] if row[j] > 0] for t, row in zip(topics, matrix)}


def recommend_lengths(lengths: dict[str, np.ndarray], coverage: int = 99) -> dict:
    """Max input/output token lengths covering `coverage`% of rows, rounded up (inputs to 64, outputs to 16)."""
    out = {"coverage_percentile": coverage}
    for key, name, step in (("dialogue_tokens", "max_input_tokens", 64), ("summary_tokens", "max_output_tokens", 16)):
        if key in lengths and len(lengths[key]):
            value = int(math.ceil(np.percentile(lengths[key], coverage) / step) * step)
            out[name] = value
            out[f"{name}_truncates"] = int((lengths[key] > value).sum())
    return out


def _korean_nouns():
    from kiwipiepy import Kiwi

    kiwi = Kiwi()

    def nouns(text: str) -> list[str]:
        # Common and proper nouns of two or more characters: one-syllable nouns (것, 수, 때) carry no topic.
        return [t.form for t in kiwi.tokenize(text) if t.tag in ("NNG", "NNP") and len(t.form) > 1]

    return nouns
