"""What a new user meets: default commands work, say what they do from the start, and fail fast on bad input."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()

ROWS = [
    ("t0", "#Person1#: 병원에 가야 해.\n#Person2#: 어디가 아파?"),
    ("t1", "#Person1#: 시험이 내일이야.\n#Person2#: 같이 공부하자."),
]


@pytest.fixture
def dialogues(tmp_path):
    path = tmp_path / "dialogues.csv"
    pd.DataFrame(ROWS, columns=["fname", "dialogue"]).to_csv(path, index=False)
    return path


def test_few_shot_predict_needs_no_examples_and_shows_status(dialogues, tmp_path, tiny_causal_dir):
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "summarize",
            "predict",
            str(dialogues),
            "--output",
            str(out),
            "--model",
            str(tiny_causal_dir),
            "--language",
            "ko",
            "--max-new-tokens",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "loading model" in result.output and "done in" in result.output
    assert "built-in pool of 16 Korean dialogues" in result.output
    assert "slmkit.summarize" not in result.output  # messages in the user's words, not the module's
    assert len(pd.read_csv(out)) == 2


@pytest.mark.parametrize("bad", ["missing-input", "missing-examples"])
def test_a_missing_input_fails_before_any_model_loads(bad, dialogues, tmp_path, monkeypatch):
    import slmkit.models

    loads = []
    monkeypatch.setattr(slmkit.models, "load_model", lambda *a, **k: loads.append(a))
    source = str(tmp_path / "nope.csv") if bad == "missing-input" else str(dialogues)
    args = ["summarize", "predict", source, "--output", str(tmp_path / "out.csv")]
    if bad == "missing-examples":
        args += ["--examples", str(tmp_path / "nope.csv")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "nope.csv" in result.output and "Traceback" not in result.output
    assert loads == []


def test_python_warnings_become_one_line_and_library_deprecations_are_dropped(capsys):
    from slmkit.cli._common import _show_warning

    _show_warning(UserWarning("2 text(s) exceed 512 tokens\nand were truncated"), UserWarning, "/x/y.py", 7)
    _show_warning(FutureWarning("`x` is deprecated"), FutureWarning, "/lib/transformers/z.py", 9)
    assert capsys.readouterr().err == "warning: 2 text(s) exceed 512 tokens and were truncated\n"
