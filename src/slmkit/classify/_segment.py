"""Split a text into words and phrases with character spans, to aggregate token contributions onto them.

English (and any non-Korean text): words are runs of letters/digits or of punctuation; phrases are the clauses
between punctuation marks. Korean: words are kiwipiepy morphemes (a space-delimited eojeol such as "재미있어요"
carries a content morpheme and endings, and the content morpheme is what users want scored); phrases are the
same punctuation-delimited clauses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+|[^\w\s]+")
_CLAUSE_BREAK = re.compile(r"[,;:.!?…\n]+|\s[-–—]\s")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


@dataclass
class Span:
    """A piece of the user's text: `text[start:end]`, with the logit contribution given to it."""

    text: str
    start: int
    end: int
    score: float = 0.0


def is_korean(text: str) -> bool:
    return bool(_HANGUL.search(text))


# Kiwi loads its dictionary in about a second; one analyser per process is read-only and safe to share.
@functools.lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def words(text: str) -> list[Span]:
    """Word spans in text order (kiwipiepy morphemes for Korean text)."""
    if is_korean(text):
        spans: list[Span] = []
        for token in _kiwi().tokenize(text):
            start, end = token.start, token.start + token.len
            if spans and start < spans[-1].end:
                # Contracted morphemes share characters ("갈까요" = 가 + ㄹ까요): keep one span per character run.
                last = spans[-1]
                last.end = max(last.end, end)
                last.text = text[last.start : last.end]
                continue
            spans.append(Span(text[start:end], start, end))
        return spans
    return [Span(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def phrases(text: str) -> list[Span]:
    """Clause spans between punctuation marks (leading/trailing blanks trimmed)."""
    spans, start = [], 0
    for match in _CLAUSE_BREAK.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append(Span(text[s:e], s, e))
    return out


def assign(token_spans: list[tuple[int, int]], token_scores, targets: list[Span]) -> float:
    """Add each token's score to the spans it overlaps, split by overlapping characters.

    Tokens that overlap no span (blanks) go to the next span. Returns the part of the total score that could
    not be placed (only when `targets` is empty), so sum(span scores) + returned value == sum(token_scores).
    """
    unassigned = 0.0
    j0 = 0
    for (start, end), score in zip(token_spans, token_scores):
        while j0 < len(targets) and targets[j0].end <= start:
            j0 += 1  # tokens come in text order, so spans before this token are done
        overlaps = []
        j = j0
        while j < len(targets) and targets[j].start < end:
            width = min(end, targets[j].end) - max(start, targets[j].start)
            if width > 0:
                overlaps.append((j, width))
            j += 1
        total = sum(w for _, w in overlaps)
        if not total:
            if not targets:
                unassigned += float(score)
                continue
            # A blank-only token (a lone space or newline piece) belongs with the word it precedes, as
            # byte-level BPE attaches spaces to the following word; at the end, with the last word.
            overlaps, total = [(min(j, len(targets) - 1), 1)], 1
        for j, width in overlaps:
            targets[j].score += float(score) * width / total
    return unassigned
