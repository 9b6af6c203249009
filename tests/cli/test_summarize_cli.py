from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from slmkit.cli.main import app
from slmkit.summarize import find_example_data

runner = CliRunner()
KO = str(find_example_data() / "dialogues_ko.csv")


def test_demo_lead(tmp_path):
    result = runner.invoke(
        app,
        ["summarize", "demo", "--method", "lead", "--output-dir", str(tmp_path), "--seed", "1"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "final" in result.output and (tmp_path / "predictions_en.csv").is_file()
    assert json.loads((tmp_path / "demo.json").read_text())["config"]["predict"]["seed"] == 1


def test_predict_then_evaluate(tmp_path):
    out = tmp_path / "pred.csv"
    result = runner.invoke(
        app, ["summarize", "predict", KO, "--output", str(out), "--method", "lead", "--lead-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out).columns) == ["fname", "summary"]
    result = runner.invoke(
        app,
        [
            "summarize",
            "evaluate",
            str(out),
            KO,
            "--tokenizer",
            "whitespace",
            "--n-bootstrap",
            "50",
            "--output-dir",
            str(tmp_path / "eval"),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "tokenizer whitespace" in result.output and "per topic" in result.output
    assert json.loads((tmp_path / "eval" / "rouge.json").read_text())["tokenizer"] == "whitespace"


def test_eda_clean_validate(tmp_path, tiny_causal_dir):
    result = runner.invoke(
        app, ["summarize", "eda", KO, "--model", str(tiny_causal_dir), "--output-dir", str(tmp_path / "eda")]
    )
    assert result.exit_code == 0, result.output
    assert "recommended max input tokens" in result.output and (tmp_path / "eda" / "report.md").is_file()
    result = runner.invoke(
        app, ["summarize", "clean", KO, "--output", str(tmp_path / "clean.csv"), "--disable", "jamo_runs"]
    )
    assert result.exit_code == 0, result.output
    assert "speaker_tags: 0 row(s) changed" in result.output and "jamo_runs" not in result.output
    result = runner.invoke(app, ["summarize", "validate", KO])
    assert result.exit_code == 0 and "12 rows, 0 issue(s)" in result.output


def test_malformed_input_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('fname,dialogue\nd0,"#Person1#: a"\nd1,"\n', encoding="utf-8")
    result = runner.invoke(
        app, ["summarize", "predict", str(bad), "--output", str(tmp_path / "p.csv"), "--method", "lead"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "row 2" in result.output and "Traceback" not in result.output
    untagged = tmp_path / "untagged.csv"
    untagged.write_text("fname,dialogue\nd0,hello there\n", encoding="utf-8")
    result = runner.invoke(app, ["summarize", "validate", str(untagged)])
    assert result.exit_code == 1 and "error: row 1 (d0)" in result.output
