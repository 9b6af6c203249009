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

    def pick(group: pd.DataFrame) -> pd.Index:
        values = pd.to_numeric(group[by], errors="coerce")
        if threshold is not None:
            return group.index[(values >= threshold) if mode == "top" else (values <= threshold)]
        n = k if k is not None else int(round(fraction * len(group)))
        n = min(n, len(group))
        if mode == "random":
            return group.index[np.sort(rng.choice(len(group), size=n, replace=False))]
        # A stable sort: ties keep file order, so a selection is reproducible. NaN scores sort last.
        order = values.sort_values(ascending=mode == "bottom", kind="stable", na_position="last")
        return order.index[:n]

    if stratify:
        chosen = [pick(group) for _, group in scores.groupby(stratify, sort=True, dropna=False)]
        index = chosen[0].append(chosen[1:]) if chosen else scores.index[:0]
    else:
        index = pick(scores)
    return scores.loc[scores.index.isin(index)]


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
        labelled = labelled[labelled["S"].notna()]
        y = (labelled[label_column].astype(str) == good).to_numpy()
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
    return np.column_stack(
        [
            pd.to_numeric(scores["S"], errors="coerce"),
            pd.to_numeric(scores["forward_loss"], errors="coerce"),
            np.log(pd.to_numeric(scores["n_tokens"], errors="coerce")),
        ]
    ).astype(float)
