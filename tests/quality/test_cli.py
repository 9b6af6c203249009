"""`slmkit quality train | score | select | report` through typer's CliRunner, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from slmkit.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
runner = CliRunner()
TINY = ["--vocab-size", "400", "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--max-steps", "3"]
FAST = ["--set", "batch_size=4", "--set", "max_length=256", "--set", "report_to=none", "--set", "precision=fp32"]


def test_train_score_select_report(tmp_path, corpus_jsonl):
    pair = tmp_path / "pair"
    result = runner.invoke(
        app, ["quality", "train", str(EXAMPLES / "texts.jsonl"), "--output", str(pair), *TINY, *FAST, "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    config = json.loads((pair / "quality_config.json").read_text())
    assert config["seed"] == config["training"]["seed"] == 3 and config["training"]["max_steps"] == 3
    assert config["training"]["method"] == "full" and config["scratch"]["hidden_size"] == 32
    # --config starts from that pair's settings: only what is typed replaces them (the defaults did)
    again = tmp_path / "again"
    result = runner.invoke(app, ["quality", "train", str(EXAMPLES / "texts.jsonl"), "--output", str(again),
                                 "--config", str(pair / "quality_config.json"), "--num-layers", "2"])
    assert result.exit_code == 0, result.output
    copied = json.loads((again / "quality_config.json").read_text())
    assert copied["seed"] == copied["training"]["seed"] == 3 and copied["scratch"]["hidden_size"] == 32
    assert copied["scratch"]["vocab_size"] == 400 and copied["scratch"]["num_layers"] == 2
    assert copied["training"]["max_steps"] == 3

    scores = tmp_path / "scores"
    args = ["quality", "score", str(corpus_jsonl), "--scorer", str(pair), "--output", str(scores), "--chunk-rows", "8"]
    result = runner.invoke(app, [*args, "--max-chunks", "1"])
    assert result.exit_code == 0 and "stopped at --max-chunks" in result.output, result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "20 rows scored, 0 rejected" in result.output, result.output

    top = tmp_path / "top.jsonl"
    result = runner.invoke(
        app,
        ["quality", "select", str(scores), "--output", str(top), "--rest", str(tmp_path / "rest.parquet"),
         "--fraction", "0.5", "--stratify", "domain", "--seed", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    chosen, rest = pd.read_json(top, lines=True), pd.read_parquet(tmp_path / "rest.parquet")
    assert len(chosen) + len(rest) == 20 and chosen["domain"].value_counts().to_dict() == {"toy": 6, "examples": 4}

    result = runner.invoke(
        app,
        ["quality", "report", str(scores), "--output", str(tmp_path / "rep"), "--domain-column", "domain",
         "--compare", str(scores)],
    )  # fmt: skip
    assert result.exit_code == 0 and "overlap" in result.output and "100.0%" in result.output, result.output
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "histograms.png").is_file()


def test_select_by_combined_score_from_labels(tmp_path):
    scores = tmp_path / "scores.csv"
    frame = pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(8)],
            "S": [0.1, 0.2, -0.1, 0.0, 0.3, -0.2, 0.1, 0.0],
            "forward_loss": [3.0, 3.1, 5.0, 5.2, 3.2, 5.1, 3.3, 4.9],
            "n_tokens": [20, 30, 25, 40, 22, 35, 28, 33],
            "label": ["good", "good", "bad", "bad", "", "", "", ""],
        }
    )
    frame.to_csv(scores, index=False)
    out = tmp_path / "top.csv"
    result = runner.invoke(app, ["quality", "select", str(scores), "--output", str(out), "--combined", "--k", "2"])
    assert result.exit_code == 0 and "combined score weights" in result.output, result.output
    assert set(pd.read_csv(out)["id"]) <= {"d0", "d1", "d4", "d6"}  # the low-loss rows


def test_errors_are_one_line_and_name_the_problem(tmp_path, corpus_jsonl, scorer_dir):
    cases = [
        (["quality", "score", str(corpus_jsonl), "--scorer", str(scorer_dir), "--output", str(tmp_path / "o"),
          "--text-column", "body"], "missing column(s) 'body'"),
        (["quality", "score", str(corpus_jsonl), "--scorer", str(tmp_path), "--output", str(tmp_path / "o2")],
         "not a quality scorer folder"),
        (["quality", "score", str(corpus_jsonl), "--scorer", str(scorer_dir), "--output", str(tmp_path / "o3"),
          "--engine", "spark"], "engine must be local or ray"),
        (["quality", "select", str(tmp_path / "none.csv"), "--output", str(tmp_path / "x.csv"), "--k", "1"],
         "none.csv: no such file"),
        (["quality", "train", str(corpus_jsonl), "--output", str(tmp_path / "p"), "--route", "sideways"],
         "route must be one of"),
        (["quality", "train", str(corpus_jsonl), "--output", str(tmp_path / "p"), "--text-column", "body"],
         "corpus.jsonl: missing column(s) 'body'"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, args)
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 1 and len(errors) == 1 and message in errors[0], (args, result.output)
    scores = tmp_path / "s.csv"
    pd.DataFrame({"id": ["a"], "S": [0.1], "forward_loss": [3.0]}).to_csv(scores, index=False)
    result = runner.invoke(app, ["quality", "select", str(scores), "--output", str(tmp_path / "y.csv"), "--mode", "x",
                                 "--k", "1"])  # fmt: skip
    assert result.exit_code == 1 and "mode must be one of top, bottom, random" in result.output
