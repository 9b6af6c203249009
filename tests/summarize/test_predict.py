from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from slmkit.errors import ConfigError, DataError
from slmkit.summarize import PredictConfig, evaluate, load_dialogues, predict, predict_frame

ROWS = [
    ("d0", "#Person1#: 병원에 가야 해.\n#Person2#: 어디가 아파?", "#Person1#은 병원에 가야 한다.", "건강"),
    ("d1", "#Person1#: 시험이 내일이야.\n#Person2#: 같이 공부하자.", "#Person2#는 같이 공부하자고 한다.", "학교"),
    ("d2", "#Person1#: 배고파.\n#Person2#: 밥 먹으러 가자.", "둘은 밥을 먹으러 간다.", "건강"),
]


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "dev.csv"
    pd.DataFrame(ROWS, columns=["fname", "dialogue", "summary", "topic"]).to_csv(path, index=False)
    return path


class CountingSummarizer:
    def __init__(self):
        self.seen = []

    def summarize(self, dialogues, ids=None):
        self.seen += list(ids)
        return [f"summary of {i}" for i in ids]


def test_predict_writes_fname_summary_and_resumes(table, tmp_path):
    out = tmp_path / "pred.csv"
    first = CountingSummarizer()
    frame = load_dialogues(table)
    predict_frame(frame, out, first, chunk_size=1, limit=2)
    assert first.seen == ["d0", "d1"] and list(pd.read_csv(out).columns) == ["fname", "summary"]
    second = CountingSummarizer()
    result = predict_frame(frame, out, second, chunk_size=2)
    assert second.seen == ["d2"] and list(result["fname"]) == ["d0", "d1", "d2"]
    assert predict_frame(frame, out, None)["summary"].iloc[2] == "summary of d2"  # nothing left: no summarizer needed


