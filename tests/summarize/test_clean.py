from __future__ import annotations

import pandas as pd
import pytest

from slmkit.errors import ConfigError
from slmkit.summarize import STEP_NAMES, CleaningConfig, clean_dialogues, load_dialogues
from slmkit.summarize._clean import (
    ControlChars,
    EscapeSequences,
    JamoRuns,
    RepeatedChars,
    SpeakerTags,
    Whitespace,
)

MESSY = [
    "#person 1#: 안녕ㅋㅋㅋ  하세요!!!!!! \\n&amp;amp; 좋아\r\n\t# Person2 #:  응ㅎㅎ\x07\n\n#phonenumber# 로 연락줘",
    "#Person1#:\u200b Hi there\\t!!!!\n#PERSON2#: wait.......   ok\r\n#Person1#: ㅠㅠ ㅋ",
    "#Person1#: clean text.\n#Person2#: still clean.",
]


@pytest.mark.parametrize(
    "step, before, after",
    [
        (ControlChars(), "a\r\nb\tc\x07", "a\nb c"),
        (EscapeSequences(), "it\\'s\\nfine &quot;ok&quot;", 'it\'s\nfine "ok"'),
        (
            SpeakerTags(),
            "#person 1#: hi # Person2 #, call #PHONENUMBER#",
            "#Person1#: hi #Person2#, call #PhoneNumber#",
        ),
        (JamoRuns(), "좋아ㅋㅋㅋ 응ㅎㅎ ㅋ", "좋아 응 ㅋ"),
        (RepeatedChars(), "와아아아아!!!!! 1000000 ...", "와아아아!!! 1000000 ..."),
        (Whitespace(), "  a   b \n\n c\u3000d ", "a b\nc d"),
    ],
)
def test_each_step(step, before, after):
    assert step.apply(before) == after
    assert step.apply(after) == after  # each step is idempotent on its own


def test_pipeline_counts_samples_and_is_idempotent():
    frame = pd.DataFrame(
        {"fname": ["a", "b", "c"], "dialogue": MESSY, "summary": ["#person1#이 인사한다.", "x y", "ok"]}
    )
    cleaned, report = clean_dialogues(frame)
    assert report.changed["speaker_tags"] == 3  # two dialogues + one summary
    assert report.changed["jamo_runs"] == 2
    assert report.samples["control_chars"][0]["fname"] == "a"
    assert cleaned["dialogue"][0] == "#Person1#: 안녕 하세요!!!\n& 좋아\n#Person2#: 응\n#PhoneNumber# 로 연락줘"
    again, report2 = clean_dialogues(cleaned)
    assert all(count == 0 for count in report2.changed.values())
    assert again.equals(cleaned)
    assert "| speaker_tags | 3 |" in report.to_markdown()


def test_example_data_is_already_clean_and_stays_so():
    from slmkit.summarize import find_example_data

    frame = load_dialogues(find_example_data() / "dialogues_ko.csv")
    cleaned, report = clean_dialogues(frame)
    assert sum(report.changed.values()) == 0 and cleaned["dialogue"].equals(frame["dialogue"])


def test_disable_and_unknown_step():
    frame = pd.DataFrame({"fname": ["a"], "dialogue": ["#Person1#: ㅋㅋ 네"], "summary": ["네"]})
    cleaned, report = clean_dialogues(frame, CleaningConfig(disable=("jamo_runs",)))
    assert "jamo_runs" not in report.changed and "ㅋㅋ" in cleaned["dialogue"][0]
    with pytest.raises(ConfigError, match="unknown cleaning step"):
        CleaningConfig(disable=("nope",))
    assert STEP_NAMES[0] == "escape_sequences" and STEP_NAMES[-1] == "whitespace"


def test_flags_keep_rows():
    frame = pd.DataFrame(
        {
            "fname": ["a", "b"],
            "dialogue": ["#Person1#: 안녕하세요 " * 5, "#Person1#: hi"],
            "summary": ["Person1 greets.", "#Person1# says hi and then a much longer summary text"],
        }
    )
    cleaned, report = clean_dialogues(frame)
    flags = {(f["fname"], f["flag"]) for f in report.flags}
    assert ("a", "summary_language") in flags and ("b", "summary_length") in flags
    assert len(cleaned) == 2


def test_entities_decode_exactly_every_reference_is_cleaned_and_a_second_pass_changes_nothing():
    frame = pd.DataFrame({"fname": ["a"], "dialogue": ["#Person1#: Tom&notes &amp; x&#13;y&#x200b;z"],
                          "summary": ["A  sum"], "references": [["A  sum", "B   sum &amp; y"]]})
    cleaned, _ = clean_dialogues(frame)
    assert cleaned["dialogue"][0] == "#Person1#: Tom&notes & x\nyz"  # "&not" without ";" is not an entity
    assert cleaned["references"][0] == ["A sum", "B sum & y"]
    again, report = clean_dialogues(cleaned)
    assert sum(report.changed.values()) == 0 and again["dialogue"].equals(cleaned["dialogue"])


@pytest.mark.parametrize("text", ["\\&#39;", "&#92;t", "&#92;&#92;n", "\\&amp;#39;"])
def test_escapes_made_by_entities_are_decoded_in_the_same_pass(text):
    step = EscapeSequences()
    once = step.apply(text)
    assert step.apply(once) == once  # an entity that decodes to an escape left work for a second cleaning


def test_clean_table_cleans_every_reference_of_a_list_cell():
    from slmkit.summarize._clean import clean_table

    frame = pd.DataFrame({"fname": ["a"], "dialogue": ["#Person1#: hi &amp; bye"],
                          "summary": [["# Person 1 # says hi &amp; bye.", "#person1#  greets."]]})
    cleaned, report = clean_table(frame, text_columns=["dialogue", "summary"], id_column="fname")
    assert cleaned["dialogue"][0] == "#Person1#: hi & bye"
    assert list(cleaned["summary"][0]) == ["#Person1# says hi & bye.", "#Person1# greets."]
    assert report.changed["speaker_tags"] == 1 and report.changed["escape_sequences"] == 2
