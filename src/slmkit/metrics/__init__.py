"""Metrics: pure functions over lists and arrays (no file I/O, no model calls).

Example:
    >>> from slmkit.metrics import rouge
    >>> result = rouge(["#Person1#은 병원에 간다."], ["#Person1#은 병원에 간다."], tokenizer="kiwi")
    >>> round(result.summary()["final"], 1)
    100.0
"""

from __future__ import annotations

from slmkit.metrics._rouge import MULTI_REF_MODES, ROUGE_TYPES, RougeResult, bootstrap_ci, competition_score, rouge
from slmkit.metrics._tokenizers import (
    TOKENIZER_NAMES,
    CharacterTokenizer,
    DefaultTokenizer,
    KiwiTokenizer,
    WhitespaceTokenizer,
    get_tokenizer,
)

__all__ = [
    "MULTI_REF_MODES",
    "ROUGE_TYPES",
    "TOKENIZER_NAMES",
    "CharacterTokenizer",
    "DefaultTokenizer",
    "KiwiTokenizer",
    "RougeResult",
    "WhitespaceTokenizer",
    "bootstrap_ci",
    "competition_score",
    "get_tokenizer",
    "rouge",
]
