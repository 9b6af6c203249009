"""Preference tuning (DPO) on a tiny random Gemma: the objective's log-probabilities, the run from a fine-tuned
summarizer (its own summaries as the rejected side), resume, serving, and clear errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from slmkit.cli.main import app
from slmkit.errors import ConfigError
from slmkit.summarize import builtin_examples, find_example_data, preference_config, preference_tune
from slmkit.summarize._train import DecodeConfig, FineTunedSummarizer
from slmkit.train import TrainConfig, train
from slmkit.train._data import PreferenceCollator, PreferenceDataset, encode_pairs
from slmkit.train._trainer import sequence_logps

runner = CliRunner()
EN_TRAIN, EN_DEV = builtin_examples("en"), find_example_data() / "dialogues_en.csv"
PROMPTS = ["Dialogue: #Person1#: Hi. #Person2#: Hello.\nSummary:", "Dialogue: #Person1#: Lunch? #Person2#: Yes.\nSummary:"]
CHOSEN = [" Two people greet each other.", " They agree to have lunch."]
REJECTED = [" Hi hi hi.", " Lunch lunch."]


def test_sequence_log_probs_equal_the_full_vocabulary_softmax(tiny_lm):
    """What DPO compares is log p(target | prompt) summed over the target tokens (EOS included), exactly."""
    tok = tiny_lm.tokenizer
    data = PreferenceDataset(encode_pairs(tok, PROMPTS, CHOSEN, max_length=256),
                             encode_pairs(tok, PROMPTS, REJECTED, max_length=256))
    batch = PreferenceCollator(tok.pad_token_id)([data[0], data[1]])
    with torch.no_grad():
        ours = sequence_logps(tiny_lm.model, tiny_lm.model, batch)
        logits = tiny_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    labels = batch["labels"][:, 1:]
    scored = labels != -100
    gathered = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = (gathered * scored).sum(1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert batch["input_ids"].shape[0] == 4  # chosen rows first, their rejected twins after


def test_the_sft_term_adds_the_chosen_targets_mean_token_loss(tiny_lm):
    """dpo_sft_weight (RPO): loss = DPO loss + weight x the mean over rows of each chosen target's mean token loss."""
    from types import SimpleNamespace

    from slmkit.train._trainer import SlmTrainer

    tok = tiny_lm.tokenizer
    data = PreferenceDataset(encode_pairs(tok, PROMPTS, CHOSEN, max_length=256),
                             encode_pairs(tok, PROMPTS, REJECTED, max_length=256))
    data.reference = [(-5.0, -7.0), (-6.0, -4.0)]
    batch = PreferenceCollator(tok.pad_token_id)([data[0], data[1]])
    model = tiny_lm.model.eval()

    def loss(weight: float) -> torch.Tensor:
        trainer = SimpleNamespace(dpo_beta=0.1, dpo_sft_weight=weight, n_virtual_tokens=0, _preference_stats=[])
        with torch.no_grad():
            return SlmTrainer._preference_loss(trainer, model, model, batch, return_outputs=False)

    with torch.no_grad():
        chosen = sequence_logps(model, model, batch)[:2]
    n_chosen = torch.tensor([sum(x != -100 for x in data.chosen[i].labels) for i in range(2)], dtype=chosen.dtype)
    expected_sft = (-chosen / n_chosen).mean()
    assert float(expected_sft) > 0
    torch.testing.assert_close(loss(0.5) - loss(0.0), 0.5 * expected_sft, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="dpo_sft_weight"):
        TrainConfig(dpo_sft_weight=-1)


def _sft_run(tiny_causal_dir, tmp_path):
    args = ["summarize", "train", str(EN_TRAIN), "--output", str(tmp_path / "sft"), "--model", str(tiny_causal_dir)]
    quick = ["--set", "max_steps=4", "--set", "report_to=none", "--set", "precision=fp32", "--set", "batch_size=4"]
    result = runner.invoke(app, [*args, *quick])
    assert result.exit_code == 0, result.output
    return tmp_path / "sft"


def _dpo_config(**kw) -> TrainConfig:
    values = {"max_steps": 6, "batch_size": 4, "learning_rate": 5e-3, "scheduler": "constant", "warmup_ratio": 0.0,
              "logging_steps": 1, "report_to": "none", "precision": "fp32"}
    return preference_config(**(values | kw))


@pytest.fixture(scope="module")
def sft(tiny_causal_dir, tmp_path_factory):
    return _sft_run(tiny_causal_dir, tmp_path_factory.mktemp("sft"))


