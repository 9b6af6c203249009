from __future__ import annotations

import json

import pytest

from slmkit.errors import DataError
from slmkit.summarize import DialogueColumns, load_dialogues

GOOD = "#Person1#: 안녕하세요.\n#Person2#: 네, 안녕하세요."


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_competition_csv_with_crlf_inside_quotes(tmp_path):
    path = _write(
        tmp_path,
        "dev.csv",
        'fname,dialogue,summary,topic\r\ndev_0,"#Person1#: 안녕.\r\n#Person2#: 응.","#Person1#이 인사한다.",인사\r\n',
    )
    frame = load_dialogues(path, require_summary=True)
    assert list(frame.columns) == ["fname", "dialogue", "references", "summary", "topic"]
    assert frame["references"][0] == ["#Person1#이 인사한다."] and frame["topic"][0] == "인사"


def test_dialogsum_jsonl_three_references(tmp_path):
    rows = [{"fname": "test_0", "dialogue": GOOD, "summary1": "a", "summary2": "b", "summary3": "c", "topic1": "t"}]
    path = _write(tmp_path, "test.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    frame = load_dialogues(path, DialogueColumns(topic="topic1"), require_summary=True)
    assert frame["references"][0] == ["a", "b", "c"] and frame["summary"][0] == "a"
    assert frame.attrs["summary_columns"] == ["summary1", "summary2", "summary3"]


def test_chosen_columns(tmp_path):
    path = _write(tmp_path, "any.tsv", f"id\tconv\tgold\nx\t{GOOD.replace(chr(10), ' ')}\tok\n")
    frame = load_dialogues(path, DialogueColumns(id="id", dialogue="conv", summaries=("gold",), topic="none"))
    assert frame["fname"][0] == "x" and frame["summary"][0] == "ok" and frame["topic"][0] == ""


@pytest.mark.parametrize(
    "content, match",
    [
        ("fname,summary\nd0,x\n", r"missing column\(s\) 'dialogue'"),
        ('fname,dialogue,summary\nd0,"#Person1#: a\n#Person2#: b",x\nd1,"#Person1#: broken,x\nd2,ok,y\n', r"row 2"),
        ('fname,dialogue,summary\nd0,"#Person1#: a\n#Person2#: b",x\nd1,"  ",x\n', r"row 2, column 'dialogue': empty"),
        (
            'fname,dialogue,summary\nd0,"#Person1#: a\n#Person2#: b",x\nd0,"#Person1#: c",y\n',
            r"row 2.*duplicate id 'd0'",
        ),
        (
            'fname,dialogue,summary\nd0,"#Person1#: a\n#Person2#: b",x\nd1,no tags at all,y\n',
            r"row 2 \(d1\): no '#PersonN#:'",
        ),
    ],
)
def test_malformed_csv_names_the_row(tmp_path, content, match):
    path = _write(tmp_path, "bad.csv", content)
    with pytest.raises(DataError, match=match):
        load_dialogues(path)


def test_non_strict_collects_issues(tmp_path, caplog):
    path = _write(tmp_path, "d.csv", 'fname,dialogue\nd0,"#Person1#: a\n#Person2#: "\nd1,"#Person 1#: a"\n')
    frame = load_dialogues(path, strict=False)
    messages = [str(i) for i in frame.attrs["issues"]]
    assert any("row 1 (d0): empty turn" in m for m in messages)
    assert any("row 2 (d1)" in m and "variant tag '#Person 1#'" in m for m in messages)
    assert "row 1 (d0)" in caplog.text


def test_require_summary(tmp_path):
    path = _write(tmp_path, "t.csv", f'fname,dialogue\nd0,"{GOOD}"\n')
    with pytest.raises(DataError, match="no reference summary column"):
        load_dialogues(path, require_summary=True)
    path = _write(tmp_path, "t2.csv", f'fname,dialogue,summary\nd0,"{GOOD}",\n')
    with pytest.raises(DataError, match=r"row 1 \(d0\): empty reference"):
        load_dialogues(path, require_summary=True)


def test_numbered_topic_columns_are_found_like_numbered_summaries(tmp_path):
    import json

    from slmkit.summarize import load_dialogues

    rows = [
        {"fname": "a", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "summary1": "x", "summary2": "y",
         "topic1": "greeting", "topic2": "hello"},
        {"fname": "b", "dialogue": "#Person1#: Bye.\n#Person2#: See you.", "summary1": "z", "summary2": "w",
         "topic1": "", "topic2": "farewell"},
    ]
    path = tmp_path / "multi.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    frame = load_dialogues(path, require_summary=True)
    assert list(frame["topic"]) == ["greeting", "farewell"]
    assert list(frame["references"]) == [["x", "y"], ["z", "w"]]


def test_list_cells_are_several_references(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"fname": ["a", "b"], "dialogue": [GOOD, GOOD], "summary": [["x", "y"], ["z"]]})
    path = tmp_path / "refs.parquet"
    frame.to_parquet(path)
    loaded = load_dialogues(path, require_summary=True)
    assert list(loaded["references"]) == [["x", "y"], ["z"]] and list(loaded["summary"]) == ["x", "z"]
    jsonl = _write(tmp_path, "refs.jsonl", json.dumps({"fname": "a", "dialogue": GOOD, "summary": ["p", "q"]}))
    assert load_dialogues(jsonl)["references"][0] == ["p", "q"]


def test_a_nested_value_where_text_belongs_names_the_row_and_column(tmp_path):
    rows = [{"fname": "a", "dialogue": GOOD, "summary": "x", "topic": "t"},
            {"fname": "b", "dialogue": GOOD, "summary": [{"text": "y"}], "topic": "t"}]
    path = _write(tmp_path, "nested.jsonl", "\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"nested\.jsonl: row 2, column 'summary': expected text, found dict"):
        load_dialogues(path)
    rows[1] = {"fname": "b", "dialogue": GOOD, "summary": "y", "topic": ["t", "u"]}
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2, column 'topic': expected text, found list"):
        load_dialogues(path)


def test_a_missing_chosen_summary_column_names_the_file(tmp_path):
    path = _write(tmp_path, "d.csv", f'fname,dialogue,summary\nd0,"{GOOD}",x\n')
    with pytest.raises(DataError, match=r"d\.csv: missing summary column\(s\) 'gold'"):
        load_dialogues(path, DialogueColumns(summaries=("gold",)))
