from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from slmkit.errors import ConfigError, DataError
from slmkit.summarize import DemoConfig, PredictConfig, find_example_data, run_demo


def test_example_data_is_competition_format():
    folder = find_example_data()
    for name, n in (("dialogues_ko.csv", 12), ("dialogues_en.csv", 12)):
        frame = pd.read_csv(folder / name)
        assert list(frame.columns) == ["fname", "dialogue", "summary", "topic"] and len(frame) == n
        assert frame["dialogue"].str.startswith("#Person1#: ").all()


def test_lead_demo_end_to_end(tmp_path):
    results = run_demo(DemoConfig(predict=PredictConfig(method="lead"), output_dir=str(tmp_path)))
    assert [r.language for r in results] == ["ko", "en"]
    for r in results:
        preds = pd.read_csv(r.predictions)
        assert list(preds.columns) == ["fname", "summary"] and len(preds) == 12
        assert 0 < r.report.result.summary()["final"] < 100
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["results"]["ko"]["tokenizer"] == "kiwi" and report["results"]["en"]["tokenizer"] == "default"
    assert report["results"]["ko"]["predict"]["language"] == "ko"  # resolved per language, not "auto"
    assert (tmp_path / "eval_ko" / "per_topic.csv").is_file()


def test_few_shot_demo_with_tiny_model(tmp_path, tiny_causal_dir):
    config = DemoConfig(
        predict=PredictConfig(method="few-shot", model=str(tiny_causal_dir), max_new_tokens=4, shots=1),
        languages=("en",),
        output_dir=str(tmp_path),
    )
    (result,) = run_demo(config)
    assert len(pd.read_csv(result.predictions, keep_default_na=False)) == 12


def test_demo_errors(tmp_path):
    with pytest.raises(ConfigError, match="languages"):
        DemoConfig(languages=("fr",))
    with pytest.raises(DataError, match="example dialogues not found"):
        find_example_data(tmp_path)


def test_a_rerun_with_another_method_never_reports_the_old_summaries(tmp_path):
    lead = run_demo(DemoConfig(predict=PredictConfig(method="lead"), languages=("en",), output_dir=str(tmp_path)))
    before = lead[0].predictions.read_bytes()
    longest = DemoConfig(predict=PredictConfig(method="longest"), languages=("en",), output_dir=str(tmp_path))
    with pytest.raises(DataError, match="cannot resume: it was made with .*config.method=.lead. .now .longest.."):
        run_demo(longest)
    assert lead[0].predictions.read_bytes() == before  # refused before anything was written
    (again,) = run_demo(longest, restart_changed=True)
    fresh = run_demo(replace(longest, output_dir=str(tmp_path / "fresh")))[0]
    assert again.predictions.read_bytes() == fresh.predictions.read_bytes() != before
    assert again.report.result.summary()["final"] == fresh.report.result.summary()["final"]


def test_overwrite_predicts_again_even_with_the_same_settings(tmp_path):
    config = DemoConfig(predict=PredictConfig(method="lead"), languages=("en",), output_dir=str(tmp_path))
    (first,) = run_demo(config)
    before = first.predictions.read_bytes()
    frame = pd.read_csv(first.predictions)
    frame.loc[0, "summary"] = "EDITED"
    frame.to_csv(first.predictions, index=False)
    (resumed,) = run_demo(config)
    assert "EDITED" in resumed.predictions.read_text()  # a plain rerun resumes what is there
    (again,) = run_demo(config, restart_changed=True)
    assert again.predictions.read_bytes() == before  # --overwrite started afresh (it kept EDITED)
