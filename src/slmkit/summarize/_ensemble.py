"""Ensembling by minimum Bayes risk: of several candidate summaries per dialogue, keep the one that agrees
most with the others (highest mean ROUGE to them). Candidates come from checkpoints, decodings or models.

MBR needs no model and no references, so it works on a test set; the consensus candidate is the one least
likely to be an outlier (a loop, a truncation, a hallucinated detail).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from slmkit.data import read_table, write_table
from slmkit.errors import ConfigError, DataError


def mbr_select(candidates: Sequence[Sequence[str]], *, tokenizer: str = "kiwi") -> tuple[list[str], np.ndarray]:
    """Pick one candidate per item by minimum Bayes risk under ROUGE (the competition mean).

    Args:
        candidates: per item, the candidate summaries (at least one each).
        tokenizer: ROUGE tokenizer ("kiwi" for Korean, "default" for English, ...).

    Returns:
        (the chosen summaries, the index of the chosen candidate per item). Ties go to the earlier candidate,
        so the first source acts as the tie-breaker. Empty candidates never win over non-empty ones.
    """
    from rouge_score import rouge_scorer

    from slmkit.metrics import get_tokenizer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=get_tokenizer(tokenizer))
    chosen, index = [], []
    for i, options in enumerate(candidates):
        if not len(options):
            raise ConfigError(f"item {i + 1} has no candidate summary")
        n = len(options)
        utility = np.zeros(n)
        # NFC as `rouge` scores: a decomposed (NFD) candidate would share no Korean token with the others
        normal = [unicodedata.normalize("NFC", o) for o in options]
        for a in range(n):
            for b in range(n):
                if a != b and options[a].strip() and options[b].strip():
                    s = scorer.score(normal[b], normal[a])
                    utility[a] += (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3
        utility[[not o.strip() for o in options]] = -1.0
        best = int(np.argmax(utility))
        chosen.append(options[best])
        index.append(best)
    return chosen, np.array(index)


def ensemble_files(
    prediction_files: Sequence[str | Path], output: str | Path, *, tokenizer: str = "kiwi"
) -> pd.DataFrame:
    """MBR over several `fname,summary` CSVs of the same dialogues; writes the competition CSV.

    Raises:
        DataError: fewer than two files, or files that do not cover the same fnames.
    """
    if len(prediction_files) < 2:
        raise ConfigError("ensembling needs at least two prediction files")
    tables = [read_table(p, required=("fname", "summary"), id_column="fname") for p in prediction_files]
    order = list(tables[0]["fname"])
    maps = []
    for path, table in zip(prediction_files, tables):
        by = dict(zip(table["fname"], table["summary"].fillna("").astype(str)))
        missing = [f for f in order if f not in by]
        extra = set(by) - set(order)
        if missing or extra:
            first = missing[0] if missing else sorted(extra)[0]
            raise DataError(f"{path}: fname {first!r} is not in every prediction file; ensemble files of one input")
        maps.append(by)
    picked, index = mbr_select([[m[f] for m in maps] for f in order], tokenizer=tokenizer)
    frame = pd.DataFrame({"fname": order, "summary": picked})
    write_table(output, frame)
    # keyed by position too: a file given twice is two sources (keyed by path alone, the second count replaced the
    # first)
    frame.attrs["source_counts"] = {f"{i + 1}: {p}": int((index == i).sum()) for i, p in enumerate(prediction_files)}
    return frame
