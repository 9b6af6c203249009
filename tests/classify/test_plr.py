"""PLRClassifier: sklearn's estimator checks, penalties, class weights, the folded scaler."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from slmkit.classify import PLRClassifier
from slmkit.errors import DataError


def numeric_blobs(n_per_class: int = 20, n_classes: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(loc=2.0 * c, size=(n_per_class, 5)) for c in range(n_classes)])
    return X, np.repeat(np.arange(n_classes), n_per_class)


# Small grids keep sklearn's ~60 checks per estimator fast; the defaults are exercised by the tests below.
@parametrize_with_checks([PLRClassifier(Cs=3, max_iter=300), PLRClassifier(penalty="l1", Cs=3, max_iter=300),
                          PLRClassifier(penalty="elasticnet", Cs=2, l1_ratios=(0.5,), max_iter=300)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_folded_coefficients_reproduce_standardised_model():
    X, y = numeric_blobs()
    X = X * np.array([1, 10, 100, 0.1, 1]) + 5  # wildly different scales: standardisation matters
    clf = PLRClassifier(random_state=0).fit(X, y)
    inner = clf.estimator_.decision_function(clf.scaler_.transform(X))
    np.testing.assert_allclose(clf.decision_function(X), inner, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
def test_penalties_fit_multiclass(penalty):
    X, y = numeric_blobs(n_classes=3)
    clf = PLRClassifier(penalty=penalty, Cs=5, random_state=0).fit(X, y)
    assert clf.coef_.shape == (3, 5)
    assert clf.predict_proba(X).shape == (60, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    assert (clf.predict(X) == y).mean() > 0.8
    assert clf.l1_ratio_ == {"l2": 0.0, "l1": 1.0}.get(penalty, clf.l1_ratio_)


def test_l1_gives_sparse_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 30))
    y = (X[:, 0] > 0).astype(int)
    clf = PLRClassifier(penalty="l1", Cs=[0.05], random_state=0).fit(X, y)
    assert (np.abs(clf.coef_[0]) > 1e-8).sum() < 10


def test_balanced_weights_help_the_rare_class():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (90, 4)), rng.normal(0.8, 1, (10, 4))])
    y = np.array([0] * 90 + [1] * 10)
    rare_balanced = (PLRClassifier(Cs=4, random_state=0).fit(X, y).predict(X) == 1).sum()
    rare_plain = (PLRClassifier(Cs=4, class_weight=None, random_state=0).fit(X, y).predict(X) == 1).sum()
    assert rare_balanced > rare_plain


def test_seeded_fits_are_identical():
    X, y = numeric_blobs(n_classes=3, seed=3)
    a = PLRClassifier(random_state=7).fit(X, y)
    b = PLRClassifier(random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_label_with_one_example_is_named():
    X, y = numeric_blobs()
    y = np.where(y == 0, "a", "b").astype(object)
    y[0] = "lonely"
    with pytest.raises(DataError, match="'lonely' \\(1 example\\).*fewer than 2"):
        PLRClassifier().fit(X, y)


def test_bad_grid_is_rejected():
    X, y = numeric_blobs()
    with pytest.raises(DataError, match="Cs must be positive"):
        PLRClassifier(Cs=[0.1, -1.0]).fit(X, y)
