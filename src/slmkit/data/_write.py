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
    """Write a DataFrame as CSV, TSV, JSONL or Parquet (by suffix), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        with atomic_open(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
    elif suffix == ".jsonl":
        with atomic_open(path) as handle:
            frame.to_json(handle, orient="records", lines=True, force_ascii=False)
    else:
        with atomic_open(path) as handle:
            _write_delimited(handle, frame, "\t" if suffix == ".tsv" else ",")
    return path


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
