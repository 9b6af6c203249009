"""Learning curves: accuracy and macro-F1 against labelled examples per class, over several random draws."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score

from slmkit.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_SHOTS = (4, 8, 16, 32, 64, 128)


def sample_per_class(y, k: int, seed: int) -> np.ndarray:
    """Indices of up to `k` examples of each label (all of a label that has fewer), drawn with `seed`.

    Draws are nested: for one seed, the examples chosen at k are a subset of those chosen at any larger k, so a
    curve's points differ only by the labels added.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    picked = []
    for label in sorted(np.unique(y).tolist(), key=str):
        idx = np.flatnonzero(y == label)
        picked.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(picked))


@dataclass
class LearningCurve:
    """Scores of one method at each examples-per-class budget (rows) and random draw (columns).

    Attributes:
        shots: examples per class, of length n_points.
        accuracy, macro_f1: arrays of shape (n_points, n_draws).
        n_train: training-set sizes, shape (n_points, n_draws) (smaller than shots x classes when a class runs out).
        fit_seconds: wall time of each fit + predict, shape (n_points, n_draws).
    """

    shots: list[int]
    accuracy: np.ndarray
    macro_f1: np.ndarray
    n_train: np.ndarray
    fit_seconds: np.ndarray
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able summary with per-draw scores and their mean and standard deviation."""
        points = {}
        for i, k in enumerate(self.shots):
            points[str(k)] = {
                "accuracy": [round(float(v), 4) for v in self.accuracy[i]],
                "macro_f1": [round(float(v), 4) for v in self.macro_f1[i]],
                "accuracy_mean": round(float(self.accuracy[i].mean()), 4),
                "accuracy_std": round(float(self.accuracy[i].std()), 4),
                "macro_f1_mean": round(float(self.macro_f1[i].mean()), 4),
                "macro_f1_std": round(float(self.macro_f1[i].std()), 4),
                "n_train": [int(v) for v in self.n_train[i]],
                "fit_seconds_mean": round(float(self.fit_seconds[i].mean()), 3),
            }
        return {"shots": list(self.shots), "points": points, "params": self.params}


def learning_curve(estimator, X_train: Sequence, y_train, X_test: Sequence, y_test, *,
                   shots: Sequence[int] = DEFAULT_SHOTS, draws: int = 5, seed: int = 0,
                   on_fit: Callable | None = None) -> LearningCurve:
    """Fit a clone of `estimator` on `k` examples per class for each k and draw; score on the test set.

    Args:
        estimator: any classifier with fit/predict (an LMClassifier hits its embedding cache, so only the head
            is refit).
        X_train, y_train: the pool to draw from (n_pool texts or rows, n_pool labels).
        X_test, y_test: the held-out set every fit is scored on.
        shots: examples per class; draw `d` uses seed `seed + d` and is nested across shots.
        draws: random draws per budget.
        seed: base seed.
        on_fit: called as on_fit(k, draw, fitted model) after each fit, e.g. to keep what an automatic
            configuration chose (the fitted clones are not kept otherwise).

    Returns:
        A LearningCurve.
    """
    if draws < 1 or not shots or min(shots) < 2:
        raise ConfigError(f"need draws >= 1 and shots >= 2 per class, got draws={draws}, shots={list(shots)}")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    shape = (len(shots), draws)
    acc, f1, n_train, secs = (np.zeros(shape) for _ in range(4))
    for d in range(draws):
        for i, k in enumerate(shots):
            idx = sample_per_class(y_train, k, seed + d)
            start = time.perf_counter()
            model = clone(estimator).fit(_take(X_train, idx), y_train[idx])
            pred = model.predict(X_test)
            secs[i, d] = time.perf_counter() - start
            acc[i, d] = accuracy_score(y_test, pred)
            f1[i, d] = f1_score(y_test, pred, average="macro")
            n_train[i, d] = len(idx)
            if on_fit is not None:
                on_fit(k, d, model)
            logger.info("k=%d draw=%d: accuracy %.3f macro-F1 %.3f", k, d, acc[i, d], f1[i, d])
    return LearningCurve(list(shots), acc, f1, n_train, secs)


def _take(X, idx: np.ndarray):
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if isinstance(X, np.ndarray):
        return X[idx]
    return [X[i] for i in idx]


def plot_learning_curves(curves: Mapping[str, LearningCurve], path: str | Path, *, metric: str = "accuracy",
                         baselines: Mapping[str, float] | None = None, title: str = "") -> Path:
    """Save a PNG: mean +- std of `metric` against examples per class (log x), baselines as horizontal lines.

    Args:
        curves: label -> LearningCurve.
        path: where the PNG goes (written atomically).
        metric: "accuracy" or "macro_f1".
        baselines: label -> score drawn as a dashed line (zero-shot, a full-data ceiling...).
        title: the plot title.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and CI
    import matplotlib.pyplot as plt

    from slmkit.data import atomic_open

    if metric not in ("accuracy", "macro_f1"):
        raise ConfigError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, curve in curves.items():
        values = getattr(curve, metric)
        mean, std = values.mean(axis=1), values.std(axis=1)
        ax.plot(curve.shots, mean, marker="o", label=label)
        ax.fill_between(curve.shots, mean - std, mean + std, alpha=0.15)
    styles = iter(["--", ":", "-.", (0, (5, 1)), (0, (1, 3))])
    for label, value in (baselines or {}).items():
        ax.axhline(value, linestyle=next(styles, "--"), color="grey", label=f"{label} ({value:.2f})")
    ax.set_xscale("log", base=2)
    all_shots = sorted({k for c in curves.values() for k in c.shots})
    ax.set_xticks(all_shots, [str(k) for k in all_shots])
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel(metric.replace("_", "-"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return Path(path)
