"""`slmkit classify ...` through typer's CliRunner: the happy path and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from slmkit.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
runner = CliRunner()


def test_fit_predict_evaluate_curve_explain(tiny_causal_dir, tmp_path):
    train = str(EXAMPLES / "sentences_en.csv")
    cache = ["--cache-dir", str(tmp_path / "cache")]  # predict and evaluate are deterministic: no --seed
    common = [*cache, "--seed", "1"]
    result = runner.invoke(app, ["classify", "fit", "--train", train, "--out", str(tmp_path / "m"),
                                 "--model", str(tiny_causal_dir), "--layers", "0.5,-1", "--cv", "3", *common])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "slmkit_config.json").is_file()
    result = runner.invoke(app, ["classify", "predict", "--model-dir", str(tmp_path / "m"), "--input", train,
                                 "--output", str(tmp_path / "p.jsonl"), *cache])
    assert result.exit_code == 0, result.output
    assert len(pd.read_json(tmp_path / "p.jsonl", lines=True)) == 40
    result = runner.invoke(app, ["classify", "evaluate", "--model-dir", str(tmp_path / "m"), "--input", train,
                                 *cache])
    assert result.exit_code == 0 and "accuracy" in result.output
    result = runner.invoke(app, ["classify", "curve", "--train", train, "--test", train, "--out",
                                 str(tmp_path / "c"), "--shots", "2,4", "--draws", "1", "--model",
                                 str(tiny_causal_dir), *common])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "curve.png").is_file()
    result = runner.invoke(app, ["classify", "explain", "--model-dir", str(tmp_path / "m"), "--input", train,
                                 "--output", str(tmp_path / "r.html"), "--limit", "2", *common])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").is_file()


def test_curve_takes_the_fit_options_that_decide_each_fit(tmp_path, monkeypatch):
    import slmkit.classify

    seen = []
    monkeypatch.setattr(slmkit.classify, "curve_tables", lambda *a, **k: seen.append(a[3]) or {"points": []})
    train = str(EXAMPLES / "sentences_en.csv")
    runner.invoke(app, ["classify", "curve", "--train", train, "--test", train, "--out", str(tmp_path / "c"),
                        "--cv", "3", "--adapt-budget", "0", "--adapt-pairs", "8"])
    assert seen and (seen[0].cv, seen[0].adapt_budget, seen[0].adapt_pairs) == (3, 0.0, 8)


def test_errors_are_one_line_with_exit_code_1(tiny_causal_dir, tmp_path):
    train = str(EXAMPLES / "sentences_en.csv")
    result = runner.invoke(app, ["classify", "fit", "--train", train, "--out", str(tmp_path / "m"), "--model",
                                 str(tiny_causal_dir), "--text-column", "sentence"])
    assert result.exit_code == 1
    assert "error:" in result.output and "missing column(s) 'sentence'" in result.output
    result = runner.invoke(app, ["classify", "fit", "--train", train, "--out", str(tmp_path / "m"), "--model",
                                 str(tiny_causal_dir), "--layers", "last"])
    assert result.exit_code == 1 and "--layers must be" in result.output
    result = runner.invoke(app, ["classify", "predict", "--model-dir", str(tmp_path), "--input", train,
                                 "--output", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "no slmkit_config.json" in result.output


def test_numeric_labels_fit_predict_and_explain_with_bootstrap(tiny_causal_dir, tmp_path):
    frame = pd.read_csv(EXAMPLES / "sentences_en.csv")
    frame["label"] = [i % 3 for i in range(len(frame))]  # 0/1/2, as sst2, ag_news and most public datasets
    train = tmp_path / "train.jsonl"
    frame.to_json(train, orient="records", lines=True)
    cache = ["--cache-dir", str(tmp_path / "cache")]  # predict and evaluate are deterministic: no --seed
    common = [*cache, "--seed", "1"]
    result = runner.invoke(app, ["classify", "fit", "--train", str(train), "--out", str(tmp_path / "m"),
                                 "--model", str(tiny_causal_dir), "--cv", "3", *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["classify", "predict", "--model-dir", str(tmp_path / "m"), "--input", str(train),
                                 "--output", str(tmp_path / "p.jsonl"), *cache])
    assert result.exit_code == 0, result.output
    assert set(pd.read_json(tmp_path / "p.jsonl", lines=True)["prediction"]) <= {0, 1, 2}
    result = runner.invoke(app, ["classify", "explain", "--model-dir", str(tmp_path / "m"), "--input", str(train),
                                 "--output", str(tmp_path / "r.html"), "--limit", "2", "--train", str(train),
                                 "--n-boot", "2", *common])
    assert result.exit_code == 0, result.output
