"""`slmkit train pairs | docs | scratch | merge` on tiny models, MLflow logging to the run folder included."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from slmkit.cli.main import app
from slmkit.testing import TOY_TEXTS

runner = CliRunner()
QUICK = ["--set", "max_steps=3", "--set", "precision=fp32", "--set", "batch_size=4", "--set", "logging_steps=1"]


def test_pairs_logs_to_mlflow_and_merges(tiny_causal_dir, tmp_path):
    table = tmp_path / "pairs.jsonl"
    pd.DataFrame({"prompt": [f"Q: {t}\nA:" for t in TOY_TEXTS], "target": [" " + t[:10] for t in TOY_TEXTS]}).to_json(
        table, orient="records", lines=True
    )
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "pairs",
            str(table),
            "--output",
            str(run),
            "--model",
            str(tiny_causal_dir),
            *QUICK,
            "--set",
            "lora_r=4",
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((run / "train_config.json").read_text())
    assert config["lora_r"] == 4 and config["seed"] == 3 and config["report_to"] == "mlflow"
    # MLflow's file store inside the run folder holds the logged training loss.
    metric_files = list((run / "mlruns").rglob("metrics/loss"))
    assert metric_files and metric_files[0].read_text().strip()
    merged = tmp_path / "merged"
    assert runner.invoke(app, ["train", "merge", str(run), "--output", str(merged)]).exit_code == 0
    assert (merged / "config.json").is_file()
    result = runner.invoke(app, ["train", "merge", str(run), "--output", str(merged)])
    assert result.exit_code == 1 and "already exists" in result.output


def test_scratch_then_docs_reverse(tmp_path):
    corpus = tmp_path / "corpus.csv"
    pd.DataFrame({"text": TOY_TEXTS * 4}).to_csv(corpus, index=False)
    model = tmp_path / "scratch"
    result = runner.invoke(
        app,
        [
            "train",
            "scratch",
            str(corpus),
            "--output",
            str(model),
            "--vocab-size",
            "400",
            "--hidden-size",
            "32",
            "--num-layers",
            "1",
            "--num-heads",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "rev"
    result = runner.invoke(
        app,
        [
            "train",
            "docs",
            str(corpus),
            "--output",
            str(run),
            "--model",
            str(model),
            "--reverse",
            *QUICK,
            "--set",
            "max_length=32",
            "--set",
            "report_to=none",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "slmkit_run.json").read_text())["method"] == "full"


def test_bad_set_values_are_named(tiny_causal_dir, tmp_path):
    table = tmp_path / "p.csv"
    pd.DataFrame({"prompt": ["a"], "target": ["b"]}).to_csv(table, index=False)
    for bad, message in (
        (["--set", "lora_rank=4"], "TrainConfig field"),
        (["--set", "lora_r=four"], "not a valid int"),
        (["--set", "epochs=0"], "epochs must be > 0"),
    ):
        result = runner.invoke(
            app, ["train", "pairs", str(table), "--output", str(tmp_path / "r"), "--model", str(tiny_causal_dir), *bad]
        )
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_a_config_file_keeps_its_method_and_seed_unless_the_option_is_typed(tiny_causal_dir, tmp_path):
    table = tmp_path / "pairs.jsonl"
    pd.DataFrame({"prompt": [f"Q: {t}\nA:" for t in TOY_TEXTS], "target": [" " + t[:10] for t in TOY_TEXTS]}).to_json(
        table, orient="records", lines=True
    )
    previous = tmp_path / "previous.json"
    previous.write_text(json.dumps({"method": "full", "seed": 7, "max_steps": 1, "report_to": "none"}))
    for name, extra, method, seed in (("kept", [], "full", 7), ("typed", ["--method", "lora", "--seed", "5"],
                                                                         "lora", 5)):
        run = tmp_path / name
        result = runner.invoke(app, ["train", "pairs", str(table), "--output", str(run), "--model",
                                     str(tiny_causal_dir), "--config", str(previous), *QUICK, *extra])
        assert result.exit_code == 0, result.output
        config = json.loads((run / "train_config.json").read_text())
        assert (config["method"], config["seed"]) == (method, seed)
