"""TrainConfig.prompt_loss_weight: the prompt's tokens join the loss at a weight, as a weighted mean."""

from __future__ import annotations

import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.testing import TOY_TEXTS
from slmkit.train import TrainConfig, encode_pairs, train
from slmkit.train._data import IGNORE, Collator, ExampleDataset

PROMPTS = [f"Text: {t}\nFirst word:" for t in TOY_TEXTS]
TARGETS = [" " + t.split()[0] for t in TOY_TEXTS]


def fast(**kw) -> TrainConfig:
    values = dict(batch_size=8, max_steps=1, learning_rate=1e-2, logging_steps=1, report_to="none", precision="fp32",
                  warmup_ratio=0.0)
    values.update(kw)
    return TrainConfig(**values)


def test_a_weighted_prompt_labels_every_token_and_weighs_the_prompt(tiny_lm):
    tok = tiny_lm.tokenizer
    masked = encode_pairs(tok, PROMPTS, TARGETS, max_length=256)
    weighted = encode_pairs(tok, PROMPTS, TARGETS, max_length=256, prompt_loss_weight=0.25)
    for m, w in zip(masked, weighted):
        assert m.weights is None and w.input_ids == m.input_ids and w.labels == w.input_ids
        n_prompt = sum(1 for x in m.labels if x == IGNORE)
        assert w.weights == [0.25] * n_prompt + [1.0] * (len(m.labels) - n_prompt)
    # the target tokens alone count as fully weighted
    assert ExampleDataset(weighted).n_target_tokens() == ExampleDataset(masked).n_target_tokens()
    batch = Collator(tok.pad_token_id)([ExampleDataset(weighted)[i] for i in range(2)])
    assert batch["loss_weights"].shape == batch["labels"].shape
    padding = batch["labels"] == IGNORE
    assert padding.any() and (batch["loss_weights"][padding] == 0).all()
    assert "loss_weights" not in Collator(tok.pad_token_id)([ExampleDataset(masked)[0]])


def _weighted_mean_loss(model, batch) -> float:
    """The expected loss from the model's own logits: per-token cross-entropy, weighted mean over labels."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels, weights = batch["labels"][:, 1:], batch["loss_weights"][:, 1:]
    scored = labels != IGNORE
    losses = torch.nn.functional.cross_entropy(logits[scored].float(), labels[scored], reduction="none")
    return float((losses * weights[scored]).sum() / weights[scored].sum())


def test_the_first_step_logs_the_weighted_mean_of_token_losses(tiny_lm, tiny_causal_dir, tmp_path):
    # LoRA's B starts at zero, so step 1's loss is the base model's on the one batch of all 8 pairs.
    result = train(str(tiny_causal_dir), fast(method="lora", prompt_loss_weight=0.1), tmp_path / "run",
                   train_pairs=(PROMPTS, TARGETS))
    examples = encode_pairs(tiny_lm.tokenizer, PROMPTS, TARGETS, max_length=1024, prompt_loss_weight=0.1)
    batch = Collator(tiny_lm.tokenizer.pad_token_id)([ExampleDataset(examples)[i] for i in range(len(examples))])
    logged = [h["loss"] for h in result.history if "loss" in h][0]
    assert logged == pytest.approx(_weighted_mean_loss(tiny_lm.model, batch), rel=1e-4)
    masked = train(str(tiny_causal_dir), fast(method="lora"), tmp_path / "masked", train_pairs=(PROMPTS, TARGETS))
    assert [h["loss"] for h in masked.history if "loss" in h][0] != pytest.approx(logged, rel=1e-3)


def test_a_weighted_batch_trains_the_same_whatever_its_gradient_accumulation(tiny_causal_dir, tmp_path):
    from safetensors.torch import load_file

    runs = {}
    for batch, accum in ((8, 1), (2, 4)):
        folder = tmp_path / f"b{batch}"
        result = train(str(tiny_causal_dir), fast(method="full", batch_size=batch, grad_accum=accum,
                                                  prompt_loss_weight=0.3), folder, train_pairs=(PROMPTS, TARGETS))
        runs[batch] = (result.history[0]["loss"], result.history[0]["grad_norm"],
                       load_file(str(folder / "model" / "model.safetensors")))
    (loss8, norm8, w8), (loss2, norm2, w2) = runs[8], runs[2]
    # divided by the summed weights of the whole accumulated batch, not by its labelled-token count
    assert loss2 == pytest.approx(loss8, rel=1e-4) and norm2 == pytest.approx(norm8, rel=1e-3)
    assert max((w8[k] - w2[k]).abs().max().item() for k in w8) < 1e-4


def test_prompt_loss_weight_is_checked_and_old_configs_keep_their_identity(tmp_path):
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="prompt_loss_weight must be in"):
            TrainConfig(prompt_loss_weight=bad)
    with pytest.raises(ConfigError, match="objective 'pairs' and loss_path 'target'"):
        TrainConfig(prompt_loss_weight=0.1, objective="documents")
    with pytest.raises(ConfigError, match="objective 'pairs' and loss_path 'target'"):
        TrainConfig(prompt_loss_weight=0.1, loss_path="full")
    # a config saved before the field existed loads with its default, and hashes as it did then
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "prompt_loss_weight"}
    assert TrainConfig.from_dict(old) == TrainConfig() and TrainConfig().identity() == old
    assert TrainConfig(prompt_loss_weight=0.1).identity()["prompt_loss_weight"] == 0.1


def test_an_encoder_decoder_refuses_a_weighted_prompt(tmp_path):
    from slmkit.testing import make_tiny_model_dir

    bart = make_tiny_model_dir(tmp_path / "bart", kind="seq2seq")
    with pytest.raises(ConfigError, match="applies to causal LMs"):
        train(str(bart), fast(prompt_loss_weight=0.1), tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    assert not (tmp_path / "run" / "model").exists()
