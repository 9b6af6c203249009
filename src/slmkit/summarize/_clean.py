"""Cleaning rules: named, switchable steps that count what they change and keep a diff sample.

Each step is idempotent on its own and the default order makes the whole pipeline idempotent: cleaning a
cleaned table changes nothing. Summaries in the wrong language or of implausible length are *flagged* in
the report, never dropped or rewritten.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slmkit.errors import ConfigError
from slmkit.summarize._dialogue import HANGUL

_PII_MASKS = (
    "PhoneNumber",
    "Address",
    "PassportNumber",
    "DateOfBirth",
    "Email",
    "CarNumber",
    "CardNumber",
    "SSN",
    "Name",
)

_CANONICAL_MASK = {m.lower(): m for m in _PII_MASKS}


class CleaningStep:
    """Base class: `apply(text) -> text`; `name` is what users switch off and what the report counts."""

    name = "step"
    description = ""

    def apply(self, text: str) -> str:
        raise NotImplementedError


class ControlChars(CleaningStep):
    name, description = "control_chars", "remove control characters (\\r\\n -> \\n, tab -> space; \\n kept)"
    _pattern = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")

    def apply(self, text: str) -> str:
        return self._pattern.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))


class EscapeSequences(CleaningStep):
    name, description = "escape_sequences", "literal \\n / \\t / \\' and HTML entities (&amp; &quot; &#39;)"
    _literal = re.compile(r"\\([ntr'\"])")
    _entity = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")

    def apply(self, text: str) -> str:
        # Only what the entity pattern matched is decoded: html.unescape over the whole text also decodes bare
        # names without ";" ("Tom&notes" -> "Tom¬es"). Both decodings loop until stable, together: "&amp;amp;"
        # needs two passes, and an entity can decode into an escape ("&#92;t" -> "\t") or the other way round,
        # which a second cleaning would have decoded. Each pass shortens the text, so the loop ends.
        while True:
            new = self._literal.sub(lambda m: {"n": "\n", "t": " ", "r": ""}.get(m.group(1), m.group(1)), text)
            new = self._entity.sub(lambda m: html.unescape(m.group()), new)
            if new == text:
                return text
            text = new


class SpeakerTags(CleaningStep):
    name, description = "speaker_tags", "#Person 1# / #person1# / # Person1 # -> #Person1#; PII mask spelling"
    _person = re.compile(r"#\s*[Pp][Ee][Rr][Ss][Oo][Nn]\s*(\d+)\s*#")
    _mask = re.compile(r"#\s*(" + "|".join(_PII_MASKS) + r")\s*#", re.IGNORECASE)

    def apply(self, text: str) -> str:
        text = self._person.sub(lambda m: f"#Person{m.group(1)}#", text)
        return self._mask.sub(lambda m: f"#{_CANONICAL_MASK[m.group(1).lower()]}#", text)


class JamoRuns(CleaningStep):
    name, description = "jamo_runs", "drop runs of 2+ bare Korean jamo (ㅋㅋㅋ, ㅎㅎ, ㅠㅠ)"
    _pattern = re.compile(r"[\u3131-\u318e]{2,}")

    def apply(self, text: str) -> str:
        return self._pattern.sub("", text)


class RepeatedChars(CleaningStep):
    name, description = "repeated_chars", "a character repeated 4+ times -> 3 (digits and spaces untouched)"
    _pattern = re.compile(r"([^\d\s])\1{3,}")

    def apply(self, text: str) -> str:
        return self._pattern.sub(r"\1\1\1", text)


class Whitespace(CleaningStep):
    name, description = "whitespace", "collapse spaces, trim lines, drop blank lines"
    _spaces = re.compile(r"[ \u00a0\u3000]+")

    def apply(self, text: str) -> str:
        lines = (self._spaces.sub(" ", line).strip() for line in text.split("\n"))
        return "\n".join(line for line in lines if line)


DEFAULT_STEPS: tuple[type[CleaningStep], ...] = (
    EscapeSequences,  # first: an entity such as &#13; or &#x200b; decodes to what ControlChars removes
    ControlChars,
    SpeakerTags,
    JamoRuns,
    RepeatedChars,
    Whitespace,
)
STEP_NAMES = tuple(step.name for step in DEFAULT_STEPS)


@dataclass
class CleaningReport:
    """What cleaning did: rows changed per step, up to `n_samples` diffs per step, and flagged rows."""

    changed: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict]] = field(default_factory=dict)
    flags: list[dict] = field(default_factory=list)
    n_rows: int = 0

    def to_markdown(self) -> str:
        lines = [f"# Cleaning report ({self.n_rows} rows)", "", "| step | rows changed |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in self.changed.items()]
        for name, samples in self.samples.items():
            if samples:
                lines += ["", f"## {name}", ""]
                lines += [f"- `{s['fname']}` {s['column']}: `{s['before']}` → `{s['after']}`" for s in samples]
        if self.flags:
            lines += ["", f"## Flagged ({len(self.flags)}, kept)", ""]
            lines += [f"- `{f['fname']}`: {f['flag']} ({f['detail']})" for f in self.flags[:50]]
        return "\n".join(lines) + "\n"


@dataclass
class CleaningConfig:
    """Which steps run, and the thresholds of the summary flags.

    Attributes:
        disable: step names to skip (see STEP_NAMES).
        columns: columns cleaned ("dialogue" and "summary"; missing ones are skipped).
        min_ratio, max_ratio: summary/dialogue character ratio outside this range is flagged.
        n_samples: diff samples kept per step.
    """

    disable: Sequence[str] = ()
    columns: Sequence[str] = ("dialogue", "summary")
    min_ratio: float = 0.03
    max_ratio: float = 0.8
    n_samples: int = 3

    def __post_init__(self) -> None:
        unknown = [x for x in self.disable if x not in STEP_NAMES]
        if unknown:
            raise ConfigError(f"unknown cleaning step(s) {', '.join(unknown)}; steps are {', '.join(STEP_NAMES)}")


def clean_dialogues(frame: pd.DataFrame, config: CleaningConfig | None = None) -> tuple[pd.DataFrame, CleaningReport]:
    """Apply the enabled steps to each text column; flag suspicious summaries.

    Args:
        frame: a table with fname and the configured columns (e.g. from `load_dialogues`).
        config: steps and thresholds.

    Returns:
        (cleaned copy of `frame`, report). `references` is rebuilt from the cleaned `summary` when it held one.
    """
    config = config or CleaningConfig()
    out = frame.copy()
    for column in [c for c in config.columns if c in out.columns]:
        out[column] = out[column].fillna("").astype(str)
    out, report = _apply_steps(out, [c for c in config.columns if c in out.columns], list(out["fname"]), config)
    if "references" in out.columns and "summary" in out.columns:
        # Every reference is cleaned, not only the first (`summary`): multi-reference ROUGE scores against all.
        steps = [step() for step in DEFAULT_STEPS if step.name not in config.disable]

        def clean(text):
            for step in steps:
                text = step.apply(text) if isinstance(text, str) else text
            return text

        out["references"] = [
            [t for t in ([s] + [clean(x) for x in list(r)[1:]]) if isinstance(t, str) and t.strip()]
            for s, r in zip(out["summary"], out["references"])
        ]
    report.flags = flag_summaries(out, config.min_ratio, config.max_ratio)
    return out, report


def clean_table(
    frame: pd.DataFrame,
    text_columns: Sequence[str],
    *,
    id_column: str = "fname",
    config: CleaningConfig | None = None,
) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean `text_columns` of any table and keep every other column, name and order as they were.

    Columns are data: a multi-reference table (summary1, summary2, ...) keeps all its references, each cleaned,
    and columns slmkit does not know pass through untouched. Cells that are not strings (missing values) stay.

    Args:
        frame: the table as read (e.g. `slmkit.data.read_table`).
        text_columns: the dialogue column first, then the reference columns (flags compare the first two).
        id_column: names rows in the report.
        config: steps and thresholds (`config.columns` is ignored here).

    Returns:
        (cleaned copy of `frame`, report).
    """
    config = config or CleaningConfig()
    columns = [c for c in text_columns if c in frame.columns]
    out, report = _apply_steps(frame.copy(), columns, [str(x) for x in frame[id_column]], config)
    if len(columns) >= 2:
        view = pd.DataFrame({
            "fname": [str(x) for x in out[id_column]],
            "dialogue": out[columns[0]].map(lambda v: v if isinstance(v, str) else ""),
            "summary": out[columns[1]].map(lambda v: v if isinstance(v, str) else ""),
        })
        report.flags = flag_summaries(view, config.min_ratio, config.max_ratio)
    return out, report


