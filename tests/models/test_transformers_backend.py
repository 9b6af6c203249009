from __future__ import annotations

import numpy as np
import pytest

from slmkit.errors import ConfigError
from slmkit.models import GenerationParams

TEXTS = ["hello world", "오늘 날씨가 좋네요", "a much longer text that needs padding in the batch", "x"]


def test_embed_shapes_layers_and_batch_invariance(tiny_lm):
    one = tiny_lm.embed(TEXTS, batch_size=1)
    many = tiny_lm.embed(TEXTS, batch_size=4)
    assert one.shape == (4, 32) and one.dtype == np.float32
    np.testing.assert_allclose(one, many, atol=1e-5)  # padding and length sorting must not change results
    two = tiny_lm.embed(TEXTS, layers=[0, -1], pooling="last")
    assert two.shape == (4, 64)
    normed = tiny_lm.embed(TEXTS, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1, atol=1e-5)


def test_embed_template_changes_vectors_and_is_validated(tiny_lm):
    plain = tiny_lm.embed(TEXTS[:1])
    wrapped = tiny_lm.embed(TEXTS[:1], template="Review: {text}\nSentiment:")
    assert not np.allclose(plain, wrapped)
    with pytest.raises(ConfigError, match=r"must contain '\{text\}' exactly once"):
        tiny_lm.embed(TEXTS, template="no placeholder")
    with pytest.raises(ConfigError, match="pooling must be one of"):
        tiny_lm.embed(TEXTS, pooling="max")


def test_embed_skips_the_logit_layer(tiny_lm, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("embed must not project to the vocabulary")

    monkeypatch.setattr(tiny_lm.model.get_output_embeddings(), "forward", boom)
    tiny_lm.embed(TEXTS)


def test_token_losses_match_the_model_own_loss(tiny_lm):
    import torch

    losses = tiny_lm.token_losses(TEXTS, batch_size=3)
    assert [len(x) for x in losses] == tiny_lm.count_tokens(TEXTS)
    ids = tiny_lm.tokenizer(TEXTS[2], return_tensors="pt").input_ids
    with torch.no_grad():
        reference = tiny_lm.model(input_ids=ids, labels=ids).loss.item()
    assert losses[2].mean() == pytest.approx(reference, abs=1e-4)


def test_score_choices_equals_sum_of_token_losses(tiny_lm):
    scores = tiny_lm.score_choices(["the cat sat", "오늘"], [" on the mat", " 날씨"])
    assert scores.shape == (2, 2)
    assert np.all(scores < 0)
    full = tiny_lm.token_losses(["the cat sat on the mat"])[0]
    prompt_tokens = len(tiny_lm.tokenizer("the cat sat").input_ids)  # BOS included
    n_choice = len(tiny_lm.tokenizer(" on the mat", add_special_tokens=False).input_ids)
    # Same tokens whether the text is split or not (byte-level BPE on a word boundary).
    assert len(full) == prompt_tokens - 1 + n_choice
    assert scores[0, 0] == pytest.approx(-full[-n_choice:].sum(), abs=1e-4)
    per_prompt = tiny_lm.score_choices(["a", "b"], [[" x", " y"], [" z", " w"]], reduction="mean")
    assert per_prompt.shape == (2, 2)


def test_generate_is_seeded_and_returns_only_new_text(tiny_lm):
    greedy = tiny_lm.generate(["hello", "오늘 날씨가"], max_new_tokens=5)
    assert greedy == tiny_lm.generate(["hello", "오늘 날씨가"], max_new_tokens=5, batch_size=1)
    sampled = GenerationParams(max_new_tokens=6, do_sample=True, temperature=1.5, seed=3)
    assert tiny_lm.generate(["hello"], sampled) == tiny_lm.generate(["hello"], sampled)
    beams = tiny_lm.generate(["hello"], max_new_tokens=4, num_beams=2, no_repeat_ngram_size=2)
    assert len(beams) == 1 and not beams[0].startswith("hello")


def test_generation_params_are_validated():
    with pytest.raises(ConfigError, match="max_new_tokens must be >= 1"):
        GenerationParams(max_new_tokens=0)
    with pytest.raises(ConfigError, match="top_p must be in"):
        GenerationParams(top_p=0)


def test_token_states_reproduce_mean_pooling(tiny_lm):
    template = "Review: {text}\nSentiment:"
    states = tiny_lm.token_states(["great film"], template=template)[0]
    assert states.states.shape == (len(states.tokens), 32)
    pooled = states.states[states.pooled_mask].mean(0)
    np.testing.assert_allclose(pooled, tiny_lm.embed(["great film"], template=template)[0], atol=1e-5)
    start, end = states.text_span
    assert template.replace("{text}", "great film")[start:end] == "great film"


def test_encoder_embeds_but_does_not_generate(tiny_encoder):
    assert tiny_encoder.embed(TEXTS).shape == (4, 32)
    with pytest.raises(ConfigError, match="needs a causal LM"):
        tiny_encoder.generate(["hi"])


def test_overlong_text_warns_once(tiny_lm):
    with pytest.warns(UserWarning, match="truncated"):
        tiny_lm.token_losses(["word " * 700])


def test_device_choice_is_validated(monkeypatch):
    import torch

    from slmkit.errors import ConfigError
    from slmkit.models._transformers import resolve_device

    monkeypatch.delenv("SLMKIT_DEVICE", raising=False)
    assert resolve_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == "cpu"
    monkeypatch.setenv("SLMKIT_DEVICE", "cpu")
    assert resolve_device() == "cpu"
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_output_layer_gets_a_contiguous_input_for_a_frozen_model(tiny_causal_dir):
    """generate projects `hidden[:, -1:, :]`, a non-contiguous view; with frozen weights (a merged LoRA) torch's
    CPU linear then copies the whole output layer once per sequence (3x slower decoding of fine-tuned
    summarizers in bf16). The loader hands the layer a contiguous input."""
    from slmkit.models import load_model

    lm = load_model(str(tiny_causal_dir), dtype="float32")
    for parameter in lm.model.parameters():
        parameter.requires_grad_(False)  # as merge_and_unload leaves a merged LoRA
    seen = []
    lm.model.get_output_embeddings().register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    prompts = ["a longer prompt of several tokens", "another prompt"]
    lm.generate(prompts, GenerationParams(max_new_tokens=3, min_new_tokens=3), batch_size=2)
    # batch 1: the (1, 1, d) slice counts as contiguous already
    lm.generate(prompts[:1], GenerationParams(max_new_tokens=3, min_new_tokens=3), batch_size=1)
    assert len(seen) == 6 and all(x.shape[1] == 1 for x in seen)  # each pass projected only the last position
    # row-major strides, the size-1 dimension's included: matmul's fold check reads them all
    assert all(x.stride() == (x.shape[1] * x.shape[2], x.shape[2], 1) for x in seen)
