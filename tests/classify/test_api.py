"""Table-level API behind the CLI: fit -> artifact -> predict / evaluate / explain, curve, clear data errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from slmkit.classify import ClassifyConfig, curve_tables, evaluate_table, explain_table, fit_classifier, predict_table
from slmkit.errors import ConfigError, DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture()
def config(tiny_causal_dir, tmp_path):
    return ClassifyConfig(model=str(tiny_causal_dir), cv=3, cache_dir=str(tmp_path / "cache"))


def test_fit_predict_evaluate_explain(config, tmp_path):
    train = EXAMPLES / "sentences_en.csv"
    config = replace(config, pooling="mean")  # global words and stability need exact (mean-pooled) contributions
    _, metrics = fit_classifier(train, tmp_path / "model", config)
    assert (tmp_path / "model" / "metrics.json").is_file() and 0 <= metrics["train"]["accuracy"] <= 1
    saved = json.loads((tmp_path / "model" / "slmkit_config.json").read_text())
    assert saved["data_fingerprint"] and saved["seed"] == 0
    frame = predict_table(tmp_path / "model", train, tmp_path / "pred.csv", cache_dir=config.cache_dir)
    written = pd.read_csv(tmp_path / "pred.csv")
    assert list(written.columns) == ["text", "label", "prediction", "probability"] and len(written) == len(frame)
    scores = evaluate_table(tmp_path / "model", train, output_path=tmp_path / "eval.json", cache_dir=config.cache_dir)
    assert scores["n"] == 40 and (tmp_path / "eval.json").is_file()
    result = explain_table(tmp_path / "model", train, tmp_path / "report.html", limit=3, train_path=train,
                           n_boot=2, cache_dir=config.cache_dir)
    assert len(result["explanations"]) == 3 and "stability" in result and "global" in result
    assert (tmp_path / "report.json").is_file() and "<html" in (tmp_path / "report.html").read_text()
    for n_boot, train_path in ((2, None), (1, train)):  # stability asked for but not measurable: said, not ignored
        with pytest.raises(ConfigError, match="stability needs at least 2 re-fits"):
            explain_table(tmp_path / "model", train, tmp_path / "r2.html", train_path=train_path, n_boot=n_boot)


def test_curve_writes_json_and_png(config, tmp_path):
    train = EXAMPLES / "sentences_ko.csv"
    result = curve_tables(train, train, tmp_path / "curve", config, shots=(2, 4, 500), draws=2)
    assert result["shots"] == [2, 4]  # 500 per class is more than any class has: not reported as a budget
    assert result["skipped_shots"]["shots"] == [500] and result["skipped_shots"]["smallest_class_count"] < 500
    only = curve_tables(train, train, tmp_path / "small", config, shots=(500,), draws=1)  # all over: the pool
    assert only["shots"] == [result["skipped_shots"]["smallest_class_count"]]
    saved = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert saved["config"]["seed"] == config.seed and saved["versions"]["slmkit"]
    assert [(f["k"], f["draw"]) for f in saved["fits"]] == [(2, 0), (4, 0), (2, 1), (4, 1)]
    assert all(f["template"] != "auto" and f["model_checksum"] for f in saved["fits"])  # what was used
    assert (tmp_path / "curve" / "curve.png").is_file() and (tmp_path / "curve" / "curve.json").is_file()


def test_data_errors_name_file_row_and_column(config, tmp_path):
    single = tmp_path / "single.csv"
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "x", "y"]}).to_csv(single, index=False)
    with pytest.raises(DataError, match=r"single.csv: column 'label': label\(s\) 'y' \(1 example\)"):
        fit_classifier(single, tmp_path / "m", config)
    empty = tmp_path / "empty.csv"
    empty.write_text('text,label\n"fine text",x\n"",y\n')
    with pytest.raises(DataError, match="empty.csv: row 2, column 'text': empty text"):
        fit_classifier(empty, tmp_path / "m", config)
    with pytest.raises(DataError, match="missing column.*'sentence'"):
        fit_classifier(EXAMPLES / "sentences_en.csv", tmp_path / "m",
                       ClassifyConfig(model=config.model, text_column="sentence", cache_dir=None))


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="pooling"):
        ClassifyConfig(pooling="max")
    with pytest.raises(ConfigError, match="exactly once"):
        ClassifyConfig(template="no slot")
