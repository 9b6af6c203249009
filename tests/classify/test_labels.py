"""Labels of any type (ints, number-like strings, float-looking strings, words) survive fit -> save -> load ->
predict as the user's own labels; tables a classifier cannot learn from get one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slmkit.classify import ClassifyConfig, LMClassifier, PLRClassifier, evaluate_table, fit_classifier, predict_table
from slmkit.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
TEXTS = pd.read_csv(EXAMPLES / "sentences_en.csv")["text"].tolist()[:30]
FIXED = {"template": "{text}", "pooling": "mean", "layers": (-1,)}  # labels, not the configuration search

# (label values per row cycle, file suffix, the labels expected back from a CSV / JSONL round trip)
CASES = {
    "int-binary-jsonl": ([0, 1], ".jsonl"),
    "int-three-jsonl": ([0, 1, 2], ".jsonl"),
    "int-like-strings-csv": (["0", "1", "2"], ".csv"),
    "float-like-strings-csv": (["1.0", "2.0"], ".csv"),
    "floats-jsonl": ([1.0, 2.0], ".jsonl"),
    "words-csv": (["pos", "neg", "neutral"], ".csv"),
}


def _write(path: Path, labels: list) -> Path:
    frame = pd.DataFrame({"text": TEXTS, "label": [labels[i % len(labels)] for i in range(len(TEXTS))]})
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_labels_round_trip_through_the_table_api(name, tiny_causal_dir, tmp_path):
    labels, suffix = CASES[name]
    train = _write(tmp_path / f"train{suffix}", labels)
    config = ClassifyConfig(model=str(tiny_causal_dir), **FIXED, cv=3, cache_dir=None)
    clf, _ = fit_classifier(train, tmp_path / "m", config)
    assert clf.classes_.tolist() == sorted(labels)
    saved = json.loads((tmp_path / "m" / "slmkit_config.json").read_text())
    assert saved["classes"] == sorted(labels)  # JSON keeps 0 an int and "0" a string
    frame = predict_table(tmp_path / "m", train, tmp_path / f"pred{suffix}", cache_dir=None)
    assert set(frame["prediction"].tolist()) <= set(labels)
    assert {type(v) for v in frame["prediction"].tolist()} <= {type(v) for v in labels} | {np.int64, np.float64,
                                                                                           np.str_}
    scores = evaluate_table(tmp_path / "m", train, cache_dir=None)
    assert scores["n"] == len(TEXTS) and 0 <= scores["accuracy"] <= 1


def test_fractional_labels_become_text_labels(tiny_causal_dir, tmp_path):
    train = _write(tmp_path / "train.jsonl", [0.5, 1.5])
    config = ClassifyConfig(model=str(tiny_causal_dir), **FIXED, cv=3, cache_dir=None)
    clf, _ = fit_classifier(train, tmp_path / "m", config)
    assert clf.classes_.tolist() == ["0.5", "1.5"]
    assert evaluate_table(tmp_path / "m", train, cache_dir=None)["n"] == len(TEXTS)


def test_evaluation_matches_int_and_string_spellings_of_a_label(tiny_causal_dir, tmp_path):
    train = _write(tmp_path / "train.jsonl", [0, 1])
    config = ClassifyConfig(model=str(tiny_causal_dir), **FIXED, cv=3, cache_dir=None)
    fit_classifier(train, tmp_path / "m", config)
    as_strings = _write(tmp_path / "test.csv", ["0", "1"])
    same = evaluate_table(tmp_path / "m", train, cache_dir=None)
    assert evaluate_table(tmp_path / "m", as_strings, cache_dir=None)["accuracy"] == same["accuracy"]


@pytest.mark.parametrize("y", [np.array([0, 1, 2] * 10), np.array(["0", "1", "2"] * 10),
                               np.array(["1.0", "2.0", "3.0"] * 10), np.array(["a", "b", "c"] * 10)])
def test_python_api_keeps_labels_after_save_and_load(y, tiny_causal_dir, cache, tmp_path):
    clf = LMClassifier(str(tiny_causal_dir), **FIXED, cv=3, cache=cache, random_state=0).fit(TEXTS, y)
    clf.save(tmp_path / "m")
    loaded = LMClassifier.load(tmp_path / "m", cache=cache)
    assert loaded.classes_.tolist() == clf.classes_.tolist() == sorted(set(y.tolist()))
    np.testing.assert_array_equal(loaded.predict(TEXTS), clf.predict(TEXTS))
    assert loaded.predict(TEXTS).dtype.kind == y.dtype.kind


def test_plr_accepts_number_like_string_labels_and_class_weight_dicts():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(loc=2.0 * c, size=(15, 4)) for c in range(2)])
    y = np.repeat(["0", "1"], 15)
    clf = PLRClassifier(Cs=3, random_state=0).fit(X, y)
    assert clf.classes_.tolist() == ["0", "1"] and set(clf.predict(X)) <= {"0", "1"}
    PLRClassifier(Cs=3, class_weight={"0": 1.0, "1": 2.0}).fit(X, y)
    with pytest.raises(DataError, match=r"class_weight names label\(s\) \['2'\]"):
        PLRClassifier(Cs=3, class_weight={"2": 1.0}).fit(X, y)


@pytest.mark.parametrize(("labels", "match"), [
    (["only"] * 6, r"found only 1 class \('only'\)"),
    (["a", "b", "c", "d", "e", "f"], r"label\(s\) 'a' \(1 example\), 'b' \(1 example\)"),
])
def test_unlearnable_tables_get_one_clear_error(labels, match, tiny_causal_dir, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"text": TEXTS[: len(labels)], "label": labels}).to_csv(path, index=False)
    config = ClassifyConfig(model=str(tiny_causal_dir), cv=3, cache_dir=None)
    with pytest.raises(DataError, match="bad.csv: column 'label': " + match):
        fit_classifier(path, tmp_path / "m", config)


def test_missing_and_mixed_labels_are_named(tiny_causal_dir, tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text('text,label\n"one text",a\n"two text",\n"three",b\n')
    config = ClassifyConfig(model=str(tiny_causal_dir), cv=3, cache_dir=None)
    with pytest.raises(DataError, match="gap.csv: column 'label': row 2: missing label"):
        fit_classifier(path, tmp_path / "m", config)
    with pytest.raises(DataError, match="labels mix types"):
        LMClassifier(str(tiny_causal_dir)).fit(TEXTS[:4], np.array([1, 1, "a", "a"], dtype=object))


def test_missing_and_non_scalar_labels_are_named_by_row():
    from slmkit.classify._api import label_array

    with pytest.raises(DataError, match=r"t\.parquet: row 2: missing label"):
        label_array(pd.array(["a", None, "b"], dtype="string"), "t.parquet")  # pd.NA, not the class "<NA>"
    with pytest.raises(DataError, match=r"t\.jsonl: row 1: a label must be one value, found a list"):
        label_array([["a", "b"], "c"], "t.jsonl")


def test_one_and_one_point_zero_are_one_class_and_distinct_codes_stay_distinct():
    from slmkit.classify._api import label_array, match_labels

    # JSONL numbers written by two tools: 1 and 1.0 are one class (they were four classes for two)
    assert label_array([1, 1.0, 2, 2.0], "t.jsonl").tolist() == [1, 1, 2, 2]
    assert label_array([1.5, 1], "t.jsonl").tolist() == ["1.5", "1"]  # fractional: classes as text
    # zero-padded codes are classes of their own; a number still finds its one class
    assert match_labels(["01", "1", "2", 2, 2.0, "x"], ["1", "01", "2"]).tolist() == ["01", "1", "2", "2", "2", "x"]
    assert match_labels(["1.0"], ["1", "01"]).tolist() == ["1.0"]  # ambiguous: counted as unseen, not guessed
    assert match_labels(["1.0", 1, "1e0"], ["1", "2"]).tolist() == ["1", "1", "1"]
