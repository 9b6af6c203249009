"""LMClassifier: sklearn contract (clone, Pipeline, CV, grid search), determinism, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from slmkit.classify import LMClassifier, LMEmbedder, PLRClassifier, ZeroShotClassifier, load_classifier
from slmkit.errors import DataError


@pytest.mark.parametrize("make", [
    lambda d, c: LMClassifier(d, cache=c), lambda d, c: LMEmbedder(d, cache=c),
    lambda d, c: ZeroShotClassifier(d, label_words={0: " no", 1: " yes"}, cache=c),
])
@pytest.mark.parametrize("check", [check_parameters_default_constructible, check_no_attributes_set_in_init,
                                   check_get_params_invariance, check_set_params])
def test_generic_sklearn_checks(tiny_causal_dir, cache, make, check):
    # sklearn skips its data checks for text input (string tag); these are the ones that apply.
    estimator = make(str(tiny_causal_dir), cache)
    check(type(estimator).__name__, estimator)


def test_fit_predict_shapes(fitted, en_data):
    texts, _ = en_data
    assert list(fitted.classes_) == ["negative", "positive"]
    assert fitted.predict(texts[:5]).shape == (5,)
    proba = fitted.predict_proba(texts[:5])
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.decision_function(texts[:5]).shape == (5,)
    assert fitted.transform(texts[:5]).shape == (5, 64)


def test_seeded_fit_is_deterministic(tiny_causal_dir, en_data, session_cache):
    texts, y = en_data
    a = LMClassifier(str(tiny_causal_dir), cv=3, random_state=3, cache=session_cache).fit(texts, y)
    b = LMClassifier(str(tiny_causal_dir), cv=3, random_state=3, cache=session_cache).fit(texts, y)
    np.testing.assert_array_equal(a.head_.coef_, b.head_.coef_)


def test_pipeline_cross_val_and_grid_search(tiny_causal_dir, en_data, session_cache):
    texts, y = en_data
    pipe = make_pipeline(LMEmbedder(str(tiny_causal_dir), cache=session_cache), PLRClassifier(Cs=3, cv=3))
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, texts, y, cv=folds)
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    grid = GridSearchCV(LMClassifier(str(tiny_causal_dir), Cs=3, cv=3, cache=session_cache),
                        {"pooling": ["mean", "last"], "layers": [(-1,), (1, -1)]}, cv=folds).fit(texts, y)
    assert grid.best_params_["pooling"] in ("mean", "last")
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    assert clone(grid.best_estimator_).get_params()["cache"] is session_cache


def test_multiclass_korean(tiny_causal_dir, ko_data, en_data, session_cache):
    texts = ko_data[0] + en_data[0][:20]
    y = np.array(list(ko_data[1]) + ["영어"] * 20)
    clf = LMClassifier(str(tiny_causal_dir), cv=3, random_state=0, cache=session_cache).fit(texts, y)
    assert clf.decision_function(texts).shape == (len(texts), 3)
    assert set(clf.predict(texts)) <= set(y)


def test_save_load_round_trip(fitted, en_data, tmp_path, session_cache):
    texts, _ = en_data
    fitted.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "slmkit_config.json").read_text())
    assert config["params"]["template"] == "Review: {text}\nAnswer:"
    assert config["model"]["checksum"] == fitted.embedder_.model_info_["checksum"]
    assert {"slmkit", "sklearn", "torch", "transformers"} <= set(config["versions"])
    assert config["classes"] == ["negative", "positive"] and config["layers_resolved"] == [1, 2]
    loaded = LMClassifier.load(tmp_path / "model", cache=session_cache)
    np.testing.assert_allclose(loaded.decision_function(texts), fitted.decision_function(texts), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(texts), fitted.predict(texts))


def test_load_warns_when_the_model_changed(fitted, tmp_path, session_cache):
    fitted.save(tmp_path / "model")
    path = tmp_path / "model" / "slmkit_config.json"
    config = json.loads(path.read_text())
    config["model"]["checksum"] = "0" * 64
    path.write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="checksum"):
        load_classifier(tmp_path / "model", cache=session_cache)


def test_load_rejects_a_foreign_directory(tmp_path):
    with pytest.raises(DataError, match="no slmkit_config.json"):
        load_classifier(tmp_path)


def test_errors_name_the_problem(tiny_causal_dir, session_cache):
    clf = LMClassifier(str(tiny_causal_dir), cache=session_cache)
    with pytest.raises(DataError, match="'b' \\(1 example\\)"):
        clf.fit(["one", "two", "three"], ["a", "a", "b"])
    with pytest.raises(DataError, match="row 2: empty text"):
        clf.fit(["one", "", "three", "four"], ["a", "a", "b", "b"])
    with pytest.raises(DataError, match="3 texts but y has 2"):
        clf.fit(["one", "two", "three"], ["a", "b"])
