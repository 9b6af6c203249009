"""Summarization II on a tiny random model: train -> predict --model RUN, merge, tune (resumable), MBR ensemble."""

from __future__ import annotations

import hashlib
import json

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from slmkit.cli.main import app
from slmkit.errors import DataError
from slmkit.summarize import builtin_examples, find_example_data, mbr_select
from slmkit.summarize._train import DecodeConfig, SummarizeTrainConfig, train_summarizer, training_pairs
from slmkit.summarize._tune import TuneConfig, default_training_params, suggest_training, tune
from slmkit.train import TrainConfig

runner = CliRunner()
DATA = find_example_data()
EN_TRAIN, EN_DEV = builtin_examples("en"), DATA / "dialogues_en.csv"
QUICK = ["--set", "max_steps=4", "--set", "report_to=none", "--set", "precision=fp32", "--set", "batch_size=4"]


def _train_with(model, run, *, eval_rows: int, extra=()):
    """`slmkit summarize train` on the English example pool with a tiny model, scored on the example dialogues."""
    args = ["summarize", "train", str(EN_TRAIN), "--output", str(run), "--model", str(model), "--dev", str(EN_DEV)]
    return runner.invoke(app, [*args, "--eval-rows", str(eval_rows), *extra, *QUICK])


def _predict_with(run, pred, *, limit: int):
    """`slmkit summarize predict` of the English example dialogues with a trained run (4 new tokens)."""
    args = ["summarize", "predict", str(EN_DEV), "--output", str(pred), "--model", str(run)]
    return runner.invoke(app, [*args, "--max-new-tokens", "4", "--limit", str(limit)])


def test_training_prompt_is_the_prediction_prompt():
    from slmkit.summarize import build_prompt, load_dialogues

    frame = load_dialogues(EN_TRAIN, require_summary=True)
    prompts, targets = training_pairs(frame, "en")
    assert prompts[0] == build_prompt(frame["dialogue"][0], "en")
    assert targets[0] == " " + frame["summary"][0].strip()


def test_train_then_predict_with_the_run_folder_and_with_merged_weights(tiny_causal_dir, tmp_path):
    run = tmp_path / "run"
    result = _train_with(tiny_causal_dir, run, eval_rows=3, extra=["--set", "eval_steps=2"])
    assert result.exit_code == 0, result.output
    info = json.loads((run / "slmkit_run.json").read_text())
    assert info["task"] == "summarize" and info["task_info"]["language"] == "en"
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_rouge" in line]
    assert len(evals) == 2 and info["metrics"]["best_metric"] == max(e["eval_rouge"] for e in evals)
    pred = tmp_path / "pred.csv"
    result = _predict_with(run, pred, limit=3)
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(pred).columns) == ["fname", "summary"] and len(pd.read_csv(pred)) == 3
    merged = tmp_path / "merged"
    assert runner.invoke(app, ["train", "merge", str(run), "--output", str(merged)]).exit_code == 0
    from slmkit.summarize import PredictConfig, build_summarizer
    from slmkit.summarize._train import FineTunedSummarizer

    summarizer = build_summarizer(PredictConfig(model=str(merged)), "en")
    assert isinstance(summarizer, FineTunedSummarizer)  # the merged folder still knows its prompt
    trained = info["task_info"]["decode"]["max_new_tokens"]
    assert summarizer.decode.max_new_tokens == trained  # no budget given: the run's own
    assert build_summarizer(PredictConfig(model=str(run), max_new_tokens=3), "en").decode.max_new_tokens == 3
    from slmkit.summarize._resume import predict_identity

    identity = predict_identity(EN_DEV, PredictConfig(model=str(run)))
    assert identity["config"]["max_new_tokens"] == trained  # the manifest records what it decodes with
    # The repetition penalty likewise: a given one is honoured (it was ignored), else the run's own decoding's.
    info["task_info"]["decode"]["repetition_penalty"] = 1.25  # as `summarize tune` may have chosen
    (run / "slmkit_run.json").write_text(json.dumps(info))
    assert build_summarizer(PredictConfig(model=str(run)), "en").decode.repetition_penalty == 1.25
    assert build_summarizer(PredictConfig(model=str(run), repetition_penalty=1.5), "en").decode.repetition_penalty \
        == 1.5
    assert predict_identity(EN_DEV, PredictConfig(model=str(run)))["config"]["repetition_penalty"] == 1.25


