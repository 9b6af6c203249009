from __future__ import annotations

import pytest

from slmkit.errors import ConfigError
from slmkit.summarize import Example, build_prompt, fix_speaker_tags, postprocess


def test_prompt_is_a_document_ending_in_an_open_summary():
    prompt = build_prompt(
        "#Person1#: 안녕\r\n#Person2#: 응", "ko", [Example("#Person1#: a\n#Person2#: b", "요약 하나")]
    )
    assert prompt.startswith("다음 대화를") and "#Person1#" in prompt.splitlines()[0]
    assert prompt.endswith("대화:\n#Person1#: 안녕\n#Person2#: 응\n요약:")
    assert "요약: 요약 하나" in prompt
    assert build_prompt("#Person1#: hi", "en").endswith("Dialogue:\n#Person1#: hi\nSummary:")
    with pytest.raises(ConfigError, match="language"):
        build_prompt("x", "fr")


@pytest.mark.parametrize(
    "raw, expected",
    [
        (" # Person 1# asks for help.\n\nDialogue: ...", "#Person1# asks for help."),
        ("Summary: #person2# pays. Then more. And more.", "#Person2# pays. Then more."),
        (" #Person1# leaves.\n#Person2#: bye", "#Person1# leaves."),
        (" Person1# thanks #Person2 for it.", "#Person1# thanks #Person2# for it."),
        (" A to B to B to B to B.", "A to B."),
        ("\n", ""),
    ],
)
def test_postprocess(raw, expected):
    assert postprocess(raw, "en") == expected


def test_postprocess_korean_strips_echo():
    assert postprocess(" 요약: #Person1#은 병원에 간다.\n대화:\n#Person1#: ...", "ko") == "#Person1#은 병원에 간다."


def test_fix_speaker_tags_respects_known_speakers():
    assert fix_speaker_tags("#Person 3# and #person1#", speakers=["Person1", "Person2"]) == "#Person 3# and #Person1#"


def test_postprocess_drops_instruction_echo():
    assert postprocess(" #Person1#, #Person2# 같은 태그로 부르세요.", "ko") == ""
    assert postprocess(" 다음 대화를 한두 문장으로 요약하세요. #Person1#은 병원에 간다.", "ko") == "#Person1#은 병원에 간다."
    echo = " Summarize each dialogue in one or two sentences. #Person1# and #Person2# talk about work."
    assert postprocess(echo, "en") == "#Person1# and #Person2# talk about work."
    assert postprocess(" #Person1# and #Person2# talk.", "en") == "#Person1# and #Person2# talk."


def test_postprocess_drops_a_repeated_sentence():
    from slmkit.summarize import postprocess

    text = " #Person1# asks for help. #Person2# agrees. #Person1# asks for help. #Person2# agrees."
    assert postprocess(text, "en", max_sentences=0) == "#Person1# asks for help. #Person2# agrees."


@pytest.mark.parametrize("raw, expected", [
    # a real summary made of the instruction's words is not an echo of it (it was emptied)
    (" #Person1# and #Person2# call the police.", "#Person1# and #Person2# call the police."),
    # abbreviations and initials end no sentence (the summary was cut at "Ms.")
    (" Mr. Smith asks Ms. Jones to book a table for 7 p.m. tomorrow. #Person2# agrees. More.",
     "Mr. Smith asks Ms. Jones to book a table for 7 p.m. tomorrow. #Person2# agrees."),
    # repeats are of whole tokens ("555 555 5555" became "5555")
    (" #Person1#'s number is 555 555 5555.", "#Person1#'s number is 555 555 5555."),
    (" #Person1# buys 2 2 20-dollar tickets.", "#Person1# buys 2 2 20-dollar tickets."),
])
def test_postprocess_keeps_real_summaries_whole(raw, expected):
    assert postprocess(raw, "en") == expected


@pytest.mark.parametrize("raw, expected", [
    ("#Person1은 #Person2에게 전화한다.", "#Person1#은 #Person2#에게 전화한다."),  # Hangul after the digit
    ("#Person1 #Person2#는", "#Person1# #Person2#는"),  # the next tag's "#" stays with it
    ("10 dollars per person 2 times a week", "10 dollars per person 2 times a week"),  # words, not a tag
    ("salesperson1 and person1#", "salesperson1 and #Person1#"),
])
def test_fix_speaker_tags_in_korean_and_next_to_other_tags(raw, expected):
    assert fix_speaker_tags(raw, speakers=["Person1", "Person2"]) == expected