def test_dpo_starts_from_the_reference_and_learns_to_prefer_the_gold_summary(sft, tmp_path):
    from slmkit.models import load_model
    from slmkit.summarize import PredictConfig, build_summarizer

    run = tmp_path / "dpo"
    short = DecodeConfig(max_new_tokens=12)  # the random model never stops by itself
    result = preference_tune(sft, EN_TRAIN, run, _dpo_config(), decode=short, progress=False)
    steps = [h for h in result.history if "loss" in h]
    # No dropout and a reference computed from the same weights: the first step's margins are all zero.
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-4) and steps[0]["reward_margin"] == pytest.approx(0)
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.05 and steps[-1]["reward_accuracy"] > 0.5
    info = result.info
    assert info["task"] == "summarize" and info["task_info"]["preference"]["pairs"] > 0
    assert (run / "sft_merged" / "config.json").is_file()  # the LoRA summarizer folded in: start and reference
    assert len(json.loads((run / "reference_logps.json").read_text())) == info["task_info"]["preference"]["pairs"]
    assert len((run / "rejected.csv").read_text().splitlines()) > 1
    summarizer = build_summarizer(PredictConfig(model=str(run)), "en")
    assert isinstance(summarizer, FineTunedSummarizer)
    # The served model is the trained one: its log-probabilities moved away from the reference's.
    lm = load_model(str(run), dtype="float32")
    ref = load_model(str(run / "sft_merged"), dtype="float32")
    prompt = lm.tokenizer(PROMPTS[0])["input_ids"]
    assert not torch.allclose(lm.model(torch.tensor([prompt])).logits, ref.model(torch.tensor([prompt])).logits)


def test_an_interrupted_dpo_run_resumes_with_the_reference_it_computed(sft, tmp_path):
    run = tmp_path / "dpo"
    short = {"decode": DecodeConfig(max_new_tokens=8)}
    first = preference_tune(sft, EN_TRAIN, run, _dpo_config(), stop_after_steps=3, progress=False, **short)
    assert first.info == {"status": "interrupted"}
    # Mark the saved reference: a resumed run must train against it, not recompute it from moved weights.
    marked = [[x[0] + 1.0, x[1]] for x in json.loads((run / "reference_logps.json").read_text())]
    (run / "reference_logps.json").write_text(json.dumps(marked))
    done = preference_tune(sft, EN_TRAIN, run, _dpo_config(), progress=False, **short)
    assert done.info["status"] == "done" and done.info["steps"] == 6
    assert json.loads((run / "reference_logps.json").read_text()) == marked


def test_bad_preference_setups_get_clear_errors(sft, tiny_causal_dir, tmp_path):
    with pytest.raises(ConfigError, match="objective='preference'"):
        preference_tune(sft, EN_TRAIN, tmp_path / "a", TrainConfig(report_to="none"), progress=False)
    with pytest.raises(ConfigError, match="not a fine-tuned summarizer"):
        preference_tune(tiny_causal_dir, EN_TRAIN, tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="lora' or 'full"):
        TrainConfig(objective="preference", method="ptuning")
    with pytest.raises(ConfigError, match="dpo_beta"):
        TrainConfig(dpo_beta=0)
    with pytest.raises(ConfigError, match="match row for row"):
        train(str(tiny_causal_dir), _dpo_config(), tmp_path / "c", preference_pairs=(PROMPTS, CHOSEN, REJECTED[:1]))
    with pytest.raises(ConfigError, match="preference_pairs are for objective 'preference'"):
        train(str(tiny_causal_dir), TrainConfig(report_to="none"), tmp_path / "d",
              train_pairs=(PROMPTS, CHOSEN), preference_pairs=(PROMPTS, CHOSEN, REJECTED))


def test_dpo_command(sft, tmp_path):
    run = tmp_path / "cli"
    result = runner.invoke(app, ["summarize", "dpo", str(EN_TRAIN), "--model", str(sft), "--output", str(run),
                                 "--beta", "0.2", "--sft-weight", "0.5", "--set", "max_steps=2",
                                 "--set", "report_to=none",
                                 "--set", "precision=fp32", "--seed", "3"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "train_config.json").read_text())
    assert config["objective"] == "preference" and config["dpo_beta"] == 0.2 and config["seed"] == 3
    assert config["dpo_sft_weight"] == 0.5
    assert config["lora_dropout"] == 0.0