def test_bad_training_input_names_the_row_and_keeps_what_was_trained(tiny_causal_dir, tmp_path):
    frame = pd.read_csv(EN_TRAIN)
    frame.loc[2, "summary"] = ""
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    result = runner.invoke(
        app, ["summarize", "train", str(bad), "--output", str(tmp_path / "r"), "--model", str(tiny_causal_dir), *QUICK]
    )
    assert result.exit_code == 1 and "row 3 (en_train_2)" in result.output and "empty reference" in result.output
    result = runner.invoke(
        app,
        [
            "summarize",
            "train",
            str(EN_TRAIN),
            "--output",
            str(tmp_path / "r"),
            "--model",
            str(tiny_causal_dir),
            *QUICK,
            "--set",
            "max_length=40",
        ],
    )
    assert result.exit_code == 1 and "exceed max_length 40" in result.output and "en_train_" in result.output
    result = runner.invoke(
        app,
        [
            "summarize",
            "train",
            str(EN_TRAIN),
            "--output",
            str(tmp_path / "r"),
            "--model",
            str(tiny_causal_dir),
            *QUICK,
            "--set",
            "lora_r=0",
        ],
    )
    assert result.exit_code == 1 and "lora_r must be >= 1" in result.output
    result = runner.invoke(
        app,
        [
            "summarize",
            "train",
            str(EN_TRAIN),
            "--output",
            str(tmp_path / "r"),
            "--model",
            str(tiny_causal_dir),
            "--dialogue-column",
            "text",
            *QUICK,
        ],
    )
    assert result.exit_code == 1 and "missing column" in result.output and "'text'" in result.output
    # A finished run is never overwritten by a run with another config.
    good = tmp_path / "good"
    assert (
        runner.invoke(
            app, ["summarize", "train", str(EN_TRAIN), "--output", str(good), "--model", str(tiny_causal_dir), *QUICK]
        ).exit_code
        == 0
    )
    digest = hashlib.sha256((good / "model" / "adapter_model.safetensors").read_bytes()).hexdigest()
    result = runner.invoke(
        app,
        [
            "summarize",
            "train",
            str(EN_TRAIN),
            "--output",
            str(good),
            "--model",
            str(tiny_causal_dir),
            *QUICK,
            "--epochs",
            "7",
        ],
    )
    assert result.exit_code == 1 and "another config" in result.output
    assert hashlib.sha256((good / "model" / "adapter_model.safetensors").read_bytes()).hexdigest() == digest


def test_mbr_picks_the_consensus_candidate():
    candidates = [["the cat sat on the mat", "a dog ran", "the cat sat on a mat"], ["", "only one", "only one here"]]
    picked, index = mbr_select(candidates, tokenizer="whitespace")
    assert index[0] in (0, 2) and picked[1] in ("only one", "only one here")
    assert mbr_select([["", "x"]], tokenizer="whitespace")[0] == ["x"]  # empty never wins over text
    import unicodedata

    # a candidate stored decomposed (NFD) is compared as the others are, as `rouge` scores it
    korean = ["둘은 밥을 먹으러 간다", "둘은 밥을 먹으러 간다 지금", "둘은 밥을 먹으러 갔다"]
    nfd = [unicodedata.normalize("NFD", korean[0]), *korean[1:]]
    assert mbr_select([nfd], tokenizer="whitespace")[1][0] == mbr_select([korean], tokenizer="whitespace")[1][0] == 0


