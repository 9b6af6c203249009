"""Read a corpus file in chunks of rows, never whole: JSONL, CSV/TSV (pandas) or Parquet (pyarrow).

Bad rows do not stop the read: bytes that are not UTF-8 are kept as lone surrogates ("surrogateescape"), so
the scorer can reject that row by name and keep the others; a JSONL line that is not a JSON object becomes a
row carrying its reject reason. Each chunk reports how far into the file it got, for a progress bar with ETA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slmkit.data._table import table_suffix
from slmkit.errors import DataError
from slmkit.quality._pair import REJECT_COLUMN


@dataclass
class Chunk:
    frame: pd.DataFrame
    position: int  # bytes read so far (text formats) or rows read so far (Parquet): the progress bar's unit


def progress_total(path: Path) -> tuple[int, str]:
    """(total, unit) for the progress bar: Parquet knows its row count; text formats are measured in bytes."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows, "row"
    return path.stat().st_size, "B"


def iter_chunks(path: str | Path, chunk_rows: int) -> Iterator[Chunk]:
    """Yield the file's rows in order, `chunk_rows` at a time (the last chunk may be shorter).

    Raises:
        DataError: a missing or unsupported file, or one whose structure (not a single row) is broken.
    """
    path = Path(path)
    suffix = table_suffix(path)
    if suffix == ".parquet":
        yield from _parquet_chunks(path, chunk_rows)
    elif suffix == ".jsonl":
        yield from _jsonl_chunks(path, chunk_rows)
    else:
        yield from _delimited_chunks(path, chunk_rows, "\t" if suffix == ".tsv" else ",")


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    done = 0
    for batch in handle.iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        for column in frame.columns:  # binary columns: decode, keeping bad bytes visible to the row check
            if frame[column].map(lambda v: isinstance(v, bytes)).any():
                frame[column] = frame[column].map(
                    lambda v: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                )
        done += len(frame)
        yield Chunk(frame, done)


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    # By hand rather than pandas.read_json(lines=True, chunksize=...): pandas fails a whole chunk on one bad
    # line and does not say which; here a bad line becomes one rejected row and the rest is kept.
    records: list[dict] = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            line = raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                record = {REJECT_COLUMN: f"line {line_no}: invalid JSON ({exc.msg} at column {exc.colno})"}
            if not isinstance(record, dict):
                record = {REJECT_COLUMN: f"line {line_no}: a JSON {type(record).__name__}, not an object"}
            records.append(record)
            if len(records) == chunk_rows:
                yield Chunk(_object_frame(records), handle.tell())
                records = []
        if records:
            yield Chunk(_object_frame(records), handle.tell())


def _object_frame(records: list[dict]) -> pd.DataFrame:
    # object dtype: pandas' Arrow-backed string dtype cannot hold the lone surrogates of undecodable bytes.
    return pd.DataFrame(records, dtype=object)


def _delimited_chunks(path: Path, chunk_rows: int, sep: str) -> Iterator[Chunk]:
    with path.open("rb") as handle:
        try:
            reader = pd.read_csv(
                handle,
                sep=sep,
                chunksize=chunk_rows,
                dtype=object,  # not str: pandas' Arrow strings cannot hold undecodable bytes (lone surrogates)
                keep_default_na=False,  # an empty cell is an empty text (reported), not NaN
                encoding="utf-8-sig",
                encoding_errors="surrogateescape",
            )
            for frame in reader:
                yield Chunk(frame, handle.tell())
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable {'TSV' if sep == chr(9) else 'CSV'} file ({exc})") from exc
        except UnicodeEncodeError as exc:  # undecodable bytes in the header: pandas cannot even name the columns
            raise DataError(
                f"{path}: line 1 (header): bytes are not UTF-8; is this a {'TSV' if sep == chr(9) else 'CSV'} file? "
                "Re-save it as UTF-8"
            ) from exc
