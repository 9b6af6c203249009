from __future__ import annotations

import json

import pandas as pd
import pytest

from slmkit.data import read_table, write_json, write_table
from slmkit.errors import DataError


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def test_reads_csv_with_newlines_inside_quoted_fields(tmp_path):
    path = _write(tmp_path, "d.csv", 'id,text\r\n1,"line one\r\nline two"\r\n2,plain\r\n')
    frame = read_table(path, text_columns=["text"], id_column="id")
    assert frame["text"].tolist() == ["line one\r\nline two", "plain"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_round_trip_every_format(tmp_path, suffix):
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["안녕하세요", 'hello, "world"']})
    path = write_table(tmp_path / f"t{suffix}", frame)
    assert read_table(path, text_columns=["text"], id_column="id").equals(frame)


def test_missing_column_lists_found_columns(tmp_path):
    path = _write(tmp_path, "d.csv", "id,body\n1,x\n")
    with pytest.raises(DataError, match=r"d\.csv: missing column\(s\) 'text'; found 'id', 'body'"):
        read_table(path, text_columns=["text"])


def test_empty_text_names_row_and_column(tmp_path):
    path = _write(tmp_path, "d.csv", "id,text\n1,ok\n2,   \n")
    with pytest.raises(DataError, match=r"row 2, column 'text': empty text"):
        read_table(path, text_columns=["text"])


def test_duplicate_id_names_both_rows(tmp_path):
    path = _write(tmp_path, "d.jsonl", '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n{"id": 1, "text": "c"}\n')
    with pytest.raises(DataError, match=r"row 3, column 'id': duplicate id '1' \(first seen at row 1\)"):
        read_table(path, text_columns=["text"], id_column="id")


def test_bad_encoding_names_line(tmp_path):
    path = _write(tmp_path, "d.csv", "id,text\n1,ok\n".encode() + "2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"d\.csv: line 3: bytes are not UTF-8"):
        read_table(path)


def test_broken_quote_names_row(tmp_path):
    path = _write(tmp_path, "d.csv", 'id,text\n1,fine\n2,"never closed\n3,other\n')
    with pytest.raises(DataError, match=r"row 2 \(line 3\)"):
        read_table(path, text_columns=["text"])


def test_wrong_field_count_names_row(tmp_path):
    path = _write(tmp_path, "d.csv", "id,text\n1,a\n2,b,c\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): expected 2 fields \(id, text\), found 3"):
        read_table(path)


def test_jsonl_repeated_key_names_line_and_field(tmp_path):
    path = _write(tmp_path, "d.jsonl", '{"text": "a"}\n{"text": "b", "label": 1, "text": "c"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl: line 2, field 'text': key repeated"):
        read_table(path, text_columns=["text"])


def test_invalid_jsonl_names_line(tmp_path):
    path = _write(tmp_path, "d.jsonl", '{"text": "a"}\n{"text": \n')
    with pytest.raises(DataError, match=r"d\.jsonl: line 2: invalid JSON"):
        read_table(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "tables.csv").mkdir()
    with pytest.raises(DataError, match="tables.csv: is a folder"):  # it said "no such file"
        read_table(tmp_path / "tables.csv")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        read_table(_write(tmp_path, "d.xlsx", "x"))


def test_write_json_is_atomic_on_failure(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {1j: "complex keys cannot be sorted or serialised"})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_repeated_column_name_is_an_error_not_a_table_in_a_cell(tmp_path):
    path = _write(tmp_path, "d.csv", "fname,dialogue,summary,summary\n1,hi,s,t\n")
    with pytest.raises(DataError, match=r"d\.csv: header: column name\(s\) repeated: 'summary' at columns 3, 4"):
        read_table(path, text_columns=["dialogue"])


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    path = _write(tmp_path, "d.csv", "\n\nid,text\n1,x\n")
    assert read_table(path, text_columns=["text"])["text"].tolist() == ["x"]


def test_jsonl_numbers_passed_through_are_written_back_unchanged(tmp_path):
    lines = ['{"id": "a", "text": "x", "uid": 12345678901234567, "p": 0.12345678901234568}',
             '{"id": "b", "text": "y", "n": 3}']
    path = _write(tmp_path, "d.jsonl", "\n".join(lines) + "\n")
    out = write_table(tmp_path / "out.jsonl", read_table(path, text_columns=["text"]))
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["uid"] == 12345678901234567 and first["p"] == 0.12345678901234568
    assert second["n"] == 3 and isinstance(second["n"], int) and second["uid"] is None


def test_a_pandas_missing_value_is_missing_not_the_text_na(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "text": pd.array(["x", None], dtype="string")})
    path = write_table(tmp_path / "d.parquet", frame)
    with pytest.raises(DataError, match=r"row 2, column 'text': missing value"):
        read_table(path, text_columns=["text"])


def test_parquet_of_a_column_mixing_types_is_a_clear_error(tmp_path):
    frame = pd.DataFrame({"text": ["x", "y"], "extra": pd.Series([1, "z"], dtype=object)})
    with pytest.raises(DataError, match=r"out\.parquet: cannot write Parquet .* a column mixes types"):
        write_table(tmp_path / "out.parquet", frame)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_table_is_never_written_under_a_name_it_cannot_be_read_back_from(tmp_path):
    from slmkit.data import write_table

    for name in ("out.txt", "out.json", "out"):
        with pytest.raises(DataError, match="unsupported table type"):  # it was written as CSV
            write_table(tmp_path / name, pd.DataFrame({"a": [1]}))
        assert not (tmp_path / name).exists()
