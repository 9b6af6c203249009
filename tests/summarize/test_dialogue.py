from __future__ import annotations

from slmkit.summarize import Turn, check_dialogue, detect_language, parse_dialogue, speakers
from slmkit.summarize._dialogue import format_turns


def test_parse_turns_and_continuation_lines():
    turns = parse_dialogue("#Person1#: Hi.\r\n#Person2#: Hello,\nhow are you?\n#Person3#：Fine")
    assert turns == [Turn("Person1", "Hi."), Turn("Person2", "Hello, how are you?"), Turn("Person3", "Fine")]
    assert speakers("#Person2#: a\n#Person1#: b\n#Person2#: c") == ["Person2", "Person1"]
    assert format_turns(turns[:1]) == "#Person1#: Hi." and format_turns(turns[:1], with_tags=False) == "Hi."


def test_untagged_prefix_is_its_own_turn():
    assert parse_dialogue("hello\n#Person1#: a")[0] == Turn("", "hello")


def test_check_dialogue_findings():
    assert check_dialogue("#Person1#: a\n#Person2#: b", row=1, fname="x") == []
    (err,) = check_dialogue("just text", row=4, fname="d3")
    assert err.severity == "error" and str(err).startswith("row 4 (d3): no '#PersonN#:'")
    found = {i.message.split(" ")[0] for i in check_dialogue("#Person1#: a\n#Person1#: ", row=1, fname="x")}
    assert found == {"empty", "only"}


def test_detect_language():
    assert detect_language(["#Person1#: 안녕하세요, 반갑습니다."]) == "ko"
    assert detect_language(["#Person1#: Hello there."]) == "en"
