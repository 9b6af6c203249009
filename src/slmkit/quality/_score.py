"""Score a corpus file with a scorer pair, chunk by chunk, into an output folder that a killed run resumes.

    scores/
      manifest.json                   scorer checksums, input fingerprint, settings, chunks and rows done
      parts/part-00000.parquet        scored rows of chunk 0 (every input column + the score columns)
      rejects/rejects-00000.jsonl     rows of chunk 0 that could not be scored: row, id, reason, text preview

Each part (and its rejects) is written atomically, then the manifest; a run killed between the two rewrites
that one chunk, never duplicates or loses a row. A resume whose scorer, input or settings differ from the
manifest's is refused with the differences named.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from slmkit.data import atomic_open, fingerprint_file, is_missing, write_json, write_table
from slmkit.errors import ConfigError, DataError
from slmkit.quality._config import ScoreConfig
from slmkit.quality._pair import REJECT_COLUMN, ScorerPair, load_scorer, score_frame
from slmkit.quality._read import iter_chunks, progress_total

logger = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.json"
_PREVIEW_CHARS = 200


def score_file(
    input_path: str | Path,
    scorer: str | Path | ScorerPair,
    output_dir: str | Path,
    config: ScoreConfig | None = None,
    *,
    progress: bool = True,
    max_chunks: int | None = None,
) -> dict:
    """Score every row of `input_path` into `output_dir` (see the module docstring); resumes an unfinished run.

    Args:
        scorer: a scorer folder (from `train_scorer`) or a loaded ScorerPair.
        max_chunks: stop after scoring this many chunks in this call (split a long run across sessions;
            tests use it as a kill). Calling again continues.

    Returns:
        the manifest: rows read / scored / rejected, chunks done, `finished`, seconds and tokens/s.
    """
    config = config or ScoreConfig()
    input_path, output_dir = Path(input_path), Path(output_dir)
    if not input_path.is_file():
        raise DataError(f"{input_path}: no such file")
    _check_readable(input_path, config)
    pair = scorer if isinstance(scorer, ScorerPair) else load_scorer(scorer)
    identity = {
        "scorer": pair.checksums(),
        "input": {"sha256": fingerprint_file(input_path)},  # the bytes, not the path: a moved file resumes
        "settings": config.identity(),
    }
    manifest = _start_manifest(output_dir, identity, config)
    manifest["input_path"] = str(input_path.resolve())
    if manifest.get("finished"):
        return manifest
    if config.engine == "ray":
        from slmkit.quality._ray import ray_chunks

        chunks = ray_chunks(input_path, pair.directory, config)
    else:
        chunks = _local_chunks(input_path, pair, config, skip=manifest["chunks_done"])
    total, unit = progress_total(input_path)
    if config.engine == "ray" and unit == "B":  # Ray's readers report rows, not bytes
        total, unit = None, "row"
    start = time.perf_counter()
    scored_now = tokens_now = 0
    chunks_at_start = manifest["chunks_done"]
    from tqdm.auto import tqdm

    # Resumed: the chunks already on disk are read past before the bar starts, so it opens at their position and
    # its rate (and ETA) counts only the chunks scored now (read-only chunks made it look many times faster).
    items, resumed_at, first = enumerate(chunks), 0, []
    for index, (frame, position) in items:
        if index >= manifest["chunks_done"]:
            first = [(index, (frame, position))]
            break
        resumed_at = position
    with tqdm(total=total, initial=resumed_at, unit=unit, unit_scale=unit == "B", desc="quality score",
              disable=not progress) as bar:
        for index, (frame, position) in itertools.chain(first, items):
            first_row = manifest["rows_read"] + 1
            kept, rejected = _write_chunk(output_dir, index, frame, first_row, config)
            manifest["chunks_done"] = index + 1
            manifest["rows_read"] += len(frame)
            manifest["rows_scored"] += kept
            manifest["rows_rejected"] += rejected
            scored_now += kept
            tokens_now += int(frame["n_tokens"].sum(skipna=True))
            write_json(output_dir / MANIFEST_NAME, manifest)
            bar.update(position - bar.n)
            bar.set_postfix(scored=manifest["rows_scored"], rejected=manifest["rows_rejected"])
            if max_chunks is not None and index + 1 >= chunks_at_start + max_chunks:
                break  # before the next chunk is read and scored; a later call finds it (or the end)
        else:
            manifest["finished"] = True
    seconds = time.perf_counter() - start
    # A call that only found the end (the previous one stopped by max_chunks on the last chunk: the end is not
    # known until the reader is asked for one more) keeps the previous run's record instead of rows_scored 0.
    if manifest["chunks_done"] > chunks_at_start or "last_run" not in manifest:
        manifest["last_run"] = {
            "engine": config.engine,
            "rows_scored": scored_now,
            "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens_now / seconds, 1) if seconds > 0 else None,
        }
    write_json(output_dir / MANIFEST_NAME, manifest)
    if manifest["rows_rejected"]:
        logger.warning("%d row(s) rejected (not scored); see %s", manifest["rows_rejected"], output_dir / "rejects")
    return manifest


def _check_readable(input_path: Path, config: ScoreConfig) -> None:
    """Read the whole file once without scoring, so broken structure (quoting, encoding of the header, missing
    text column, no rows) fails in seconds, before the scorer loads and hours before that chunk is reached.
    Bad single rows still pass: scoring rejects them one by one."""
    rows = 0
    for chunk in iter_chunks(input_path, max(config.chunk_rows, 10_000)):
        if rows == 0:
            _check_columns(input_path, chunk.frame, config)
        rows += len(chunk.frame)
    if rows == 0:
        raise DataError(f"{input_path}: no data rows; add rows or check that this is the right file")


def _local_chunks(input_path: Path, pair: ScorerPair, config: ScoreConfig, skip: int) -> Iterator:
    """(scored frame, position) per chunk; chunks before `skip` are read but not scored."""
    for index, chunk in enumerate(iter_chunks(input_path, config.chunk_rows)):
        if index < skip:
            yield chunk.frame, chunk.position
            continue
        # the first chunk was checked before scoring (_check_readable); a later chunk missing the text key
        # (JSONL rows with another key) has its rows rejected one by one instead of stopping the run
        _check_columns(input_path, chunk.frame, config, strict=False)
        frame = score_frame(
            pair,
            chunk.frame,
            text_column=config.text_column,
            batch_size=config.batch_size,
            max_tokens=config.max_tokens,
        )
        yield frame, chunk.position


def _check_columns(path: Path, frame: pd.DataFrame, config: ScoreConfig, *, strict: bool = True) -> None:
    if "row" in frame.columns:
        raise DataError(f"{path}: the input has a column named 'row', the name scores give the row number; "
                        "rename it before scoring")
    wanted = [config.text_column] + ([config.id_column] if config.id_column else [])
    missing = [c for c in wanted if c not in frame.columns]
    if strict and missing and not (REJECT_COLUMN in frame.columns and frame[REJECT_COLUMN].notna().all()):
        found = ", ".join(repr(c) for c in frame.columns if c != REJECT_COLUMN)
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; found {found} "
            "(choose the right ones with --text-column / --id-column)"
        )
    if config.text_column not in frame.columns:  # a chunk of nothing but invalid JSON lines
        frame[config.text_column] = None
    if config.id_column and config.id_column not in frame.columns:
        frame[config.id_column] = None


def _clear_temps(output_dir: Path) -> None:
    """Remove the `.<name>.<random>.tmp` files a hard kill left mid-write (atomic writes make them); one run
    drives a scoring folder at a time, so none of them belongs to a live writer."""
    for folder in (output_dir, output_dir / "parts", output_dir / "rejects"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)


def _start_manifest(output_dir: Path, identity: dict, config: ScoreConfig) -> dict:
    path = output_dir / MANIFEST_NAME
    _clear_temps(output_dir)  # before the emptiness check: a kill during the first manifest write left one
    if path.is_file():
        manifest = json.loads(path.read_text())
        differs = [
            f"{section}.{key}: {manifest.get(section, {}).get(key)!r} -> {value!r}"
            for section, values in identity.items()
            for key, value in values.items()
            if manifest.get(section, {}).get(key) != value
        ]
        if differs:
            raise ConfigError(
                f"{output_dir} holds scores from another run ({'; '.join(differs)}); "
                "choose a new output folder, or delete this one to start over"
            )
        if not manifest.get("finished") and config.engine == "ray" and manifest["chunks_done"]:
            raise ConfigError(f"{output_dir}: the Ray engine does not resume; finish it with --engine local")
        return manifest
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ConfigError(f"{output_dir} exists and holds no {MANIFEST_NAME}; choose a new output folder")
    manifest = {
        **identity,
        "chunks_done": 0,
        "rows_read": 0,
        "rows_scored": 0,
        "rows_rejected": 0,
        "finished": False,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, manifest)
    return manifest


def _write_chunk(output_dir: Path, index: int, frame: pd.DataFrame, first_row: int, config: ScoreConfig):
    """Number the rows, name them, and write the scored part and the rejects of one chunk atomically."""
    frame = frame.reset_index(drop=True)
    rows = pd.RangeIndex(first_row, first_row + len(frame))
    frame.insert(0, "row", rows)
    id_column = config.id_column or ("id" if "id" in frame.columns else None)
    if id_column not in (None, "id") and "id" in frame.columns:
        raise ConfigError(f"the input has an 'id' column and --id-column is {id_column!r}; use one id column")
    values = frame[id_column] if id_column else [None] * len(frame)
    ids = [str(row) if is_missing(v) else _id_text(v) for v, row in zip(values, rows)]
    frame = frame.drop(columns=["id"], errors="ignore")
    frame.insert(0, "id", pd.Series(ids, dtype=object))
    bad = frame[REJECT_COLUMN].notna()
    good = frame.loc[~bad].drop(columns=[REJECT_COLUMN])
    for column in good.columns:
        if pd.api.types.is_object_dtype(good[column]):  # only object columns can hold undecodable bytes
            good[column] = _mixed_as_text(good[column].map(_valid_text))
    suffix = "parquet" if config.output_format == "parquet" else "jsonl"
    write_table(output_dir / "parts" / f"part-{index:05d}.{suffix}", good)
    rejects = output_dir / "rejects" / f"rejects-{index:05d}.jsonl"
    if bad.any():
        with atomic_open(rejects) as handle:
            for _, row in frame.loc[bad].iterrows():
                text = row.get(config.text_column)
                record = {
                    "row": int(row["row"]),
                    "id": _valid_text(row["id"]),
                    "reason": row[REJECT_COLUMN],
                    "text_preview": _valid_text(text)[:_PREVIEW_CHARS] if isinstance(text, str) else None,
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        rejects.unlink(missing_ok=True)  # a rewritten chunk must not keep a stale rejects file
    return int((~bad).sum()), int(bad.sum())


def _id_text(value) -> str:
    """An id as text: a whole-number float is written as an integer (a Parquet int column with a null reads as
    floats: 10.0 must stay the id 10, as the JSONL or CSV copy of the file names it)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _valid_text(str(value))


