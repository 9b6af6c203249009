"""Choose subsets of a scored corpus, and a combined score for when S alone separates good from bad poorly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slmkit.errors import ConfigError, DataError

MODES = ("top", "bottom", "random")
COMBINED_FEATURES = ("S", "forward_loss", "log_n_tokens")


def select(
    scores: pd.DataFrame,
    *,
    by: str = "S",
    mode: str = "top",
    k: int | None = None,
    fraction: float | None = None,
    threshold: float | None = None,
    stratify: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows chosen by one score column, in the order of `scores`.

    Args:
        by: the score column ("S"; "forward_ppl" for the classic perplexity filter, with mode "bottom").
        mode: "top" (highest), "bottom" (lowest) or "random" (a seeded random subset, the control).
        k / fraction / threshold: exactly one: how many rows, what share of rows, or a cut-off (top keeps
            `by >= threshold`, bottom keeps `by <= threshold`; not for random).
        stratify: a column (e.g. a domain) to select within: k / fraction apply to each group separately,
            so no group is crowded out by another whose scores run higher.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    given = [name for name, value in (("k", k), ("fraction", fraction), ("threshold", threshold)) if value is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of k, fraction or threshold (got {', '.join(given) or 'none'})")
    if k is not None and k < 0:
        raise ConfigError(f"k must be >= 0, got {k}")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    if threshold is not None and mode == "random":
        raise ConfigError("a threshold needs mode top or bottom, not random")
    for column in [by] + ([stratify] if stratify else []):
        if column not in scores.columns:
            raise DataError(f"no column {column!r} in the scores; found {', '.join(map(str, scores.columns))}")
    rng = np.random.default_rng(seed)
    positions = pd.Series(np.arange(len(scores)))  # rows by position: index labels may repeat (a concat)
    values_all = pd.to_numeric(scores[by], errors="coerce").to_numpy(dtype=float)

    def pick(rows: np.ndarray) -> np.ndarray:
        # Rows without a finite score (rejected, or unscored by this scorer) are never selected, and do not count
        # toward a fraction: 50% of 2 scored rows and 8 unscored ones is 1 row.
        rows = rows[np.isfinite(values_all[rows])]
        values = values_all[rows]
        if threshold is not None:
            return rows[(values >= threshold) if mode == "top" else (values <= threshold)]
        # Half up, and at least one row of a non-empty group: round() halves to even (0.5 of 5 rows gave 2, of 1
        # row 0, so a one-row domain vanished from a stratified selection).
        n = k if k is not None else max(1, int(np.floor(fraction * len(rows) + 0.5))) if len(rows) else 0
        n = min(n, len(rows))
        if mode == "random":
            return rows[np.sort(rng.choice(len(rows), size=n, replace=False))]
        # A stable sort: ties keep file order, so a selection is reproducible.
        order = np.argsort(-values if mode == "top" else values, kind="stable")
        return rows[order[:n]]

    if stratify:
        groups = positions.groupby(scores[stratify].to_numpy(), sort=True, dropna=False)
        chosen = [pick(group.to_numpy()) for _, group in groups]
        taken = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    else:
        taken = pick(positions.to_numpy())
    return scores.iloc[np.sort(taken)]


def _label_text(value) -> str:
    """A label as the user would type it: 1.0 (a numeric column with gaps turns float) reads as "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass
class CombinedScore:
    """P(good) from S, forward loss and log length: a logistic regression fitted on a few labelled rows.

    S alone can be weak (tiny scorers, or text where forward perplexity already separates the classes); a
    handful of labels lets the data say how to weigh the reverse signal against plain perplexity and length.
    """

    model: object
    features: tuple[str, ...] = COMBINED_FEATURES

    @classmethod
    def fit(
        cls, scores: pd.DataFrame, *, label_column: str = "label", good: str = "good", seed: int = 0
    ) -> CombinedScore:
        """Fit on the rows of `scores` whose `label_column` is filled in (good vs anything else)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if label_column not in scores.columns:
            raise DataError(f"no label column {label_column!r} in the scores (pass it through from the input)")
        labelled = scores[scores[label_column].notna() & (scores[label_column].astype(str).str.strip() != "")]
        labelled = labelled[np.isfinite(combined_features(labelled)).all(axis=1)]  # S, loss and length all usable
        y = (labelled[label_column].map(_label_text) == str(good).strip()).to_numpy()
        if y.sum() < 2 or (~y).sum() < 2:
            raise DataError(
                f"column {label_column!r}: the combined score needs at least 2 {good!r} and 2 other labelled rows "
                f"with scores; found {int(y.sum())} and {int((~y).sum())}"
            )
        model = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))
        model.fit(combined_features(labelled), y)
        return cls(model)

    def score(self, scores: pd.DataFrame) -> np.ndarray:
        """P(good) per row (NaN where the row has no scores)."""
        features = combined_features(scores)
        out = np.full(len(scores), np.nan)
        ok = np.isfinite(features).all(axis=1)
        if ok.any():
            out[ok] = self.model.predict_proba(features[ok])[:, 1]
        return out

    def weights(self) -> dict[str, float]:
        """Standardised coefficients: how much each feature pushes towards "good"."""
        coef = self.model[-1].coef_[0]
        return {name: round(float(c), 4) for name, c in zip(self.features, coef)}


def combined_features(scores: pd.DataFrame) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 tokens -> -inf: a row the model cannot use
        return np.column_stack(
            [
                pd.to_numeric(scores["S"], errors="coerce"),
                pd.to_numeric(scores["forward_loss"], errors="coerce"),
                np.log(pd.to_numeric(scores["n_tokens"], errors="coerce").astype(float)),
            ]
        ).astype(float)
