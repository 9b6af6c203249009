"""Tens-of-shot text classification (Buckmann & Hill 2024): penalised logistic regression on small-LM embeddings.

Example:
    >>> from slmkit.classify import LMClassifier
    >>> clf = LMClassifier()  # template, pooling and layers chosen by CV on the training data in fit
    >>> clf.fit(texts, labels).predict(["A wonderful, moving film."])
    >>> clf.auto_.table[clf.auto_.chosen]  # what was chosen, with its CV score
"""

from __future__ import annotations

from slmkit.classify._api import (
                                  ClassifyConfig,
                                  curve_tables,
                                  evaluate_table,
                                  explain_table,
                                  fit_classifier,
                                  predict_table,
)
from slmkit.classify._artifact import load_classifier, read_config, save_classifier
from slmkit.classify._auto import AutoReport
from slmkit.classify._cache import EmbeddingCache
from slmkit.classify._classifier import DEFAULT_TEMPLATE, LMClassifier
from slmkit.classify._curves import LearningCurve, learning_curve, plot_learning_curves, sample_per_class
from slmkit.classify._embedder import LMEmbedder
from slmkit.classify._explain import Explanation, explain
from slmkit.classify._global import StabilityReport, explanation_stability, global_explanation
from slmkit.classify._plr import PLRClassifier
from slmkit.classify._report import render_html, write_html_report
from slmkit.classify._segment import Span
from slmkit.classify._zeroshot import ZeroShotClassifier

__all__ = [
    "DEFAULT_TEMPLATE",
    "AutoReport",
    "ClassifyConfig",
    "EmbeddingCache",
    "Explanation",
    "LMClassifier",
    "LMEmbedder",
    "LearningCurve",
    "PLRClassifier",
    "Span",
    "StabilityReport",
    "ZeroShotClassifier",
    "curve_tables",
    "evaluate_table",
    "explain",
    "explain_table",
    "explanation_stability",
    "fit_classifier",
    "global_explanation",
    "learning_curve",
    "load_classifier",
    "plot_learning_curves",
    "predict_table",
    "read_config",
    "render_html",
    "sample_per_class",
    "save_classifier",
    "write_html_report",
]