def test_ensemble_cli_writes_the_competition_csv(tmp_path):
    files = []
    for i, texts in enumerate([["a b c", "x y"], ["a b c d", "x y z"], ["q", "x y"]]):
        path = tmp_path / f"p{i}.csv"
        pd.DataFrame({"fname": ["d1", "d2"], "summary": texts}).to_csv(path, index=False)
        files.append(str(path))
    out = tmp_path / "ens.csv"
    result = runner.invoke(app, ["summarize", "ensemble", *files, "--output", str(out), "--tokenizer", "whitespace"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["fname", "summary"] and table["summary"][0] in ("a b c", "a b c d")
    twice = runner.invoke(app, ["summarize", "ensemble", files[0], files[0], "--output", str(tmp_path / "t.csv"),
                                "--tokenizer", "whitespace"])
    assert twice.exit_code == 0 and f"2 summaries from 1: {files[0]}" in twice.output  # not "0 from" it
    pd.DataFrame({"fname": ["d1", "other"], "summary": ["a", "b"]}).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(
        app, ["summarize", "ensemble", files[0], str(tmp_path / "bad.csv"), "--output", str(tmp_path / "e2.csv")]
    )
    assert result.exit_code == 1 and "not in every prediction file" in result.output


def test_tune_prunes_resumes_and_plots(tiny_causal_dir, tmp_path):
    base = TrainConfig(batch_size=4, report_to="none", precision="fp32", metric_for_best="rouge")
    summarize = SummarizeTrainConfig(model=str(tiny_causal_dir), decode=DecodeConfig(max_new_tokens=4))
    # A study killed mid-trial leaves a RUNNING trial in SQLite: the resumed study reruns its parameters.
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    storage = f"sqlite:///{study_dir / 'study.db'}"
    crashed = optuna.create_study(study_name="summarize-training", storage=storage, direction="maximize")
    orphan = crashed.ask(
        {
            "method": optuna.distributions.CategoricalDistribution(["lora"]),
            "epochs": optuna.distributions.IntDistribution(1, 1),
        }
    )
    assert orphan.number == 0
    config = TuneConfig(space="both", n_trials=2, max_epochs=1, eval_rows=2, seed=0)
    result = tune(EN_TRAIN, EN_DEV, study_dir, config, summarize, base, progress=False)
    states = [(t["space"], t["state"]) for t in result.trials]
    assert states.count(("training", "FAIL")) == 1  # the orphan
    assert sum(s == "training" and st in ("COMPLETE", "PRUNED") for s, st in states) == 2
    assert sum(s == "decoding" and st == "COMPLETE" for s, st in states) == 2
    assert set(result.best) == {"training", "decoding"}
    assert (study_dir / "training_history.png").is_file() and (study_dir / "tune.json").is_file()
    # Running the same study again finds its trials done and trains nothing new.
    again = tune(EN_TRAIN, EN_DEV, study_dir, config, summarize, base, progress=False)
    assert len(again.trials) == len(result.trials)


def test_a_trial_killed_mid_training_resumes_its_run_from_the_checkpoint(tiny_causal_dir, tmp_path, caplog):
    base = TrainConfig(batch_size=4, report_to="none", precision="fp32", metric_for_best="rouge", epochs=2.0)
    summarize = SummarizeTrainConfig(model=str(tiny_causal_dir), decode=DecodeConfig(max_new_tokens=4))
    config = TuneConfig(space="training", n_trials=1, max_epochs=2, eval_rows=2, seed=0)
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    storage = f"sqlite:///{study_dir / 'study.db'}"
    # The study's first trial trains one epoch of two, is evaluated, checkpoints, and its process dies.
    crashed = optuna.create_study(study_name="summarize-training", storage=storage, direction="maximize")
    crashed.enqueue_trial(default_training_params(config, base))
    orphan = crashed.ask()
    train_config = suggest_training(orphan, config, base)
    rows = len(pd.read_csv(EN_TRAIN))
    one_epoch = -(-rows // 4)
    train_summarizer(
        EN_TRAIN,
        study_dir / "trial_0",
        summarize,
        train_config,
        dev_data=EN_DEV,
        progress=False,
        stop_after_steps=one_epoch,
        on_evaluate=lambda m: orphan.report(m["rouge"], 0),
    )
    first_epoch = dict(crashed.trials[0].intermediate_values)
    assert list(first_epoch) == [0]
    # ... and its second epoch was evaluated and reported, but the process died before that epoch's checkpoint:
    # the resumed run redoes that epoch, and its evaluation must replace this report at the same step.
    orphan.report(99.0, 1)
    with caplog.at_level("WARNING"):
        result = tune(EN_TRAIN, EN_DEV, study_dir, config, summarize, base, progress=False)
    assert "resuming trial_0 from checkpoint-" in caplog.text.replace(str(study_dir) + "/", "")
    rerun = [t for t in result.trials if t["state"] == "COMPLETE"]
    assert len(rerun) == 1 and rerun[0]["number"] == 1 and rerun[0]["params"] == crashed.trials[0].params
    assert rerun[0]["intermediate"][0] == first_epoch[0] and set(rerun[0]["intermediate"]) == {0, 1}
    assert rerun[0]["intermediate"][1] != 99.0  # the redone epoch's own evaluation, at its own step
    assert result.best["training"]["run_dir"] == str(study_dir / "trial_0")
    assert (study_dir / "trial_0" / "model").is_dir() and not (study_dir / "trial_1").exists()


def test_a_new_study_starts_from_the_default_recipe(tiny_causal_dir, tmp_path):
    base = TrainConfig(batch_size=4, report_to="none", precision="fp32", metric_for_best="rouge", epochs=3.0)
    summarize = SummarizeTrainConfig(model=str(tiny_causal_dir), decode=DecodeConfig(max_new_tokens=4))
    config = TuneConfig(space="both", n_trials=1, max_epochs=2, eval_rows=2, seed=0)
    result = tune(EN_TRAIN, EN_DEV, tmp_path / "study", config, summarize, base, progress=False)
    first = {t["space"]: t["params"] for t in result.trials if t["number"] == 0}
    assert first["training"] == {
        "method": "lora",
        "epochs": 2,  # the default's 3 epochs, clipped to the study's max_epochs
        "warmup_ratio": base.warmup_ratio,
        "weight_decay": base.weight_decay,
        "learning_rate": base.learning_rate,
        "lora_r": base.lora_r,
        "lora_alpha": base.lora_alpha,
    }
    assert first["decoding"] == {
        "do_sample": False,
        "num_beams": 1,
        "no_repeat_ngram_size": 0,
        "repetition_penalty": 1.0,
        "max_new_tokens": 64,  # closest choice to the test's max_new_tokens=4
        "min_new_tokens": 0,
    }


def test_tune_config_is_checked_before_any_work():
    with pytest.raises(Exception, match="space must be one of"):
        TuneConfig(space="everything")
    with pytest.raises(Exception, match="decoding-only study needs"):
        TuneConfig(space="decoding")


def test_train_summarizer_names_the_file_of_a_bad_row(tiny_causal_dir, tmp_path):
    frame = pd.read_csv(EN_TRAIN)
    frame.loc[0, "dialogue"] = "no speaker tags at all"
    bad = tmp_path / "untagged.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match="untagged.csv.*row 1"):
        train_summarizer(bad, tmp_path / "run", SummarizeTrainConfig(model=str(tiny_causal_dir)))


def test_an_encoder_decoder_summarizer_trains_and_predicts_with_the_same_command(tmp_path):
    from slmkit.testing import make_tiny_model_dir

    bart = make_tiny_model_dir(tmp_path / "bart", kind="seq2seq")
    run = tmp_path / "run"
    result = _train_with(bart, run, eval_rows=2)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "slmkit_run.json").read_text())["kind"] == "seq2seq"
    pred = tmp_path / "pred.csv"
    result = _predict_with(run, pred, limit=2)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(pred)) == 2


