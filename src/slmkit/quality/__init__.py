"""Data quality by reverse modeling (Yu et al. 2024, "Reverse Modeling in Large Language Models").

Per document, S = mean forward token loss - mean reverse token loss, where the reverse model is a causal LM
trained on token-reversed documents. Documents that are easier backwards (high S) tend to be the coherent
ones. Forward perplexity, the classic filter, comes with every score for comparison.

Example:
    >>> from slmkit.quality import QualityConfig, train_scorer, score_file, read_scores, select
    >>> train_scorer(clean_texts, "scorer", QualityConfig(route="scratch"))          # doctest: +SKIP
    >>> score_file("corpus.jsonl", "scorer", "scores")                              # doctest: +SKIP
    >>> top = select(read_scores("scores"), by="S", fraction=0.5)                   # doctest: +SKIP
"""

from __future__ import annotations

from slmkit.quality._config import QUALITY_CONFIG_NAME, ROUTES, SCORE_COLUMNS, QualityConfig, ScoreConfig
from slmkit.quality._pair import (
    REJECT_COLUMN,
    SCORER_INFO_NAME,
    ScorerPair,
    corpus_fingerprint,
    load_scorer,
    score_frame,
    train_scorer,
    training_token_counts,
)
from slmkit.quality._report import histogram_figure, top_overlap, write_report
from slmkit.quality._score import MANIFEST_NAME, read_rejects, read_scores, score_file
from slmkit.quality._select import MODES, CombinedScore, select

__all__ = [
    "MANIFEST_NAME",
    "MODES",
    "QUALITY_CONFIG_NAME",
    "REJECT_COLUMN",
    "ROUTES",
    "SCORER_INFO_NAME",
    "SCORE_COLUMNS",
    "CombinedScore",
    "QualityConfig",
    "ScoreConfig",
    "ScorerPair",
    "corpus_fingerprint",
    "histogram_figure",
    "load_scorer",
    "read_rejects",
    "read_scores",
    "score_file",
    "score_frame",
    "select",
    "top_overlap",
    "train_scorer",
    "training_token_counts",
    "write_report",
]
