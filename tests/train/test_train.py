"""slmkit.train on tiny random models: every method learns, resume is exact, merge is exact, bad input is named."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from slmkit.errors import ConfigError, DataError
from slmkit.testing import TOY_TEXTS
from slmkit.train import TrainConfig, encode_documents, encode_pairs, merge, train
from slmkit.train._data import IGNORE, Collator
from slmkit.train._trainer import target_loss_sum

PROMPTS = [f"Text: {t}\nFirst word:" for t in TOY_TEXTS]
TARGETS = [" " + t.split()[0] for t in TOY_TEXTS]


def fast(**kw) -> TrainConfig:
    """A config for tiny models: few steps, high learning rate, no MLflow, float32."""
    values = dict(batch_size=8, max_steps=12, learning_rate=1e-2, logging_steps=1, report_to="none", precision="fp32")
    values.update(kw)
    return TrainConfig(**values)


def logged_losses(result) -> list[float]:
    return [h["loss"] for h in result.history if "loss" in h]


@pytest.mark.parametrize("method", ["full", "lora", "ptuning"])
def test_each_method_lowers_the_loss(tiny_causal_dir, tmp_path, method):
    # One batch holds all 8 pairs, so step 1's loss is the loss before any update on the same rows.
    result = train(str(tiny_causal_dir), fast(method=method), tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    losses = logged_losses(result)
    # Nats per target token; the seeds make this deterministic. P-tuning moves only 20 virtual input tokens
    # of a random model, so its drop in 12 steps is the smallest.
    assert losses[-1] < losses[0] - (0.05 if method == "ptuning" else 0.1), losses
    assert result.info["status"] == "done" and result.info["method"] == method
    for name in ("train_config.json", "slmkit_run.json", "metrics.jsonl", "learning_curve.png", "README.md"):
        assert (tmp_path / "run" / name).is_file(), name


def test_target_loss_equals_the_libraries_full_vocabulary_loss(tiny_lm):
    examples = encode_pairs(tiny_lm.tokenizer, PROMPTS, TARGETS, max_length=256)
    batch = Collator(tiny_lm.tokenizer.pad_token_id)(
        [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    )
    with torch.no_grad():
        full = tiny_lm.model(**batch).loss
        out = tiny_lm.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
            logits_to_keep=1,
        )
        scored = batch["labels"][:, 1:] != IGNORE
        ours = target_loss_sum(tiny_lm.model, out.hidden_states[-1][:, :-1][scored], batch["labels"][:, 1:][scored])
    assert ours.item() / scored.sum().item() == pytest.approx(full.item(), rel=1e-5)


def _tiny(config_class, **extra):
    torch.manual_seed(0)
    config = config_class(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=2, **extra)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(30)  # trained-size logits, where a missed scale shows
    return model


@pytest.mark.parametrize("name, extra", [("granite", {"logits_scaling": 8.0}), ("cohere", {"logit_scale": 0.0625})])
def test_target_positions_get_the_logit_scaling_the_model_applies(name, extra):
    import transformers

    from slmkit.models._transformers import check_head_projection
    from slmkit.train._trainer import target_token_losses

    model = _tiny(getattr(transformers, f"{name.capitalize()}Config"), **extra)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids, output_hidden_states=True)
        ours = target_token_losses(model, out.hidden_states[-1][:, :-1].reshape(-1, 16), ids[:, 1:].reshape(-1))
    assert ours.mean().item() == pytest.approx(out.loss.item(), rel=1e-5)  # the fast path missed the scaling
    check_head_projection(model)


def test_an_output_step_slmkit_does_not_repeat_is_refused_not_trained_wrongly(tiny_causal_dir, tmp_path):
    from transformers import LlamaConfig

    from slmkit.models._transformers import check_head_projection

    model = _tiny(LlamaConfig)
    forward = model.forward

    def scaled(*args, **kwargs):  # an architecture with a step after its output layer that slmkit does not know
        out = forward(*args, **kwargs)
        out.logits = out.logits * 3.0
        return out

    model.forward = scaled
    with pytest.raises(ConfigError, match="loss_path='full'"):
        check_head_projection(model)


def test_fast_and_full_loss_paths_train_to_the_same_loss(tiny_causal_dir, tmp_path):
    a = train(str(tiny_causal_dir), fast(max_steps=4), tmp_path / "a", train_pairs=(PROMPTS, TARGETS))
    b = train(
        str(tiny_causal_dir), fast(max_steps=4, loss_path="full"), tmp_path / "b", train_pairs=(PROMPTS, TARGETS)
    )
    assert logged_losses(a) == pytest.approx(logged_losses(b), rel=1e-4)


def _adapter_digest(run_dir) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "model" / "adapter_model.safetensors"))
    return {k: v.clone() for k, v in tensors.items()}


def test_an_interrupted_run_resumed_ends_with_the_same_weights(tiny_causal_dir, tmp_path):
    # Batches of 2 over 8 pairs: 4 steps an epoch, so the interruption falls mid-epoch and resume must skip
    # the batches already seen; LoRA dropout makes the RNG state matter too.
    config = fast(batch_size=2, max_steps=6, save_steps=1, learning_rate=5e-3)
    straight = train(str(tiny_causal_dir), config, tmp_path / "straight", train_pairs=(PROMPTS, TARGETS))
    cut = train(str(tiny_causal_dir), config, tmp_path / "cut", train_pairs=(PROMPTS, TARGETS), stop_after_steps=3)
    assert cut.info["status"] == "interrupted" and not (tmp_path / "cut" / "model").exists()
    clock = json.loads((tmp_path / "cut" / "checkpoints" / "checkpoint-3" / "slmkit_clock.json").read_text())
    # A kill inside the next save leaves a numbered folder without trainer_state.json: resume skips it.
    partial = tmp_path / "cut" / "checkpoints" / "checkpoint-4"
    partial.mkdir()
    for f in (tmp_path / "cut" / "checkpoints" / "checkpoint-3").glob("adapter_*"):
        partial.joinpath(f.name).write_bytes(f.read_bytes())
    resumed = train(str(tiny_causal_dir), config, tmp_path / "cut", train_pairs=(PROMPTS, TARGETS))
    assert resumed.info["steps"] == straight.info["steps"] == 6
    # The whole run's time is kept across the resume; rates come from the resumed process's own steps.
    assert clock["step"] == 3 and clock["seconds"] > 0
    assert resumed.info["resumed_from_step"] == 3 and straight.info["resumed_from_step"] == 0
    here = resumed.info["seconds_this_process"]
    assert resumed.info["seconds"] == pytest.approx(clock["seconds"] + here, abs=0.2)
    assert resumed.info["seconds_per_step"] == pytest.approx(here / 3, abs=0.02)  # here is rounded to 0.1 s
    assert resumed.info["metrics"]["train_loss"] == pytest.approx(straight.info["metrics"]["train_loss"], rel=1e-4)
    a, b = _adapter_digest(tmp_path / "straight"), _adapter_digest(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps", [dict(max_steps=6), dict(max_steps=0, epochs=2)])
def test_a_run_killed_after_its_last_checkpoint_finishes_from_it(tiny_causal_dir, tmp_path, steps):
    # Killed between the last step's checkpoint and the model write. 6 steps of 2 over 8 pairs end mid-epoch,
    # where resuming through trainer.train would train one step more.
    import shutil

    config = fast(batch_size=2, save_steps=1, learning_rate=5e-3, **steps)
    straight = train(str(tiny_causal_dir), config, tmp_path / "straight", train_pairs=(PROMPTS, TARGETS))
    shutil.copytree(tmp_path / "straight", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "model")
    (tmp_path / "cut" / "slmkit_run.json").unlink()
    finished = train(str(tiny_causal_dir), config, tmp_path / "cut", train_pairs=(PROMPTS, TARGETS))
    assert finished.info["steps"] == straight.info["steps"] and finished.info["status"] == "done"
    a, b = _adapter_digest(tmp_path / "straight"), _adapter_digest(tmp_path / "cut")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    assert finished.info["metrics"]["train_loss"] == pytest.approx(straight.info["metrics"]["train_loss"], rel=1e-4)
    last = max((tmp_path / "cut" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    clock = json.loads((last / "slmkit_clock.json").read_text())
    assert finished.info["seconds"] >= clock["seconds"] - 0.1 and clock["seconds"] > 0  # kept (0.1: rounding)
    assert finished.info["tokens_per_second"] > 0 and finished.info["seconds_per_step"] > 0


def test_a_finished_run_is_returned_not_retrained_and_another_config_is_refused(tiny_causal_dir, tmp_path):
    config = fast(max_steps=2)
    first = train(str(tiny_causal_dir), config, tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    weights = tmp_path / "run" / "model" / "adapter_model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    again = train(str(tiny_causal_dir), config, tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    assert again.info == first.info
    with pytest.raises(ConfigError, match="another config.*lora_r"):
        train(str(tiny_causal_dir), fast(max_steps=2, lora_r=4), tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    # the same config on other data, another base model or in reverse order is other work: refused, not returned
    with pytest.raises(ConfigError, match="another training data"):
        train(str(tiny_causal_dir), config, tmp_path / "run", train_pairs=(PROMPTS[:-1], TARGETS[:-1]))
    other = tmp_path / "other-base"
    __import__("shutil").copytree(tiny_causal_dir, other)
    weights_file = next(other.glob("*.safetensors"))
    weights_file.write_bytes(weights_file.read_bytes()[:-8] + b"\x00" * 8)  # other weights, same config
    with pytest.raises(ConfigError, match="another base model"):
        train(str(other), config, tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    docs = fast(max_steps=2, objective="documents")
    train(str(tiny_causal_dir), docs, tmp_path / "docs", documents=TOY_TEXTS)
    with pytest.raises(ConfigError, match=r"token order \(reverse\)"):
        train(str(tiny_causal_dir), docs, tmp_path / "docs", documents=TOY_TEXTS, reverse=True)
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest


def test_merged_lora_gives_the_same_logits_as_base_plus_adapter(tiny_causal_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train(str(tiny_causal_dir), fast(max_steps=6), tmp_path / "run", train_pairs=(PROMPTS, TARGETS))
    merged_dir = merge(tmp_path / "run", tmp_path / "merged")
    assert not (merged_dir / "adapter_config.json").exists()
    assert json.loads((merged_dir / "slmkit_task.json").read_text())["task"] == "generic"
    base = AutoModelForCausalLM.from_pretrained(str(tiny_causal_dir))
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "run" / "model")).eval()
    plain = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    ids = torch.tensor([[2, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, with_adapter(ids).logits, rtol=1e-4, atol=1e-4)
    from slmkit.models import load_model

    served = load_model(str(merged_dir))  # a plain folder every job and CLI command can use
    assert len(served.generate(["Text: hello\nFirst word:"], max_new_tokens=3)) == 1


def test_run_folders_load_like_any_model(tiny_causal_dir, tmp_path):
    from slmkit.models import load_model

    for method in ("lora", "full", "ptuning"):
        train(
            str(tiny_causal_dir), fast(method=method, max_steps=2), tmp_path / method, train_pairs=(PROMPTS, TARGETS)
        )
        lm = load_model(str(tmp_path / method))
        out = lm.generate(PROMPTS[:2], max_new_tokens=4)
        assert len(out) == 2 and all(isinstance(x, str) for x in out)
    assert load_model(str(tmp_path / "ptuning")).prompt_tuned
    with pytest.raises(ConfigError, match="P-tuning"):
        merge(tmp_path / "ptuning", tmp_path / "merged")


def test_seq2seq_bart_trains_and_generates(tmp_path):
    from slmkit.models import load_model
    from slmkit.testing import make_tiny_model_dir

    bart = make_tiny_model_dir(tmp_path / "bart", kind="seq2seq")
    assert load_model(str(bart)).spec.kind == "seq2seq"
    for method in ("lora", "full"):
        result = train(str(bart), fast(method=method), tmp_path / method, train_pairs=(PROMPTS, TARGETS))
        losses = logged_losses(result)
        assert losses[-1] < losses[0] - 0.1, (method, losses)
        assert len(load_model(str(tmp_path / method)).generate(PROMPTS[:2], max_new_tokens=4)) == 2


def test_a_seq2seq_batch_trains_the_same_whatever_its_gradient_accumulation(tmp_path):
    import json

    from safetensors.torch import load_file

    from slmkit.testing import make_tiny_model_dir

    bart = make_tiny_model_dir(tmp_path / "bart", kind="seq2seq")
    config = json.loads((bart / "config.json").read_text())  # no dropout: micro-batches see the same network
    config.update(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    (bart / "config.json").write_text(json.dumps(config))
    runs = {}
    for batch, accum in ((8, 1), (2, 4)):
        result = train(str(bart), fast(method="full", batch_size=batch, grad_accum=accum, max_steps=1,
                                       warmup_ratio=0.0), tmp_path / f"b{batch}", train_pairs=(PROMPTS, TARGETS))
        runs[batch] = (result.history[0]["loss"], result.history[0]["grad_norm"],
                       load_file(str(tmp_path / f"b{batch}" / "model" / "model.safetensors")))
    (loss8, norm8, w8), (loss2, norm2, w2) = runs[8], runs[2]
    # BART's own loss is a per-micro-batch mean the Trainer does not divide: it logged 4x the loss and gradient
    assert loss2 == pytest.approx(loss8, rel=1e-4) and norm2 == pytest.approx(norm8, rel=1e-3)
    assert max((w8[k] - w2[k]).abs().max().item() for k in w8) < 1e-4


def test_bad_input_is_named(tiny_causal_dir, tmp_path):
    with pytest.raises(ConfigError, match="lora_r must be >= 1"):
        TrainConfig(lora_r=0)
    with pytest.raises(ConfigError, match="method must be one of"):
        TrainConfig(method="qlora")
    with pytest.raises(DataError, match=r"row 3 \(c\): empty target"):
        train(
            str(tiny_causal_dir),
            fast(),
            tmp_path / "a",
            train_pairs=(["p"] * 3, ["x", "y", " "]),
            train_ids=["a", "b", "c"],
        )
    with pytest.raises(DataError, match=r"row 2.*exceed max_length 16"):
        train(
            str(tiny_causal_dir),
            fast(max_length=16),
            tmp_path / "b",
            train_pairs=(["short", "a much longer prompt " * 5], ["x", "y"]),
        )
    with pytest.raises(ConfigError, match="metric_for_best"):
        train(str(tiny_causal_dir), fast(metric_for_best="rouge"), tmp_path / "c", train_pairs=(PROMPTS, TARGETS))
    assert not (tmp_path / "a" / "model").exists()


def test_documents_objective_and_token_reversal(tiny_lm, tiny_causal_dir, tmp_path):
    tok = tiny_lm.tokenizer
    forward = encode_documents(tok, TOY_TEXTS, max_length=64, pack=False)
    backward = encode_documents(tok, TOY_TEXTS, max_length=64, pack=False, reverse=True)
    for f, b in zip(forward, backward):
        assert sorted(f.input_ids) == sorted(b.input_ids)  # the same token multiset
        assert b.input_ids[0] == f.input_ids[0] == tok.bos_token_id and b.input_ids[-1] == tok.eos_token_id
        assert b.input_ids[1:-1][::-1] == f.input_ids[1:-1]  # reversal round-trips
    packed = encode_documents(tok, TOY_TEXTS * 3, max_length=16)
    assert len(packed) > 3 and all(len(b.input_ids) <= 16 for b in packed)
    assert all(b.input_ids[0] == tok.bos_token_id for b in packed)  # no block opens mid-text without BOS
    result = train(
        str(tiny_causal_dir),
        fast(objective="documents", method="full", max_length=32),
        tmp_path / "docs",
        documents=TOY_TEXTS * 2,
        reverse=True,
    )
    assert logged_losses(result)[-1] < logged_losses(result)[0]


def test_from_scratch_model_loads_and_trains(tmp_path):
    from slmkit.models import load_model
    from slmkit.train import ScratchConfig, build_from_scratch

    corpus = TOY_TEXTS * 5
    path = build_from_scratch(
        corpus,
        tmp_path / "scratch",
        ScratchConfig(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64),
    )
    lm = load_model(str(path), dtype="float32")  # training takes float32 weights; auto is bf16 on some CPUs
    assert lm.spec.kind == "causal" and len(lm.tokenizer) <= 400
    result = train(lm, fast(objective="documents", method="full", max_length=32), tmp_path / "run", documents=corpus)
    assert logged_losses(result)[-1] < logged_losses(result)[0]
    with pytest.raises(ConfigError, match="already exists"):
        build_from_scratch(corpus, tmp_path / "scratch")


def test_train_config_round_trips_and_rejects_unknown_fields(tmp_path):
    config = TrainConfig(method="ptuning", lora_targets=["q_proj"], epochs=1.5)
    config.save(tmp_path)
    assert TrainConfig.load(tmp_path) == config
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"methd": "lora"})
    assert TrainConfig().lora_target_modules("gemma3_text")[0] == "q_proj"
    assert TrainConfig().lora_target_modules("somethingnew") == "all-linear"


def test_early_stopping_and_best_checkpoint_come_from_the_trainer(tiny_causal_dir, tmp_path):
    # A learning rate this large makes the eval loss climb after the first steps: patience 1 stops the run
    # long before max_steps, and the best (lowest eval loss) checkpoint is the one kept.
    config = fast(learning_rate=3.0, max_steps=40, eval_steps=1, early_stopping_patience=1, method="full")
    result = train(
        str(tiny_causal_dir), config, tmp_path / "run", train_pairs=(PROMPTS, TARGETS), eval_pairs=(PROMPTS, TARGETS)
    )
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert result.info["steps"] < 40
    assert result.metrics["best_metric"] == pytest.approx(min(evals))


def test_checkpoints_off_the_evaluations_and_unknown_metrics_are_refused_before_anything_is_written(
        tiny_causal_dir, tmp_path):
    pairs = dict(train_pairs=(PROMPTS, TARGETS), eval_pairs=(PROMPTS, TARGETS))
    for bad in (dict(save_steps=2), dict(save_steps=2, eval_steps=3)):  # transformers refused them mid-setup
        with pytest.raises(ConfigError, match="save_steps .* must be a multiple of eval_steps"):
            train(str(tiny_causal_dir), fast(max_steps=2, **bad), tmp_path / "run", **pairs)
        assert not (tmp_path / "run").exists()  # a folder left here refused the corrected config as another run

    def generation_eval(model, tokenizer):
        return {"rouge": 0.0}

    generation_eval.metrics = ("rouge",)
    with pytest.raises(ConfigError, match="metric_for_best='rouge_l' is not a metric of this job; choose one of "
                                          "loss, rouge"):
        train(str(tiny_causal_dir), fast(max_steps=2, metric_for_best="rouge_l"), tmp_path / "run",
              generation_eval=generation_eval, **pairs)
    result = train(str(tiny_causal_dir), fast(max_steps=2, save_steps=2, eval_steps=1), tmp_path / "run", **pairs)
    assert result.info["steps"] == 2


def test_a_diverged_run_stops_with_a_clear_error_and_writes_no_model(tiny_causal_dir, tmp_path):
    from transformers import TrainerCallback

    from slmkit.errors import TrainingDivergedError

    class Poison(TrainerCallback):  # what a bf16 overflow or a bad batch does: one NaN reaches the weights
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match=r"diverged at step \d+ \((grad_norm|loss) nan\)"):
        train(str(tiny_causal_dir), fast(method="full"), tmp_path / "nan", train_pairs=(PROMPTS, TARGETS),
              callbacks=[Poison()])  # fmt: skip
    assert not (tmp_path / "nan" / "model").exists()
    assert (tmp_path / "nan" / "metrics.jsonl").is_file()  # the per-step history is kept to look at
