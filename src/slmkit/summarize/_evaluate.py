"""`evaluate`: score an `fname,summary` prediction file against a reference table, per topic too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slmkit.data import read_table, write_json, write_table
from slmkit.errors import ConfigError, DataError
from slmkit.metrics import RougeResult, rouge
from slmkit.summarize._data import DialogueColumns, load_dialogues
from slmkit.summarize._dialogue import detect_language


@dataclass
class EvaluationReport:
    """What `evaluate` found.

    Attributes:
        result: corpus ROUGE with per-example arrays and bootstrap intervals.
        per_example: one row per reference row: fname, topic, prediction, rouge1, rouge2, rougeL (F1 x 100), final.
        per_topic: topic, n, mean rouge1/rouge2/rougeL/final, sorted by n then topic.
        language: "ko" or "en" (drives the "auto" tokenizer).
    """

    result: RougeResult
    per_example: pd.DataFrame
    per_topic: pd.DataFrame
    language: str

    def to_dict(self) -> dict:
        return {
            "language": self.language,
            **self.result.to_dict(),
            "per_topic": self.per_topic.round(3).to_dict(orient="records"),
        }

    def save(self, directory: str | Path) -> Path:
        """Write `rouge.json`, `per_example.csv` and `per_topic.csv` (atomically) into `directory`."""
        directory = Path(directory)
        write_json(directory / "rouge.json", self.to_dict())
        write_table(directory / "per_example.csv", self.per_example)
        write_table(directory / "per_topic.csv", self.per_topic)
        return directory


def resolve_tokenizer(tokenizer: str, language: str) -> str:
    """ "auto" -> "kiwi" for Korean, rouge-score's "default" for English; other names pass through."""
    if tokenizer != "auto":
        return tokenizer
    return "kiwi" if language == "ko" else "default"


def evaluate(
    predictions: str | Path | pd.DataFrame,
    references: str | Path | pd.DataFrame,
    *,
    tokenizer: str = "auto",
    multi_ref: str = "max",
    n_bootstrap: int = 1000,
    seed: int = 0,
    columns: DialogueColumns | None = None,
) -> EvaluationReport:
    """Score predictions against references (every reference row needs a prediction).

    Args:
        predictions: `fname,summary` CSV path or DataFrame.
        references: dialogue table with reference summaries (path, or a `load_dialogues` frame).
        tokenizer: "auto", "kiwi", "whitespace", "char" or "default" (see `slmkit.metrics`).
        multi_ref: "max" or "mean" over several references.
        n_bootstrap: resamples for the 95% intervals.
        seed: bootstrap seed.
        columns: reference table column names.

    Raises:
        DataError: a reference row has no prediction, or a prediction names an unknown fname.
        ConfigError: an option out of range (checked before any file is read).
    """
    check_evaluate_options(tokenizer=tokenizer, multi_ref=multi_ref, n_bootstrap=n_bootstrap)
    refs = (
        references
        if isinstance(references, pd.DataFrame)
        else load_dialogues(references, columns, require_summary=True, strict=False)
    )
    preds = (
        predictions
        if isinstance(predictions, pd.DataFrame)
        else read_table(predictions, required=("fname", "summary"), id_column="fname")
    )
    source = "predictions" if isinstance(predictions, pd.DataFrame) else str(predictions)
    repeated = preds["fname"].astype(str).duplicated()
    if repeated.any():  # a file is checked by read_table; a frame would keep the last row of a repeated id
        row = int(repeated.to_numpy().nonzero()[0][0])
        raise DataError(f"{source}: row {row + 1}, column 'fname': duplicate id {preds['fname'].iloc[row]!r}; "
                        "one summary per dialogue")
    by_fname = dict(zip(preds["fname"].astype(str), preds["summary"].fillna("").astype(str)))
    _check_alignment(source, by_fname, list(refs["fname"]))
    language = detect_language(list(refs["dialogue"]))
    texts = [by_fname[f] for f in refs["fname"]]
    result = rouge(
        texts,
        list(refs["references"]),
        tokenizer=resolve_tokenizer(tokenizer, language),
        multi_ref=multi_ref,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    per_example = pd.DataFrame(
        {
            "fname": refs["fname"].to_numpy(),
            "topic": refs["topic"].to_numpy(),
            "prediction": texts,
            **{name: result.fmeasure[name] * 100 for name in ("rouge1", "rouge2", "rougeL")},
            "final": result.final,
        }
    )
    per_topic = (
        per_example.groupby("topic", sort=False)[["rouge1", "rouge2", "rougeL", "final"]]
        .mean()
        .assign(n=per_example.groupby("topic", sort=False).size())
        .reset_index()
        .sort_values(["n", "topic"], ascending=[False, True])
        .reset_index(drop=True)
    )
    return EvaluationReport(
        result, per_example, per_topic[["topic", "n", "rouge1", "rouge2", "rougeL", "final"]], language
    )


def check_evaluate_options(*, tokenizer: str = "auto", multi_ref: str = "max", n_bootstrap: int = 1000) -> None:
    """Raise ConfigError naming the first option out of range."""
    from slmkit.metrics import MULTI_REF_MODES, TOKENIZER_NAMES

    if tokenizer != "auto" and isinstance(tokenizer, str) and tokenizer not in TOKENIZER_NAMES:
        raise ConfigError(f"tokenizer must be auto or one of {', '.join(TOKENIZER_NAMES)}, got {tokenizer!r}")
    if multi_ref not in MULTI_REF_MODES:
        raise ConfigError(f"multi_ref must be one of {', '.join(MULTI_REF_MODES)}, got {multi_ref!r}")
    if n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be >= 0 (0 skips the confidence intervals), got {n_bootstrap}")


def _check_alignment(source: str, predicted: dict[str, str], wanted: list[str]) -> None:
    missing = [f for f in wanted if f not in predicted]
    if missing:
        raise DataError(
            f"{source}: no prediction for {len(missing)} of {len(wanted)} reference row(s), first "
            f"{missing[0]!r}; finish the run (predict resumes) or evaluate on matching references"
        )
    known = set(wanted)
    extra = [f for f in predicted if f not in known]
    if extra:
        raise DataError(
            f"{source}: fname {extra[0]!r} (and {len(extra) - 1} more) is not in the references; "
            "are these predictions for another split?"
        )