def test_predict_refuses_output_of_another_input(table, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("fname,summary\nother_9,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="'other_9' is not in the input"):
        predict(table, out, PredictConfig(method="lead"))


def test_predict_lead_then_evaluate_per_topic(table, tmp_path):
    out = tmp_path / "pred.csv"
    predict(table, out, PredictConfig(method="lead", lead_k=1))
    report = evaluate(out, table, n_bootstrap=100)
    assert report.language == "ko" and report.result.tokenizer == "kiwi"
    assert list(report.per_topic["topic"]) == ["건강", "학교"] and list(report.per_topic["n"]) == [2, 1]
    assert report.per_example.shape[0] == 3
    assert report.result.summary()["final"] > 0
    saved = report.save(tmp_path / "eval")
    assert (saved / "rouge.json").is_file() and (saved / "per_topic.csv").is_file()


def test_evaluate_alignment_errors(table, tmp_path):
    partial = tmp_path / "partial.csv"
    partial.write_text("fname,summary\nd0,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="no prediction for 2 of 3 reference row"):
        evaluate(partial, table)
    extra = tmp_path / "extra.csv"
    extra.write_text("fname,summary\nd0,x\nd1,y\nd2,z\ntest_5,w\n", encoding="utf-8")
    with pytest.raises(DataError, match="'test_5'"):
        evaluate(extra, table)
    frame = pd.DataFrame({"fname": ["d0", "d1", "d2", "d0"], "summary": ["a", "b", "c", "zzz"]})
    with pytest.raises(DataError, match=r"row 4, column 'fname': duplicate id 'd0'"):  # a frame kept the last
        evaluate(frame, table)


def test_config_validation():
    with pytest.raises(ConfigError, match="method must be one of"):
        PredictConfig(method="beam")
    with pytest.raises(ConfigError, match="max_new_tokens must be >= 1"):
        PredictConfig(method="lead", max_new_tokens=0)


def test_few_shot_predict_with_tiny_model(table, tmp_path, tiny_causal_dir):
    config = PredictConfig(
        method="few-shot", model=str(tiny_causal_dir), examples=str(table), shots=1, max_new_tokens=6
    )
    # The examples table is the input itself: each row's own reference must never be its example.
    frame = predict(table, tmp_path / "pred.csv", config)
    assert len(frame) == 3


def test_an_example_pool_needs_no_id_column_but_its_ids_if_given_are_checked(tmp_path):
    from slmkit.summarize._predict import _load_pool

    pool = tmp_path / "pool.csv"
    pd.DataFrame({"dialogue": ["#Person1#: Hi.", "#Person1#: Bye."], "summary": ["A greets.", "A leaves."]}).to_csv(
        pool, index=False)
    frame = _load_pool(PredictConfig(method="few-shot", examples=str(pool)), "en", set())
    assert list(frame["fname"]) == ["pool.csv:1", "pool.csv:2"] and list(frame["summary"]) == ["A greets.", "A leaves."]
    pd.read_csv(pool).assign(fname=["x", "x"]).to_csv(pool, index=False)
    with pytest.raises(DataError, match="row 2, column 'fname': duplicate id 'x'"):
        _load_pool(PredictConfig(method="few-shot", examples=str(pool)), "en", set())


def test_few_shot_without_examples_uses_the_built_in_pool(table, tmp_path, tiny_causal_dir, caplog):
    from slmkit.summarize import builtin_examples

    for language in ("ko", "en"):
        assert len(load_dialogues(builtin_examples(language), require_summary=True)) >= 16
    config = PredictConfig(method="few-shot", model=str(tiny_causal_dir), language="ko", shots=1, max_new_tokens=4)
    with caplog.at_level("WARNING"):
        frame = predict(table, tmp_path / "pred.csv", config)
    assert len(frame) == 3
    assert "built-in pool of 16 Korean dialogues" in caplog.text and "--examples" in caplog.text


def test_a_missing_example_table_fails_before_any_model_loads(table, tmp_path, monkeypatch):
    import slmkit.models

    loads = []
    monkeypatch.setattr(slmkit.models, "load_model", lambda *a, **k: loads.append(a) or pytest.fail("model loaded"))
    with pytest.raises(DataError, match="nope.csv"):
        predict(table, tmp_path / "pred.csv", PredictConfig(method="few-shot", examples=str(tmp_path / "nope.csv")))
    assert loads == [] and not (tmp_path / "pred.csv").exists()


def test_keep_tokens_trims_the_output_layer_to_the_table_and_the_input(table, tmp_path, tiny_causal_dir):
    from typer.testing import CliRunner

    from slmkit.cli.main import app
    from slmkit.models._base import kept_token_ids
    from slmkit.summarize import build_summarizer

    vocab = tmp_path / "train.csv"
    # a plain dialogue/summary table: only the table being summarized needs ids
    pd.DataFrame({"dialogue": ["#Person1#: 안녕"], "summary": ["인사를 한다."]}).to_csv(vocab, index=False)
    inputs = ["#Person1#: 내일 비가 온대."]
    config = PredictConfig(method="zero-shot", model=str(tiny_causal_dir), max_new_tokens=4, keep_tokens=str(vocab))
    lm = build_summarizer(config, "ko", dialogues=inputs).lm
    expected = kept_token_ids(lm.tokenizer, ["인사를 한다.", "#Person1#: 안녕", *inputs])
    assert lm.model.get_output_embeddings().kept.tolist() == expected and lm.info["kept_tokens"] == len(expected)
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["summarize", "predict", str(table), "--output", str(out), "--method",
                                      "zero-shot", "--model", str(tiny_causal_dir), "--max-new-tokens", "4",
                                      "--keep-tokens", str(vocab)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out)["fname"]) == ["d0", "d1", "d2"]
    with pytest.raises(ConfigError, match="keep_tokens needs the transformers or ctranslate2 backend"):
        PredictConfig(backend="llamacpp", keep_tokens=str(vocab))


def test_a_trimmed_model_reuses_the_untrimmed_models_few_shot_vectors(table, tmp_path, tiny_causal_dir, caplog):
    """Trimming the output layer leaves embeddings alone, so the pool is not embedded again for each input."""
    config = PredictConfig(method="few-shot", model=str(tiny_causal_dir), examples=str(table), shots=1,
                           max_new_tokens=2, language="ko")
    predict(table, tmp_path / "a.csv", config)
    with caplog.at_level("INFO", logger="slmkit.summarize._fewshot"):
        predict(table, tmp_path / "b.csv", replace(config, keep_tokens=str(table)))
    assert "few-shot pool: 3 of 3 vectors from the embedding cache" in caplog.text


def test_dtype_chooses_the_decoding_precision_and_is_part_of_the_resume_identity(table, tmp_path, tiny_causal_dir):
    import torch
    from typer.testing import CliRunner

    from slmkit.cli.main import app
    from slmkit.summarize import build_summarizer

    config = PredictConfig(method="zero-shot", model=str(tiny_causal_dir), max_new_tokens=2, dtype="bf16")
    assert config.dtype == "bfloat16"  # aliases are normalised, so a resume compares like with like
    assert build_summarizer(config, "ko").lm.model.dtype == torch.bfloat16
    assert build_summarizer(replace(config, dtype="fp32"), "ko").lm.model.dtype == torch.float32
    out = tmp_path / "pred.csv"
    args = ["summarize", "predict", str(table), "--output", str(out), "--method", "zero-shot", "--model",
            str(tiny_causal_dir), "--max-new-tokens", "2", "--limit", "1"]
    first = CliRunner().invoke(app, [*args, "--dtype", "float32"])
    assert first.exit_code == 0, first.output
    other = CliRunner().invoke(app, [*args, "--dtype", "bfloat16"])  # another precision, other summaries
    assert other.exit_code != 0 and "cannot resume" in other.output and len(pd.read_csv(out)) == 1
    again = CliRunner().invoke(app, [*args, "--dtype", "fp32"])
    assert again.exit_code == 0, again.output
    assert len(pd.read_csv(out)) == 2