def _apply_steps(
    out: pd.DataFrame, columns: Sequence[str], ids: list, config: CleaningConfig
) -> tuple[pd.DataFrame, CleaningReport]:
    steps = [step() for step in DEFAULT_STEPS if step.name not in config.disable]
    report = CleaningReport(changed={s.name: 0 for s in steps}, samples={s.name: [] for s in steps}, n_rows=len(out))
    for column in columns:
        values = list(out[column])
        for step in steps:
            for i, before in enumerate(values):
                if isinstance(before, (list, tuple, np.ndarray)):  # several references in one cell
                    after = [step.apply(v) if isinstance(v, str) else v for v in before]
                    if after != list(before):
                        values[i] = after
                        report.changed[step.name] += 1
                        if len(report.samples[step.name]) < config.n_samples:
                            report.samples[step.name].append(_diff(ids[i], column, " | ".join(map(str, before)),
                                                                   " | ".join(map(str, after))))
                    continue
                if not isinstance(before, str):
                    continue
                after = step.apply(before)
                if after != before:
                    values[i] = after
                    report.changed[step.name] += 1
                    if len(report.samples[step.name]) < config.n_samples:
                        report.samples[step.name].append(_diff(ids[i], column, before, after))
        out[column] = values
    return out, report


def flag_summaries(frame: pd.DataFrame, min_ratio: float = 0.03, max_ratio: float = 0.8) -> list[dict]:
    """Rows whose summary is in another language than the dialogue, or implausibly short or long."""
    if "summary" not in frame.columns:
        return []
    flags = []
    for fname, dialogue, summary in zip(frame["fname"], frame["dialogue"], frame["summary"]):
        if not summary.strip():
            continue
        if bool(HANGUL.search(dialogue)) != bool(HANGUL.search(summary)):
            flags.append(
                {"fname": fname, "flag": "summary_language", "detail": "dialogue and summary differ in script"}
            )
        ratio = len(summary) / max(len(dialogue), 1)
        if not min_ratio <= ratio <= max_ratio:
            flags.append({"fname": fname, "flag": "summary_length", "detail": f"summary/dialogue chars = {ratio:.2f}"})
    return flags


def _diff(fname: str, column: str, before: str, after: str) -> dict:
    # Show the first differing stretch with a little context, escaped so control characters are visible.
    start = next((i for i, (a, b) in enumerate(zip(before, after)) if a != b), min(len(before), len(after)))
    lo = max(0, start - 15)
    return {
        "fname": fname,
        "column": column,
        "before": repr(before[lo : start + 25])[1:-1],
        "after": repr(after[lo : start + 25])[1:-1],
    }
