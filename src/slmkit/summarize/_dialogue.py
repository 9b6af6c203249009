"""Dialogues as turns and speakers: parsing and validation that names the row.

A competition dialogue is lines of `#Person1#: text`; a line without a tag continues the previous turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A well-formed turn opener: `#Person1#:` (the colon may be full-width in translated data).
TURN_TAG = re.compile(r"^\s*#(Person\d+)#\s*[:：]\s?")
SPEAKER_TAG = re.compile(r"#Person\d+#")
# Near-misses that cleaning repairs and validation reports: `#Person 1#`, `#person1#`, `# Person1 #`.
VARIANT_TAG = re.compile(r"#\s*(?!Person\d+#)[Pp]\s*erson\s*(\d+)\s*#|#\s+Person\d+\s*#|#Person\d+\s+#")
# Syllables, compatibility jamo, and the conjoining jamo that decomposed (NFD) Korean is written in.
HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]")


@dataclass(frozen=True)
class Turn:
    """One speaker turn: `speaker` is the tag without #'s ("Person1"), `text` the words said."""

    speaker: str
    text: str


@dataclass(frozen=True)
class DialogueIssue:
    """A validation finding. `row` is 1-based (the header is not a row); severity is "error" or "warning"."""

    row: int
    fname: str
    severity: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.fname}): {self.message}"


def parse_dialogue(text: str) -> list[Turn]:
    """Split a dialogue into turns; text before the first tag becomes a turn of speaker "".

    Example:
        >>> parse_dialogue("#Person1#: Hi.\\n#Person2#: Hello.")
        [Turn(speaker='Person1', text='Hi.'), Turn(speaker='Person2', text='Hello.')]
    """
    turns: list[Turn] = []
    speaker, lines = None, []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = TURN_TAG.match(line)
        if match:
            if speaker is not None or any(x.strip() for x in lines):
                turns.append(Turn(speaker or "", " ".join(x.strip() for x in lines if x.strip())))
            speaker, lines = match.group(1), [line[match.end() :]]
        else:
            lines.append(line)
    if speaker is not None or any(x.strip() for x in lines):
        turns.append(Turn(speaker or "", " ".join(x.strip() for x in lines if x.strip())))
    return turns


def speakers(text: str) -> list[str]:
    """Distinct speaker tags in order of first turn ("Person1", "Person2", ...)."""
    return list(dict.fromkeys(t.speaker for t in parse_dialogue(text) if t.speaker))


def format_turns(turns: list[Turn], *, with_tags: bool = True) -> str:
    """Join turns back into text, one per line."""
    if with_tags:
        return "\n".join(f"#{t.speaker}#: {t.text}" if t.speaker else t.text for t in turns)
    return "\n".join(t.text for t in turns)


def check_dialogue(text: str, *, row: int, fname: str) -> list[DialogueIssue]:
    """Validate one dialogue: no turn tags (error), variant tags, empty turns, untagged opening, one speaker.

    Args:
        text: the dialogue.
        row: 1-based row number, for the message.
        fname: the row's id, for the message.
    """

    def issue(severity: str, message: str) -> DialogueIssue:
        return DialogueIssue(row, fname, severity, message)

    if not text.strip():
        return [issue("error", "empty dialogue; fill it in or drop the row")]
    turns = parse_dialogue(text)
    tagged = [t for t in turns if t.speaker]
    found: list[DialogueIssue] = []
    if not tagged:
        variant = VARIANT_TAG.search(text)
        hint = f" (found variant tag {variant.group(0)!r}: run the clean step 'speaker_tags')" if variant else ""
        return [issue("error", f"no '#PersonN#:' turn tags{hint}; every turn must start with e.g. '#Person1#: '")]
    if turns[0].speaker == "":
        found.append(issue("warning", f"text before the first turn tag: {turns[0].text[:40]!r}"))
    empty = [i + 1 for i, t in enumerate(turns) if t.speaker and not t.text.strip()]
    if empty:
        found.append(issue("warning", f"empty turn(s) at turn {', '.join(map(str, empty[:5]))}"))
    variant = VARIANT_TAG.search(text)
    if variant:
        found.append(
            issue("warning", f"variant speaker tag {variant.group(0)!r}; the clean step 'speaker_tags' fixes it")
        )
    if len({t.speaker for t in tagged}) < 2:
        found.append(issue("warning", "only one speaker"))
    return found


def detect_language(texts: list[str]) -> str:
    """ "ko" when at least 20% of the letters are Hangul, else "en" (enough to pick prompts and tokenizers)."""
    joined = "".join(texts)[:20000]
    letters = sum(c.isalpha() for c in joined)
    return "ko" if letters and len(HANGUL.findall(joined)) / letters >= 0.2 else "en"
