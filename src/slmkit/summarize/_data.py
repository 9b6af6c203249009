"""Load dialogue-summary tables: competition CSVs, DialogSum JSONL (one or three references), any table.

Every table comes back with the same columns: `fname`, `dialogue`, `summary` (the first reference, "" when
there is none), `references` (list of all non-empty references), `topic` ("" when absent).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from slmkit.data import is_missing, read_table
from slmkit.data._table import check_ids
from slmkit.errors import DataError
from slmkit.summarize._dialogue import DialogueIssue, check_dialogue

logger = logging.getLogger(__name__)
_MULTI_SUMMARY = re.compile(r"^summary\d+$")


@dataclass
class DialogueColumns:
    """Which source columns hold what. `summaries=None` finds `summary` or `summary1`, `summary2`, ...

    Attributes:
        id: unique row id (competition: "fname").
        dialogue: the `#PersonN#:`-tagged dialogue.
        summaries: reference columns, or None to detect them; () for tables without references (test sets).
        topic: topic column; ignored when the table has none.
    """

    id: str = "fname"
    dialogue: str = "dialogue"
    summaries: tuple[str, ...] | None = None
    topic: str = "topic"


def load_dialogues(
    path: str | Path,
    columns: DialogueColumns | None = None,
    *,
    require_summary: bool = False,
    strict: bool = True,
    ids_optional: bool = False,
) -> pd.DataFrame:
    """Read and validate a dialogue table.

    Args:
        path: CSV / TSV / JSONL / Parquet file.
        columns: column names; the competition's by default.
        require_summary: raise when the table has no reference column (evaluation needs one).
        strict: raise on the first dialogue error (no turn tags); otherwise log it with the warnings.
        ids_optional: a table without the id column is read with ids `<file name>:<row>` (example pools and
            vocabulary tables are plain dialogue/summary pairs; only a table being summarized needs its ids).

    Returns:
        DataFrame with columns fname, dialogue, summary, references, topic; `frame.attrs["issues"]` holds
        the DialogueIssue list and `frame.attrs["path"]` the source path.

    Raises:
        DataError: unreadable file, missing column, broken quoting, empty dialogue, duplicate id, untagged
            dialogue (with `strict`), naming the file and the 1-based row.
    """
    path, columns = Path(path), columns or DialogueColumns()
    raw = read_table(path, text_columns=[columns.dialogue], id_column=None if ids_optional else columns.id)
    if ids_optional:
        if columns.id in raw.columns:
            check_ids(path, raw, columns.id)
        else:
            raw[columns.id] = [f"{path.name}:{i + 1}" for i in range(len(raw))]
    summary_cols = _summary_columns(raw, columns.summaries, path)
    if require_summary and not summary_cols:
        raise DataError(
            f"{path}: no reference summary column (looked for 'summary' or 'summary1'..; "
            f"found {', '.join(map(repr, raw.columns))}); pass the summary column names"
        )
    frame = pd.DataFrame({"fname": raw[columns.id], "dialogue": raw[columns.dialogue]})
    refs = [[r for c in summary_cols for r in _references(raw[c].iloc[i], path, i, c)] for i in range(len(raw))]
    frame["references"] = [[r for r in row if r.strip()] for row in refs]
    frame["summary"] = [row[0] if row else "" for row in frame["references"]]
    if require_summary:
        missing = [i for i, row in enumerate(frame["references"]) if not row]
        if missing:
            raise DataError(
                f"{path}: row {missing[0] + 1} ({frame['fname'].iloc[missing[0]]}): empty reference "
                f"summary in {', '.join(summary_cols)}; fill it in or drop the row"
            )
    frame["topic"] = _topics(raw, columns.topic, path)
    issues = validate_dialogues(frame, path=path, strict=strict)
    frame.attrs.update(issues=issues, path=str(path), summary_columns=list(summary_cols))
    return frame


def validate_dialogues(
    frame: pd.DataFrame, *, path: str | Path = "<table>", strict: bool = True
) -> list[DialogueIssue]:
    """Check every dialogue (see `check_dialogue`); log warnings, raise or log errors.

    Raises:
        DataError: with `strict`, the first error-severity issue, naming the file and row.
    """
    issues: list[DialogueIssue] = []
    for i, (fname, dialogue) in enumerate(zip(frame["fname"], frame["dialogue"])):
        issues.extend(check_dialogue(dialogue, row=i + 1, fname=str(fname)))
    errors = [x for x in issues if x.severity == "error"]
    if strict and errors:
        raise DataError(f"{path}: {errors[0]}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    for issue in issues[:20]:
        logger.warning("%s: %s", path, issue)
    if len(issues) > 20:
        logger.warning("%s: %d more dialogue issue(s) not shown", path, len(issues) - 20)
    return issues


def _summary_columns(raw: pd.DataFrame, wanted: tuple[str, ...] | None, path: Path) -> tuple[str, ...]:
    if wanted is not None:
        missing = [c for c in wanted if c not in raw.columns]
        if missing:
            raise DataError(
                f"{path}: missing summary column(s) {', '.join(map(repr, missing))}; "
                f"found {', '.join(map(repr, raw.columns))}"
            )
        return tuple(wanted)
    numbered = sorted((c for c in raw.columns if _MULTI_SUMMARY.match(c)), key=lambda c: int(c[7:]))
    if numbered:
        return tuple(numbered)
    return ("summary",) if "summary" in raw.columns else ()


def _topics(raw: pd.DataFrame, column: str, path: Path) -> pd.Series | str:
    """The topic per row: `column`, else `column1`, `column2`, ... (DialogSum's one topic per reference), the
    first non-empty one; "" when the table has none."""
    if column in raw.columns:
        return pd.Series([_as_text(v, path, i, column) for i, v in enumerate(raw[column])], index=raw.index)
    numbered = sorted(
        (c for c in raw.columns if c.startswith(column) and c[len(column) :].isdigit()),
        key=lambda c: int(c[len(column) :]),
    )
    if not numbered:
        return ""
    texts = [[_as_text(raw[c].iloc[i], path, i, c) for c in numbered] for i in range(len(raw))]
    return pd.Series([next((t for t in row if t.strip()), "") for row in texts], index=raw.index)


def _references(value, path: Path, row: int, column: str) -> list[str]:
    """A reference cell's texts: one, or several where the cell is a list (a Parquet list column or a JSON
    array: DialogSum's several references per dialogue in one field)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_as_text(v, path, row, column) for v in value]
    return [_as_text(value, path, row, column)]


def _as_text(value, path: Path, row: int, column: str) -> str:
    if is_missing(value):  # pd.NA included: str() would make it the text "<NA>"
        return ""
    if isinstance(value, (list, tuple, dict, np.ndarray)):  # str() would make a Python repr the text
        raise DataError(
            f"{path}: row {row + 1}, column {column!r}: expected text, found {type(value).__name__}"
        )
    return str(value)
