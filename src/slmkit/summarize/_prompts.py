"""Prompts for base (not instruction-tuned) LMs, and post-processing of what they generate.

A base model continues documents, so a prompt is a document: a one-line instruction, then `Dialogue:` /
`Summary:` blocks (few-shot examples first, most similar last), ending with the open `Summary:` line. The
instruction is ROUGE-aware: ROUGE rewards the reference's own words, and references reuse the dialogue's
words and its `#PersonN#` tags in one or two sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from slmkit.errors import ConfigError

INSTRUCTIONS = {
    "ko": (
        "다음 대화를 한두 문장으로 요약하세요. 대화에 나온 단어를 그대로 쓰고, "
        "사람은 #Person1#, #Person2# 같은 태그로 부르세요."
    ),
    "en": (
        "Summarize each dialogue in one or two sentences. Reuse the dialogue's own words and call the "
        "speakers by their tags, such as #Person1# and #Person2#."
    ),
}
LABELS = {"ko": ("대화", "요약"), "en": ("Dialogue", "Summary")}
# Loose tag forms models produce: `#Person 1#`, `# Person1 #`, `#person1#`, `Person1#`, `#Person1`. Letters and
# digits are looked at explicitly, not with \b: Hangul counts as a word character, so `#Person1은` (the loose form
# with a Korean particle) had no boundary after the digit. A closing `#` that opens the next tag is not taken.
_LOOSE_TAG = re.compile(r"#?\s?(?<![A-Za-z0-9])[Pp]erson\s?(\d+)(?!\d)(?:\s?#(?!\s?[Pp]erson\s?\d))?\s?")
# A phrase of 1-4 whole tokens said three times or more ("에게 에게 에게"); whole tokens (a repeat may end at
# punctuation), so "555 5555" or "2 20-dollar" are not read as repeats.
_REPEAT = re.compile(r"(?<!\S)(\S+(?:\s+\S+){0,3}?)(?:\s+\1(?![^\s.,!?;:。])){2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
# Words whose full stop ends no sentence ("Mr. Lee", "7 p.m. tomorrow"); single capitals are initials.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof vs etc e.g i.e a.m p.m no approx dept".split())


@dataclass(frozen=True)
class Example:
    """A (dialogue, summary) pair shown to the model in a few-shot prompt."""

    dialogue: str
    summary: str


def build_prompt(dialogue: str, language: str, examples: Sequence[Example] = ()) -> str:
    """Document-style prompt: instruction, examples, then the dialogue and an open summary line.

    Args:
        dialogue: the dialogue to summarize (turn tags kept: the model should reuse them).
        language: "ko" or "en" (instruction and labels).
        examples: few-shot pairs, least similar first.
    """
    if language not in INSTRUCTIONS:
        raise ConfigError(f"language must be one of {', '.join(INSTRUCTIONS)}, got {language!r}")
    d_label, s_label = LABELS[language]
    blocks = [INSTRUCTIONS[language]]
    for ex in examples:
        blocks.append(f"{d_label}:\n{_tidy(ex.dialogue)}\n{s_label}: {ex.summary.strip()}")
    blocks.append(f"{d_label}:\n{_tidy(dialogue)}\n{s_label}:")
    return "\n\n".join(blocks)


def postprocess(text: str, language: str, *, max_sentences: int = 2, speakers: Sequence[str] = ()) -> str:
    """Clean a generated summary: cut prompt echoes, keep the first sentences, repair speaker tags.

    Args:
        text: the model's continuation after "Summary:".
        language: "ko" or "en" (which labels count as echoes).
        max_sentences: sentences kept (0 keeps all); the instruction asks for one or two.
        speakers: the dialogue's speaker tags ("Person1", ...); a repaired tag naming no speaker of the
            dialogue is kept as written (the model may mean someone else).

    Example:
        >>> postprocess(" # Person 1# asks for help.\\n\\nDialogue: ...", "en")
        '#Person1# asks for help.'
    """
    d_label, s_label = LABELS.get(language, LABELS["en"])
    text = text.lstrip()
    for label in (s_label, "Summary", "요약"):
        if text.startswith(f"{label}:"):
            text = text[len(label) + 1 :].lstrip()
    # A base model goes on to write the next "Dialogue:" block or the next turn: the summary ends there.
    stop = re.search(rf"\n|{re.escape(d_label)}:|Dialogue:|대화:|#Person\d+#\s*[:：]", text)
    text = text[: stop.start()] if stop else text
    text = fix_speaker_tags(text, speakers)
    text = _REPEAT.sub(r"\1", text)  # greedy decoding of a small LM loops ("에게 에게 에게"): keep one
    # A base model often repeats the instruction instead of following it: drop sentences made of its words.
    sentences = [x for x in split_sentences(text.strip()) if not _echoes(x, INSTRUCTIONS.get(language, ""))]
    # Greedy decoding also loops at sentence level ("A. B. A. B."): a summary never needs a sentence twice.
    sentences = list(dict.fromkeys(sentences))
    text = " ".join(sentences[:max_sentences] if max_sentences else sentences)
    return re.sub(r"\s+", " ", text).strip()


def fix_speaker_tags(text: str, speakers: Sequence[str] = ()) -> str:
    """Rewrite loose speaker tags (`#Person 1#`, `person1#`, `#Person1`) as `#Person1#`."""
    known = set(speakers)

    def repl(match: re.Match) -> str:
        tag = f"Person{match.group(1)}"
        if known and tag not in known:
            return match.group(0)
        if "#" not in match.group(0) and not re.search(r"[Pp]erson\d", match.group(0)):
            return match.group(0)  # "per person 2 times": plain words, no tag
        # Keep the space that separated the tag from the previous word.
        lead = " " if match.group(0).startswith(" ") else ""
        trail = " " if match.group(0).endswith(" ") else ""
        return f"{lead}#{tag}#{trail}"

    return _LOOSE_TAG.sub(repl, text)


def split_sentences(text: str) -> list[str]:
    """Sentences of a summary: split after . ! ? or 。 and a space, but not after an abbreviation or initial."""
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        word = text[start : end.start()].split()[-1].rstrip(".").lower() if text[start : end.start()].split() else ""
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue
        sentences.append(text[start : end.start()])
        start = end.end()
    sentences.append(text[start:])
    return [x for x in sentences if x]


def _echoes(sentence: str, instruction: str, n: int = 4) -> bool:
    """Whether `sentence` repeats the instruction: it shares a run of `n` words with it (a shorter sentence: all
    of itself). Sharing words is not enough: "#Person1# and #Person2# call the police." shares most of its words
    with the English instruction and is a summary."""
    words = _words(sentence)
    if len(words) < 3:
        return False
    size = min(n, len(words))
    said = _words(instruction)
    runs = {tuple(said[i : i + size]) for i in range(len(said) - size + 1)}
    return any(tuple(words[i : i + size]) in runs for i in range(len(words) - size + 1))


def _words(text: str) -> list[str]:
    return [w.strip(".,!?;:\"'()").lower() for w in text.split() if w.strip(".,!?;:\"'()")]


def _tidy(dialogue: str) -> str:
    return "\n".join(line.strip() for line in dialogue.replace("\r\n", "\n").split("\n") if line.strip())
