"""ROUGE-1/2/L on top of `rouge-score`, with a pluggable tokenizer, multiple references and bootstrap CIs.

Pure functions over lists and arrays: no file I/O, no model calls.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from slmkit.errors import ConfigError
from slmkit.metrics._tokenizers import get_tokenizer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
MULTI_REF_MODES = ("max", "mean")


@dataclass
class RougeResult:
    """Corpus ROUGE: means of per-example scores, with bootstrap 95% intervals.

    Attributes:
        precision, recall, fmeasure: dict rouge type -> array of shape (n_examples,), values in [0, 1].
        final: per-example competition score, array of shape (n_examples,): mean of the three F1 values x 100.
        tokenizer: name of the tokenizer used.
        multi_ref: how several references were combined ("max" or "mean" over references, per ROUGE type).
        ci: dict name -> (low, high) bootstrap 95% interval of the corpus mean (same scale as `summary()`).
    """

    precision: dict[str, np.ndarray]
    recall: dict[str, np.ndarray]
    fmeasure: dict[str, np.ndarray]
    final: np.ndarray
    tokenizer: str
    multi_ref: str
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_bootstrap: int = 0
    bootstrap_seed: int | None = None

    @property
    def n(self) -> int:
        return int(self.final.shape[0])

    def summary(self) -> dict[str, float]:
        """Corpus means x 100: rouge1/rouge2/rougeL F1 (plus `_p` and `_r`) and `final` (competition score)."""
        out: dict[str, float] = {}
        for name in ROUGE_TYPES:
            out[name] = _mean100(self.fmeasure[name])
            out[f"{name}_p"] = _mean100(self.precision[name])
            out[f"{name}_r"] = _mean100(self.recall[name])
        out["final"] = float(self.final.mean()) if self.n else 0.0
        return out

    def to_dict(self) -> dict:
        """JSON-able summary: means, intervals and how they were computed."""
        return {
            "n": self.n,
            "tokenizer": self.tokenizer,
            "multi_ref": self.multi_ref,
            "scores": {k: round(v, 4) for k, v in self.summary().items()},
            "ci95": {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in self.ci.items()},
            "n_bootstrap": self.n_bootstrap,
            "bootstrap_seed": self.bootstrap_seed,  # the intervals are reproducible from this
        }


def rouge(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    tokenizer: str | object = "kiwi",
    multi_ref: str = "max",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> RougeResult:
    """Score predictions against one or several references each.

    Args:
        predictions: n system summaries.
        references: n reference strings, or n lists of references (DialogSum test has three).
        tokenizer: "kiwi" (Korean morphemes, the default), "whitespace", "char", "default" (rouge-score's own,
            English only) or any object with `tokenize(text) -> list[str]` and a `name`.
        multi_ref: "max" keeps, per ROUGE type, the reference with the best F1 (its P and R come along);
            "mean" averages P, R and F1 over the references.
        n_bootstrap: resamples for the 95% intervals (0 disables them).
        seed: seed of the bootstrap resampling.

    Returns:
        RougeResult with per-example arrays and corpus intervals.

    Raises:
        ConfigError: lengths differ, an example has no reference, or an option is unknown.

    Example:
        >>> rouge(["testing one two"], ["testing"], tokenizer="whitespace").fmeasure["rouge1"]
        array([0.5])
    """
    refs = _as_reference_lists(predictions, references)
    if multi_ref not in MULTI_REF_MODES:
        raise ConfigError(f"multi_ref must be one of {MULTI_REF_MODES}, got {multi_ref!r}")
    tok = get_tokenizer(tokenizer)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=tok)
    n = len(predictions)
    p, r, f = ({k: np.zeros(n) for k in ROUGE_TYPES} for _ in range(3))
    for i, (pred, options) in enumerate(zip(predictions, refs)):
        # NFC first: Korean stored decomposed (NFD, as macOS file names and some exports give it) shares no
        # token with the same words composed, and would score 0 against identical text.
        pred = unicodedata.normalize("NFC", pred)
        scores = [scorer.score(unicodedata.normalize("NFC", ref), pred) for ref in options]  # (target, prediction)
        for name in ROUGE_TYPES:
            p[name][i], r[name][i], f[name][i] = _combine([s[name] for s in scores], multi_ref)
    final = (f["rouge1"] + f["rouge2"] + f["rougeL"]) / 3 * 100
    result = RougeResult(p, r, f, final, getattr(tok, "name", type(tok).__name__), multi_ref)
    if n_bootstrap and n:
        result.ci = bootstrap_ci({**{k: v * 100 for k, v in f.items()}, "final": final}, n_bootstrap, seed)
        result.n_bootstrap, result.bootstrap_seed = n_bootstrap, seed
    return result


def bootstrap_ci(
    per_example: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of the mean of each per-example array (same resampled rows for all).

    Args:
        per_example: name -> array of shape (n_examples,).
        n_resamples: number of resamples with replacement.
        seed: seed of the resampling generator.
        level: coverage of the interval.

    Returns:
        name -> (low, high).
    """
    arrays = {k: np.asarray(v, dtype=float) for k, v in per_example.items()}
    n = len(next(iter(arrays.values())))
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(n_resamples, n))
    tail = (1 - level) / 2 * 100
    out = {}
    for name, values in arrays.items():
        means = values[rows].mean(axis=1)
        out[name] = (float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))
    return out


def competition_score(result: RougeResult) -> float:
    """The competition's final number: mean of corpus ROUGE-1, ROUGE-2 and ROUGE-L F1, x 100."""
    return result.summary()["final"]


def _combine(scores: list, mode: str) -> tuple[float, float, float]:
    if mode == "max":
        best = max(scores, key=lambda s: s.fmeasure)
        return best.precision, best.recall, best.fmeasure
    return (
        float(np.mean([s.precision for s in scores])),
        float(np.mean([s.recall for s in scores])),
        float(np.mean([s.fmeasure for s in scores])),
    )


def _as_reference_lists(predictions, references) -> list[list[str]]:
    if len(predictions) != len(references):
        raise ConfigError(f"got {len(predictions)} predictions but {len(references)} references; they must pair up")
    refs = [[x for x in ([r] if isinstance(r, str) else r) if isinstance(x, str) and x.strip()] for r in references]
    for i, options in enumerate(refs):
        if not options:
            raise ConfigError(f"example {i + 1} has no non-empty reference summary")
    return refs


def _mean100(values: np.ndarray) -> float:
    return float(values.mean() * 100) if len(values) else 0.0
