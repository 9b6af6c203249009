"""Learning curves: nested seeded draws, scores per draw, a PNG plot; refits hit the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from slmkit.classify import LMClassifier, learning_curve, plot_learning_curves, sample_per_class
from slmkit.errors import ConfigError


def test_sample_per_class_is_nested_and_seeded():
    y = np.array(["a"] * 10 + ["b"] * 3)
    small, large = sample_per_class(y, 2, seed=4), sample_per_class(y, 5, seed=4)
    assert set(small) <= set(large)
    assert (y[large] == "b").sum() == 3  # a class with fewer examples gives all it has
    np.testing.assert_array_equal(small, sample_per_class(y, 2, seed=4))
    assert not np.array_equal(sample_per_class(y, 5, seed=4), sample_per_class(y, 5, seed=5))


def test_curve_refits_from_cache_and_plots(tiny_causal_dir, en_data, cache, tmp_path):
    texts, y = en_data
    clf = LMClassifier(str(tiny_causal_dir), Cs=3, cv=2, cache=cache, random_state=0)
    clf.fit(texts, y)  # embeds everything once
    misses = cache.misses
    curve = learning_curve(clf, texts, y, texts, y, shots=(2, 4, 8), draws=2, seed=1)
    assert cache.misses == misses  # no LM call for any draw
    assert curve.accuracy.shape == (3, 2) and curve.macro_f1.shape == (3, 2)
    assert ((curve.accuracy >= 0) & (curve.accuracy <= 1)).all()
    np.testing.assert_array_equal(curve.n_train[:, 0], [4, 8, 16])
    fits = []
    again = learning_curve(clf, texts, y, texts, y, shots=(2, 4, 8), draws=2, seed=1,
                           on_fit=lambda k, d, model: fits.append((k, d, len(model.classes_))))
    np.testing.assert_array_equal(curve.accuracy, again.accuracy)
    assert fits == [(k, d, 2) for d in range(2) for k in (2, 4, 8)]  # every fitted clone, in order
    summary = curve.to_dict()
    assert summary["shots"] == [2, 4, 8] and len(summary["points"]["4"]["accuracy"]) == 2
    png = plot_learning_curves({"tiny": curve}, tmp_path / "curve.png", baselines={"zero-shot": 0.5})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_budgets_are_rejected(en_data):
    texts, y = en_data
    with pytest.raises(ConfigError, match="shots >= 2"):
        learning_curve(None, texts, y, texts, y, shots=(1, 4))
