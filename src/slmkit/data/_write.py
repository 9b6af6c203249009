"""Atomic writers: a file is written to a temp name beside the target, then renamed over it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from slmkit._files import atomic_open


def write_json(path: str | Path, payload: Any) -> Path:
    """Write sorted, indented JSON atomically."""
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        handle.write("\n")
    return Path(path)


def write_table(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV, TSV, JSONL or Parquet (by suffix), atomically.

    Raises:
        DataError: another suffix (a `.txt` or `.json` was written as CSV, which slmkit then refused to read).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    check_table_suffix(path)
    if suffix == ".parquet":
        import pyarrow as pa

        try:
            with atomic_open(path, "wb") as handle:
                frame.to_parquet(handle, index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            from slmkit.errors import DataError

            raise DataError(f"{path}: cannot write Parquet ({exc}); a column mixes types (e.g. numbers and "
                            "text across rows): write CSV or JSONL, or make the column one type") from exc
    elif suffix == ".jsonl":
        # Row by row with json.dumps: DataFrame.to_json keeps 10 significant digits and writes an int column
        # with a gap as floats, silently changing numbers the user only passed through.
        with atomic_open(path) as handle:
            columns = [str(c) for c in frame.columns]
            for row in frame.itertuples(index=False, name=None):
                record = {c: _json_value(v) for c, v in zip(columns, row)}
                handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    else:
        with atomic_open(path) as handle:
            _write_delimited(handle, frame, "\t" if suffix == ".tsv" else ",")
    return path


def check_table_suffix(path: str | Path, option: str = "") -> None:
    """A DataError unless `path` names a table format slmkit writes and reads (.csv .tsv .jsonl .parquet)."""
    from slmkit._constants import SUPPORTED_TABLE_SUFFIXES
    from slmkit.errors import DataError

    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED_TABLE_SUFFIXES:
        where = f"{option} {path}" if option else str(path)
        raise DataError(f"{where}: unsupported table type {suffix or '(none)'!r}; end the name with one of "
                        f"{', '.join(SUPPORTED_TABLE_SUFFIXES)}")


def _json_value(value):
    """A cell as JSON: missing -> null, numpy scalars and arrays -> Python numbers and lists, times -> ISO text."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
        return [_json_value(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity (to_json wrote null too)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _write_delimited(handle, frame: pd.DataFrame, sep: str) -> None:
    # By hand rather than DataFrame.to_csv or csv.writer: both leave a field holding a bare "\r" unquoted (it
    # then reads back as a line break) and write a one-column row of "" as a blank line (read back as no row).
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = ""
        else:
            text = str(value)
        if any(c in text for c in (sep, '"', "\n", "\r")) or (text == "" and single):
            return '"' + text.replace('"', '""') + '"'
        return text

    single = len(frame.columns) == 1
    handle.write(sep.join(cell(c) for c in frame.columns) + "\n")
    for row in frame.itertuples(index=False, name=None):
        handle.write(sep.join(cell(v) for v in row) + "\n")
