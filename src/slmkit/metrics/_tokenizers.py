"""Tokenizers for ROUGE: the score depends on how text is split, so the choice is explicit and recorded.

rouge-score's default tokenizer lower-cases and replaces every non-[a-z0-9] character with a space, which
deletes Hangul: Korean would score 0. Each tokenizer here has a `name` (recorded in results) and a
`tokenize(text) -> list[str]` method, the interface `rouge_score.rouge_scorer.RougeScorer` expects.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from slmkit.errors import ConfigError

# `#Person1#`, `#PhoneNumber#`: one token each, so a speaker tag counts as one unigram whatever the tokenizer.
_TAG = re.compile(r"(#[A-Za-z][A-Za-z0-9_]*#)")


class WhitespaceTokenizer:
    """Split on whitespace, keep case and punctuation (what the `rouge` package call in the baseline did)."""

    name = "whitespace"

    def tokenize(self, text: str) -> list[str]:
        return text.split()


class CharacterTokenizer:
    """Every non-space character is a token (tokenizer-free, but inflates ROUGE-1 for Korean)."""

    name = "char"

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


class DefaultTokenizer:
    """rouge-score's own tokenizer (lower-case, [a-z0-9] only): the usual choice for English, 0 for Korean."""

    name = "default"

    def __init__(self) -> None:
        from rouge_score import tokenizers

        self._inner = tokenizers.DefaultTokenizer(use_stemmer=False)

    def tokenize(self, text: str) -> list[str]:
        return self._inner.tokenize(text)


class KiwiTokenizer:
    """Korean morphemes from kiwipiepy: the Korean default, close to the Mecab split the competition used.

    By default the tokens are kiwi's morpheme forms as they come, punctuation included; this reproduces the
    issue's sanity reference (first two turns on Korean dev: about 18.6). Kiwi reads `#Person2#는` as the
    hashtags `#Person2` and `#는`; `protect_tags=True` keeps each speaker tag as one token instead.

    Args:
        protect_tags: keep `#PersonN#` tags whole.
        keep_punctuation: keep sentence marks and symbols (kiwi tags SF, SP, SS, SE, SO, SW).

    The Kiwi analyser (about 1 s to build) is created on first use and kept by this object, together with a
    bounded memo of tokenized texts (references are scored against many systems).
    """

    def __init__(self, *, protect_tags: bool = False, keep_punctuation: bool = True) -> None:
        self.protect_tags = protect_tags
        self.keep_punctuation = keep_punctuation
        self._kiwi = None
        self._memo: dict[str, list[str]] = {}

    @property
    def name(self) -> str:
        options = [x for x, on in (("tags", self.protect_tags), ("nopunct", not self.keep_punctuation)) if on]
        return f"kiwi({','.join(options)})" if options else "kiwi"

    def tokenize(self, text: str) -> list[str]:
        if text in self._memo:
            return self._memo[text]
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            self._kiwi = Kiwi()
        pieces = _TAG.split(text) if self.protect_tags else [text]
        tokens: list[str] = []
        for piece in pieces:
            if self.protect_tags and _TAG.fullmatch(piece):
                tokens.append(piece)
            elif piece.strip():
                tokens.extend(self._morphemes(piece))
        if len(self._memo) < 100_000:
            self._memo[text] = tokens
        return tokens

    def _morphemes(self, text: str) -> list[str]:
        return [
            t.form
            for t in self._kiwi.tokenize(text)
            if self.keep_punctuation or not t.tag.startswith("S") or t.tag in ("SL", "SN", "SH")
        ]


_TOKENIZERS: dict[str, Callable[[], object]] = {
    "kiwi": KiwiTokenizer,
    "whitespace": WhitespaceTokenizer,
    "char": CharacterTokenizer,
    "default": DefaultTokenizer,
}
TOKENIZER_NAMES = tuple(_TOKENIZERS)


def get_tokenizer(name_or_tokenizer: str | object = "kiwi"):
    """Return a tokenizer object from a name ("kiwi", "whitespace", "char", "default") or pass one through.

    Raises:
        ConfigError: unknown name, or an object without a `tokenize` method.
    """
    if not isinstance(name_or_tokenizer, str):
        if not callable(getattr(name_or_tokenizer, "tokenize", None)):
            raise ConfigError(
                f"a ROUGE tokenizer needs a tokenize(text) method; got {type(name_or_tokenizer).__name__}"
            )
        return name_or_tokenizer
    if name_or_tokenizer not in _TOKENIZERS:
        raise ConfigError(f"unknown ROUGE tokenizer {name_or_tokenizer!r}; choose one of {', '.join(TOKENIZER_NAMES)}")
    return _TOKENIZERS[name_or_tokenizer]()