def _mixed_as_text(column: pd.Series) -> pd.Series:
    """A pass-through column whose cells mix types (JSONL "year": 2020 and "unknown") as text, so Parquet can
    hold it; missing cells stay missing. Other columns are returned as they are."""
    kinds = {type(v) for v in column if not is_missing(v)}
    if len(kinds) <= 1:
        return column
    return column.map(lambda v: v if is_missing(v) else str(v))


def _valid_text(value):
    """Strings with undecodable bytes (lone surrogates) shown with U+FFFD, so Parquet and JSON can hold them."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _part_index(path: Path) -> int:
    """A part's chunk number: parts are named with 5 digits, so past chunk 99999 names sort out of row order."""
    return int(path.name.split("-", 1)[1].split(".", 1)[0])


def read_scores(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Scores as one table: a `score` output folder (its parts, in row order) or any table file."""
    from slmkit.data import read_table

    path = Path(path)
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise DataError(f"{path}: not a scores folder (no {MANIFEST_NAME}); pass quality score's --output")
        parts = sorted((path / "parts").glob("part-*"), key=_part_index)
        if not parts:
            raise DataError(f"{path}: no scored rows yet")
        frames = [
            pd.read_parquet(p, columns=columns) if p.suffix == ".parquet" else pd.read_json(p, lines=True, dtype=False)
            for p in parts
            if p.stat().st_size  # a chunk whose every row was rejected leaves an empty JSONL part
        ]
        frame = pd.concat(frames, ignore_index=True)
        if columns:
            frame = frame[columns]
    else:
        frame = read_table(path)
    missing = [c for c in ("S", "forward_loss") if c not in frame.columns and (not columns or c in columns)]
    if missing:
        raise DataError(f"{path}: missing score column(s) {', '.join(missing)}; is this `quality score` output?")
    if "id" in frame.columns:
        frame["id"] = frame["id"].astype(str)
    return frame


def read_rejects(output_dir: str | Path) -> pd.DataFrame:
    """Every rejected row of a scores folder: row, id, reason, text_preview."""
    records = []
    for path in sorted((Path(output_dir) / "rejects").glob("rejects-*.jsonl"), key=_part_index):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame.from_records(records, columns=["row", "id", "reason", "text_preview"])