def test_mbr_decoding_keeps_the_candidate_closest_to_the_others(tiny_lm):
    """mbr_samples=N: greedy + N seeded samples per dialogue, the one with the highest mean ROUGE to the rest."""
    from slmkit.summarize._train import FineTunedSummarizer

    dialogues = list(pd.read_csv(EN_DEV)["dialogue"][:3])
    base = DecodeConfig(max_new_tokens=6, batch_size=2)
    mbr = FineTunedSummarizer(tiny_lm, "en", DecodeConfig(max_new_tokens=6, batch_size=2, mbr_samples=3), seed=5)
    greedy = FineTunedSummarizer(tiny_lm, "en", base, seed=5).summarize(dialogues)
    sampled = DecodeConfig(max_new_tokens=6, batch_size=2, do_sample=True, temperature=0.7, top_p=0.95)
    samples = [FineTunedSummarizer(tiny_lm, "en", sampled, seed=5 + i).summarize(dialogues) for i in (1, 2, 3)]
    expected, _ = mbr_select(list(zip(greedy, *samples)), tokenizer="default")
    assert mbr.summarize(dialogues) == expected
    assert any(s != g for sample in samples for s, g in zip(sample, greedy))  # the samples really differ


def test_mbr_decoding_is_for_fine_tuned_summarizers(tmp_path):
    from slmkit.errors import ConfigError
    from slmkit.summarize import PredictConfig, build_summarizer

    with pytest.raises(ConfigError, match="fine-tuned summarizers"):
        build_summarizer(PredictConfig(method="zero-shot", mbr_samples=2), "en")
    with pytest.raises(ConfigError, match="mbr_samples"):
        DecodeConfig(mbr_samples=-1)


