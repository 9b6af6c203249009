"""Issue 11: one regression test per example the issue lists (the matrix covers the classes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from slmkit.cli.main import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
D = "#Person1#: Hello, how are you today? #Person2#: Fine, thanks. I am going to the market."


def _multi_ref(path: Path) -> Path:
    frame = pd.DataFrame({"fname": ["a", "b"], "dialogue": [D + "   ", D], "summary1": ["One  meets two.", "Hi."],
                          "summary2": ["Two people greet.", "A hello."], "summary3": ["Greeting.", "Hello."],
                          "note": ["keep me", "me too"]})
    frame.to_csv(path, index=False)
    return path


def _invoke(*argv):
    return runner.invoke(app, [str(a) for a in argv])


def test_clean_into_its_input_is_refused_and_the_input_unchanged(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    before = data.read_bytes()
    result = _invoke("summarize", "clean", data, "--output", data)
    assert result.exit_code == 1 and "is also an input" in result.output
    assert data.read_bytes() == before


def test_clean_keeps_every_column_and_every_reference(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    result = _invoke("summarize", "clean", data, "--output", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    cleaned = pd.read_csv(tmp_path / "c.csv")
    assert list(cleaned.columns) == ["fname", "dialogue", "summary1", "summary2", "summary3", "note"]
    assert cleaned["summary1"][0] == "One meets two." and cleaned["note"].tolist() == ["keep me", "me too"]
    # ... and stays multi-reference end to end: evaluation scores against all three references.
    (tmp_path / "p.csv").write_text("fname,summary\na,Greeting.\nb,Hello.\n")
    result = _invoke("summarize", "evaluate", tmp_path / "p.csv", tmp_path / "c.csv", "--n-bootstrap", "0",
                     "--output-dir", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    # The predictions equal the third references: ROUGE-1 is 100 only if every reference is kept.
    assert json.loads((tmp_path / "ev" / "rouge.json").read_text())["scores"]["rouge1"] == pytest.approx(100.0)


def test_an_existing_file_is_not_replaced_without_overwrite(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    mine = tmp_path / "mine.csv"
    mine.write_text("precious\n")
    for extra in (["--output", mine], ["--output", tmp_path / "c.csv", "--report", mine]):
        result = _invoke("summarize", "clean", data, *extra)
        assert result.exit_code == 1 and "--overwrite" in result.output and mine.read_text() == "precious\n"
    assert _invoke("summarize", "clean", data, "--output", mine, "--overwrite").exit_code == 0
    assert "dialogue" in mine.read_text()
    # What the command wrote itself it may replace on a rerun, without --overwrite.
    assert _invoke("summarize", "clean", data, "--output", mine).exit_code == 0


def test_predict_refuses_to_resume_an_output_made_another_way(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    out = tmp_path / "p.csv"
    assert _invoke("summarize", "predict", data, "--output", out, "--method", "lead").exit_code == 0
    first = out.read_bytes()
    result = _invoke("summarize", "predict", data, "--output", out, "--method", "longest")
    assert result.exit_code == 1
    assert "cannot resume" in result.output and "method=\"lead\" (now \"longest\")" in result.output
    assert out.read_bytes() == first
    # A changed input is named too.
    data.write_text(data.read_text().replace("Hello", "Hallo"))
    result = _invoke("summarize", "predict", data, "--output", out, "--method", "lead")
    assert result.exit_code == 1 and "input_sha256" in result.output
    result = _invoke("summarize", "predict", data, "--output", out, "--method", "longest", "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != first


def test_an_extractive_output_resumes_under_settings_its_rows_do_not_depend_on(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    out = tmp_path / "p.csv"
    assert _invoke("summarize", "predict", data, "--output", out, "--method", "lead").exit_code == 0
    result = _invoke("summarize", "predict", data, "--output", out, "--method", "lead", "--seed", "7", "--shots",
                     "3", "--model", "no-such-model", "--max-new-tokens", "9")
    assert result.exit_code == 0, result.output
    result = _invoke("summarize", "predict", data, "--output", out, "--method", "lead", "--lead-k", "3")
    assert result.exit_code == 1 and "lead_k=2 (now 3)" in result.output


def test_predict_refuses_an_output_it_did_not_write(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    (tmp_path / "p.csv").write_text("fname,summary\na,old\n")
    result = _invoke("summarize", "predict", data, "--output", tmp_path / "p.csv", "--method", "lead")
    assert result.exit_code == 1 and "cannot be resumed safely" in result.output


def test_predict_into_its_input_and_negative_limit_are_refused(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    before = data.read_bytes()
    assert "is also an input" in _invoke("summarize", "predict", data, "--output", data, "--method", "lead").output
    assert "limit must be >= 1" in _invoke("summarize", "predict", data, "--output", tmp_path / "p.csv",
                                           "--method", "lead", "--limit", "-1").output
    assert data.read_bytes() == before and not (tmp_path / "p.csv").exists()
    assert not (tmp_path / "p.csv.manifest.json").exists()


def test_a_stale_temp_file_from_a_killed_run_is_removed(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    (tmp_path / ".c.csv.abc123.tmp").write_text("half a file")
    assert _invoke("summarize", "clean", data, "--output", tmp_path / "c.csv").exit_code == 0
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_evaluating_zero_rows_is_an_error_not_rouge_zero(tmp_path):
    (tmp_path / "refs.csv").write_text("fname,dialogue,summary\n")
    (tmp_path / "p.csv").write_text("fname,summary\n")
    result = _invoke("summarize", "evaluate", tmp_path / "p.csv", tmp_path / "refs.csv")
    assert result.exit_code == 1 and "no data rows" in result.output and "0.00" not in result.output


@pytest.fixture(scope="module")
def artifact(tiny_causal_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "m"
    result = _invoke("classify", "fit", "--train", EXAMPLES / "sentences_en.csv", "--out", out, "--model",
                     tiny_causal_dir, "--cv", "2", "--cache-dir", out.parent / "cache")
    assert result.exit_code == 0, result.output
    return out


def test_classify_evaluate_and_explain_never_overwrite_their_input(artifact, tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes((EXAMPLES / "sentences_en.csv").read_bytes())
    for argv in (["evaluate", "--output", data], ["explain", "--output", data]):
        result = _invoke("classify", argv[0], "--model-dir", artifact, "--input", data, *argv[1:])
        assert result.exit_code == 1 and "is also an input" in result.output
    assert data.read_bytes() == (EXAMPLES / "sentences_en.csv").read_bytes()


def test_explain_json_never_replaces_its_html(artifact, tmp_path):
    result = _invoke("classify", "explain", "--model-dir", artifact, "--input", EXAMPLES / "sentences_en.csv",
                     "--output", tmp_path / "r.json", "--limit", "1")
    assert result.exit_code == 1 and "same file" in result.output


def test_evaluating_on_labels_the_classifier_never_saw(artifact, tmp_path, monkeypatch):
    import slmkit.classify._api as api

    frame = pd.read_csv(EXAMPLES / "sentences_en.csv")
    unseen = frame.assign(label="other")
    unseen.to_csv(tmp_path / "unseen.csv", index=False)
    with monkeypatch.context() as patch:  # refused from the artifact's config, before its LM is loaded
        patch.setattr(api, "load_classifier", lambda *a, **k: pytest.fail("loaded the model"))
        result = _invoke("classify", "evaluate", "--model-dir", artifact, "--input", tmp_path / "unseen.csv",
                         "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 1 and "none of its labels" in result.output
    partly = frame.copy()
    partly.loc[0, "label"] = "other"
    partly.to_csv(tmp_path / "partly.csv", index=False)
    result = _invoke("classify", "evaluate", "--model-dir", artifact, "--input", tmp_path / "partly.csv",
                     "--cache-dir", tmp_path / "cache", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert "never saw" in result.output
    assert json.loads((tmp_path / "m.json").read_text())["unseen_labels"] == ["other"]


def test_an_artifact_missing_a_file_is_named(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "slmkit_config.json").write_text(json.dumps({"kind": "slmkit.classify.LMClassifier"}))
    result = _invoke("classify", "predict", "--model-dir", tmp_path / "m", "--input", EXAMPLES / "sentences_en.csv",
                     "--output", tmp_path / "p.csv")
    assert result.exit_code == 1 and "no head.npz" in result.output


def test_labels_missing_empty_or_null_name_the_row(tmp_path):
    (tmp_path / "e.csv").write_text("text,label\na,x\nb,\nc,y\n")
    (tmp_path / "n.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n')
    for path, row in ((tmp_path / "e.csv", "row 2"), (tmp_path / "n.jsonl", "row 2")):
        result = _invoke("classify", "fit", "--train", path, "--out", tmp_path / "m")
        assert result.exit_code == 1 and row in result.output and "label" in result.output, result.output


def test_a_csv_cell_over_131072_characters_is_read(tmp_path):
    long = "word " * 40_000
    pd.DataFrame({"fname": ["a"], "dialogue": [D + " " + long], "summary": ["s"]}).to_csv(tmp_path / "d.csv",
                                                                                        index=False)
    result = _invoke("summarize", "validate", tmp_path / "d.csv")
    assert result.exit_code == 0, result.output
    assert "quoting" not in result.output


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    import slmkit.summarize

    def boom(*args, **kwargs):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(slmkit.summarize, "load_dialogues", boom)
    data = _multi_ref(tmp_path / "d.csv")
    result = _invoke("summarize", "validate", data)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error: slmkit summarize validate failed unexpectedly on ")
    assert str(data) in lines[0] and "RuntimeError: something nobody foresaw" in lines[0] and "--debug" in lines[0]
    result = _invoke("--debug", "summarize", "validate", data)
    assert result.exit_code == 1 and "Traceback" in result.output and "--debug" not in result.output.splitlines()[-1]


def test_a_predict_identity_names_a_reduced_precision_picked_by_the_environment(tmp_path, monkeypatch,
                                                                                 tiny_causal_dir):
    # dtype unset follows $SLMKIT_DTYPE (or the CPU, under "auto"): rows decoded in bf16 must not resume an
    # output decoded in float32.
    from slmkit.summarize import PredictConfig
    from slmkit.summarize._resume import predict_identity

    data = _multi_ref(tmp_path / "d.csv")
    config = PredictConfig(method="zero-shot", model=str(tiny_causal_dir))
    monkeypatch.setenv("SLMKIT_DTYPE", "float32")
    plain = predict_identity(data, config)
    monkeypatch.setenv("SLMKIT_DTYPE", "bfloat16")
    reduced = predict_identity(data, config)
    assert "precision" not in plain and reduced["precision"] == "bfloat16"


def test_predict_overwrite_keeps_the_old_output_when_the_new_run_fails_before_writing(tmp_path):
    data = _multi_ref(tmp_path / "d.csv")
    out = tmp_path / "p.csv"
    assert _invoke("summarize", "predict", data, "--method", "lead", "--output", out).exit_code == 0
    before = out.read_bytes()
    bad = tmp_path / "bad_examples.csv"
    bad.write_text("id,text\n1,hello\n")  # wrong columns: found only after the run has started
    result = _invoke("summarize", "predict", data, "--method", "few-shot", "--examples", bad, "--output", out,
                     "--overwrite")
    assert result.exit_code == 1 and "missing column" in result.output
    assert out.read_bytes() == before  # it was deleted before the new run was checked
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing set aside is left
    assert _invoke("summarize", "predict", data, "--method", "lead", "--output", out).exit_code == 0  # resumes


def test_demo_and_eda_do_not_replace_a_users_files_they_never_checked(tmp_path):
    folder = tmp_path / "mine"
    (folder / "eval_en").mkdir(parents=True)
    (folder / "eval_en" / "rouge.json").write_text("my own numbers")
    result = _invoke("summarize", "demo", "--method", "lead", "--languages", "en", "--output-dir", folder)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (folder / "eval_en" / "rouge.json").read_text() == "my own numbers"
    (tmp_path / "eda").mkdir()
    (tmp_path / "eda" / "topics.png").write_text("my plot")
    data = _multi_ref(tmp_path / "d.csv")
    result = _invoke("summarize", "eda", data, "--output-dir", tmp_path / "eda", "--model", "none")
    assert result.exit_code == 1 and (tmp_path / "eda" / "topics.png").read_text() == "my plot"
    # a folder the command made itself is rerun without --overwrite, its reports and plots replaced
    assert _invoke("summarize", "demo", "--method", "lead", "--languages", "en", "--output-dir",
                   tmp_path / "d").exit_code == 0
    assert _invoke("summarize", "demo", "--method", "lead", "--languages", "en", "--output-dir",
                   tmp_path / "d").exit_code == 0
