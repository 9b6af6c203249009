from __future__ import annotations

import json

from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == "0.1.0"


def test_models_list_shows_builtins():
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("gemma3-270m", "smollm2-135m", "minilm-l6"):
        assert name in result.output


def test_models_list_keeps_names_whole_on_a_narrow_terminal():
    # rich assumes 80 columns in a pipe; the wide table used to cut names to "gemma3…" there
    from slmkit.models import model_statuses
    from slmkit.models._inventory import engine_statuses

    for width in ("80", "60"):
        result = runner.invoke(app, ["models", "list"], env={"COLUMNS": width})
        assert result.exit_code == 0, result.output
        assert "…" not in result.output and max(len(line) for line in result.output.splitlines()) <= int(width)
        for status in model_statuses():
            assert status.spec.name in result.output and status.spec.package in result.output
        for status in engine_statuses():
            assert status.backend in result.output
        assert result.output.count("slmkit models") == 1  # the title once (it was printed twice)


def test_models_list_json_for_scripts():
    from slmkit.models import model_statuses

    result = runner.invoke(app, ["models", "list", "--json"], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert [m["name"] for m in listing["models"]] == [s.spec.name for s in model_statuses()]
    assert {e["backend"] for e in listing["engines"]} == {"transformers", "ctranslate2", "llamacpp"}
    assert all(isinstance(m["installed"], bool) for m in listing["models"]) and listing["cache"]


def test_models_list_shows_engines_and_their_precisions():
    import importlib.util

    from slmkit.models._inventory import engine_statuses

    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {s.backend: s for s in engine_statuses()}
    assert set(rows) == {"transformers", "ctranslate2", "llamacpp"} and rows["transformers"].available
    assert rows["ctranslate2"].available == (importlib.util.find_spec("ctranslate2") is not None)
    assert rows["llamacpp"].available == (importlib.util.find_spec("llama_cpp") is not None)
    assert "int8, float32" in result.output and "ctranslate2" in result.output
    from slmkit.models._precision import cpu_native_bf16

    auto = "bfloat16" if cpu_native_bf16() else "float32"
    assert f"auto = {auto} on this CPU" in rows["transformers"].note and "keep_tokens" in rows["ctranslate2"].note


def test_unknown_model_is_one_line_error():
    result = runner.invoke(app, ["lm", "generate", "hi", "--model", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: unknown model 'nope'")
    assert "Traceback" not in result.output


def test_demo_writes_report(tiny_causal_dir, tmp_path):
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\na,hello there\nb,오늘 날씨가 좋네요\nc,the cat sat on the mat\n", encoding="utf-8")
    out = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["lm", "demo", "--input", str(texts), "--model", str(tiny_causal_dir), "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [r["id"] for r in report["texts"]] == ["a", "b", "c"]
    assert "seed" not in report["config"] and len(report["config"]["input_sha256"]) == 64
    assert all(r["perplexity"] > 1 and "continuation" in r for r in report["texts"])


def test_embed_and_losses_commands(tiny_causal_dir, tmp_path):
    import numpy as np

    texts = tmp_path / "t.jsonl"
    texts.write_text('{"id": "x", "body": "hello"}\n{"id": "y", "body": "world wide"}\n')
    npy = tmp_path / "e.npy"
    result = runner.invoke(
        app,
        [
            "lm",
            "embed",
            str(texts),
            "--text-column",
            "body",
            "--output",
            str(npy),
            "--model",
            str(tiny_causal_dir),
            "--layers",
            "0,-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert np.load(npy).shape == (2, 64)
    jsonl = tmp_path / "l.jsonl"
    result = runner.invoke(
        app,
        ["lm", "losses", str(texts), "--text-column", "body", "--output", str(jsonl), "--model", str(tiny_causal_dir)],
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in jsonl.read_text().splitlines()] == ["x", "y"]


def test_bad_input_names_file_row_and_column(tiny_causal_dir, tmp_path):
    texts = tmp_path / "t.csv"
    texts.write_text('text\nfine\n""\n')
    result = runner.invoke(
        app, ["lm", "losses", str(texts), "--output", str(tmp_path / "o.jsonl"), "--model", str(tiny_causal_dir)]
    )
    assert result.exit_code == 1
    assert "t.csv: row 2, column 'text': empty text" in result.output
    assert not (tmp_path / "o.jsonl").exists()