def test_a_resumed_study_proposes_new_parameters_and_reruns_a_trial_stopped_by_ctrl_c(tmp_path):
    from slmkit.summarize._tune import _optimize, _study

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    stop_at = {"number": 3}

    def objective(trial) -> float:
        value = trial.suggest_float("lr", 1e-5, 1e-3, log=True)
        trial.set_user_attr("run_dir", str(tmp_path / f"trial_{trial.number}"))
        if trial.number == stop_at["number"]:
            trial.set_user_attr("interrupted", True)  # what tune's objective records on Ctrl-C
            raise KeyboardInterrupt
        return value

    with pytest.raises(KeyboardInterrupt):  # trials 0-2 finish, trial 3 is stopped by Ctrl-C
        _optimize(_study(optuna, storage, "s", 0, pruned=False, run_dirs=tmp_path), objective, 6)
    stop_at["number"] = -1
    study = _study(optuna, storage, "s", 0, pruned=False, run_dirs=tmp_path)  # a new process, the same seed
    _optimize(study, objective, 6)
    trials = study.get_trials()
    first = [t.params["lr"] for t in trials[:3]]
    rerun, fresh = trials[4], trials[5:]
    assert rerun.params == trials[3].params and rerun.user_attrs["resume_dir"] == str(tmp_path / "trial_3")
    assert all(t.params["lr"] not in first for t in fresh)  # the seed's first draws are not proposed again
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6
    # Another resume finds nothing to rerun: the stopped trial was taken over once.
    assert len(_study(optuna, storage, "s", 0, pruned=False, run_dirs=tmp_path).get_trials(
        states=(optuna.trial.TrialState.WAITING,))) == 0


def test_a_study_refuses_to_resume_on_other_data_or_settings(tiny_causal_dir, tmp_path):
    from slmkit.errors import ConfigError

    base = TrainConfig(batch_size=4, report_to="none", precision="fp32", metric_for_best="rouge", epochs=1.0)
    summarize = SummarizeTrainConfig(model=str(tiny_causal_dir), decode=DecodeConfig(max_new_tokens=4))
    config = TuneConfig(space="training", n_trials=1, max_epochs=1, eval_rows=2, seed=0)
    tune(EN_TRAIN, EN_DEV, tmp_path / "study", config, summarize, base, progress=False)
    more = TuneConfig(space="training", n_trials=2, max_epochs=1, eval_rows=3, seed=0)
    with pytest.raises(ConfigError, match="the study there ran with .*eval_rows=2 \\(now 3\\)"):
        tune(EN_TRAIN, EN_DEV, tmp_path / "study", more, summarize, base, progress=False)
    other_dev = pd.read_csv(EN_DEV).iloc[1:]
    with pytest.raises(ConfigError, match="dev_sha256"):
        tune(EN_TRAIN, other_dev, tmp_path / "study", config, summarize, base, progress=False)
