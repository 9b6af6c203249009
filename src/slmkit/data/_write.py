"""Atomic writers: a file is written to a temp name beside the target, then renamed over it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success rename it over `path`, on error delete it.

    A crash mid-write therefore never leaves a half-written result where a finished one was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(
            fd, mode, encoding=None if "b" in mode else encoding, newline="" if "b" not in mode else None
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600; the result should look like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
