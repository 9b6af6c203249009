"""Read CSV / TSV / JSONL / Parquet into a validated pandas table.

Every error names the file, the 1-based data row (the header is not a row) and the column, says what was
found and what to do. CSV is parsed with the stdlib `csv` module rather than pandas because pandas' C parser
reports broken quotes as "EOF inside string" without the row where the quote opened.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from slmkit._constants import SUPPORTED_TABLE_SUFFIXES
from slmkit._files import file_sha256
from slmkit.errors import DataError


def read_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    text_columns: Sequence[str] = (),
    id_column: str | None = None,
    allow_empty_text: bool = False,
    allow_no_rows: bool = False,
) -> pd.DataFrame:
    """Read a table and validate it.

    Args:
        path: a `.csv`, `.tsv`, `.jsonl` or `.parquet` file.
        required: columns that must exist.
        text_columns: columns that must hold non-empty strings (implicitly required).
        id_column: a column whose values must be unique (implicitly required).
        allow_empty_text: accept empty strings in `text_columns`.
        allow_no_rows: accept a table with no data rows (a header only); otherwise that is an error.

    Returns:
        A DataFrame with string-typed text and id columns, in file order, index 0..n-1.

    Raises:
        DataError: unreadable file, bad encoding, broken quoting, missing column, empty text, duplicate id,
            no data rows.
    """
    path = Path(path)
    suffix = table_suffix(path)
    if suffix == ".parquet":
        frame = _read_parquet(path)
    else:
        text = _decode(path)
        frame = _read_jsonl(path, text) if suffix == ".jsonl" else _read_delimited(path, text, suffix)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:  # frame[name] would be a table, not a column: every check after this would go wrong
        positions = {name: [i + 1 for i, c in enumerate(frame.columns) if str(c) == name] for name in repeated}
        raise DataError(f"{path}: header: column name(s) repeated: "
                        + "; ".join(f"{n!r} at columns {', '.join(map(str, at))}" for n, at in positions.items())
                        + "; give every column its own name")
    if frame.empty and len(frame.columns) == 0 and suffix == ".jsonl" and not allow_no_rows:
        raise DataError(f"{path}: no JSON objects in the file; expected one object per line")
    if len(frame) == 0 and not allow_no_rows:
        raise DataError(f"{path}: no data rows (only a header); add rows or check that this is the right file")
    wanted = list(dict.fromkeys([*required, *text_columns, *([id_column] if id_column else [])]))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; found {', '.join(map(repr, frame.columns))}"
            " (choose the right column with the text/label/id column options)"
        )
    for column in text_columns:
        frame[column] = _check_text(path, frame[column], column, allow_empty_text)
    if id_column:
        check_ids(path, frame, id_column)
    return frame.reset_index(drop=True)


def check_ids(path, frame: pd.DataFrame, id_column: str) -> None:
    """Make `frame[id_column]` text, refusing an empty or repeated id (naming the file, row and column)."""
    for row, value in enumerate(frame[id_column]):
        if is_missing(value) or not str(value).strip():
            raise DataError(f"{path}: row {row + 1}, column {id_column!r}: empty id; every row needs a unique id")
    frame[id_column] = frame[id_column].astype(str)
    dup = frame[id_column].duplicated(keep="first")
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0])
        value = frame[id_column].iloc[row]
        first = int((frame[id_column] == value).to_numpy().nonzero()[0][0])
        raise DataError(
            f"{path}: row {row + 1}, column {id_column!r}: duplicate id {value!r} (first seen at row {first + 1})"
        )


def is_missing(value) -> bool:
    """None, NaN, pd.NA or NaT: a missing cell, whatever the column's dtype (Parquet's nullable string and Int64
    columns give pd.NA, which `str()` would turn into the text "<NA>")."""
    if value is None:
        return True
    if hasattr(value, "__len__"):
        return False  # text or a container (str, list, dict, array): not one missing cell
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def table_suffix(path: Path) -> str:
    """The lower-case suffix of an existing table file of a supported type, else a DataError naming the file."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a table file (.csv, .tsv, .jsonl or .parquet) inside it")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_TABLE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_TABLE_SUFFIXES)}")
    return suffix


def fingerprint_file(path: str | Path) -> str:
    """sha256 of a file's bytes: recorded in results so a number can be traced to its data."""
    return file_sha256(path)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: bytes are not UTF-8 ({exc.reason} at byte {exc.start}); re-save the file as UTF-8"
        ) from exc


def _read_delimited(path: Path, text: str, suffix: str) -> pd.DataFrame:
    # The csv module refuses fields over 131,072 characters by default and reports it as a quoting error;
    # no field can be longer than the file, so that bound is safe (and never lowers a larger limit).
    if len(text) >= csv.field_size_limit():
        csv.field_size_limit(min(len(text) + 1, sys.maxsize))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",", strict=True)
    try:
        header = next(reader)
        while not header:  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: file is empty; expected a header row") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num} (header): {exc}") from exc
    rows: list[list[str]] = []
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(
                f"{path}: row {len(rows) + 1} (line {start_line}): broken quoting ({exc}); "
                "check for an unclosed or unescaped double quote"
            ) from exc
        if not row:
            continue  # blank line
        if len(row) != len(header):
            if reader.line_num > start_line and len(row) < len(header):
                hint = "an unclosed double quote swallowed the following lines"
            else:
                hint = "check quoting of fields that contain the delimiter"
            raise DataError(
                f"{path}: row {len(rows) + 1} (line {start_line}): expected {len(header)} fields "
                f"({', '.join(header)}), found {len(row)}; {hint}"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=header, dtype=object)


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records = []
    # Split on "\n" only: str.splitlines also breaks at U+2028, U+0085 ..., which JSON strings may hold raw.
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line_no}: invalid JSON ({exc.msg} at column {exc.colno})") from exc
        except _RepeatedKey as exc:  # json keeps the last value silently: one of two texts would be lost
            raise DataError(f"{path}: line {line_no}, field {exc.args[0]!r}: key repeated in one object; "
                            "keep one value per key") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {line_no}: expected a JSON object, found {type(record).__name__}")
        records.append(record)
    # object dtype: values stay as JSON gave them (an int column with a missing value would turn float, and
    # 12345678901234567 would come back as 1.23456789e+16)
    return pd.DataFrame(records, dtype=object) if records else pd.DataFrame()


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return record


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc


def _check_text(path: Path, values: pd.Series, column: str, allow_empty: bool) -> pd.Series:
    for row, value in enumerate(values):
        if is_missing(value):
            raise DataError(f"{path}: row {row + 1}, column {column!r}: missing value; every row needs a text")
        if not isinstance(value, str):
            raise DataError(f"{path}: row {row + 1}, column {column!r}: expected text, found {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise DataError(f"{path}: row {row + 1}, column {column!r}: empty text; fill it in or drop the row")
    return values.astype(str)
