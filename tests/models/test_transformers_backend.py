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
    # these failed inside the backend, after the model had loaded, or were accepted silently
    for field, value in (("top_k", -1), ("repetition_penalty", 0), ("no_repeat_ngram_size", -2)):
        with pytest.raises(ConfigError, match=f"{field} must be"):
            GenerationParams(**{field: value})


def test_inner_layers_stop_the_forward_pass_early_with_the_same_vectors(tmp_path):
    import torch

    from slmkit.models import load_model
    from slmkit.testing import make_tiny_model_dir

    lm = load_model(str(make_tiny_model_dir(tmp_path / "deep", num_layers=5)))
    blocks = lm.model.base_model.layers
    ran = []
    for i, block in enumerate(blocks):
        block.register_forward_hook(lambda module, args, output, i=i: ran.append(i))
    ids, mask = lm._pad(lm._encode(TEXTS), side="right")
    with torch.no_grad():
        full = lm.model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(full) == 6
    hooks = [len(block._forward_hooks) for block in blocks]
    pool = lm._pool_mask(ids, mask).unsqueeze(-1).float()
    for layers, expected_blocks in [((2,), [0, 1]), ((1, 3), [0, 1, 2]), ((-3,), [0, 1, 2]),
                                    ((2, -1), [0, 1, 2, 3, 4]), ((0, 2), [0, 1, 2, 3, 4])]:
        ran.clear()
        got = lm.embed(TEXTS, layers=layers, batch_size=len(TEXTS))
        assert ran == expected_blocks, layers  # blocks after the deepest requested layer never ran
        want = torch.cat([(full[layer].float() * pool).sum(1) / pool.sum(1) for layer in layers], dim=-1)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    states = lm.token_states(["great film"], layers=(2,))[0]  # explanations stop early too
    np.testing.assert_allclose(states.states[states.pooled_mask].mean(0), lm.embed(["great film"], layers=(2,))[0],
                               atol=1e-5)
    assert [len(block._forward_hooks) for block in blocks] == hooks  # the early exit removed its hooks
    with pytest.raises(ConfigError, match=r"out of range for a 5-layer model \(use -6\.\.5\)"):
        lm.embed(TEXTS, layers=(8,))  # never wrapped around to another layer


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


TRIM_CORPUS = ["the cat sat on the mat", "stock prices rose again", "오늘 날씨가 좋다"]


def _masked_generate(lm, prompt, keep, **knobs):
    """The full model's own generate with every token outside `keep` banned: what a trimmed head must equal."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class OnlyKept(LogitsProcessor):
        def __call__(self, input_ids, scores):
            mask = torch.full_like(scores, float("-inf"))
            mask[:, keep] = 0
            return scores + mask

    ids = lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.model.generate(**ids, logits_processor=LogitsProcessorList([OnlyKept()]), do_sample=False,
                                pad_token_id=lm.tokenizer.pad_token_id, **knobs)
    return lm.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_trimmed_output_layer_is_the_full_model_masked_to_the_kept_tokens(tiny_lm, tiny_causal_dir):
    from slmkit.models import load_model
    from slmkit.models._base import kept_token_ids
    from slmkit.models._transformers import TrimmedHead

    trimmed = load_model(str(tiny_causal_dir), dtype="float32", keep_tokens=TRIM_CORPUS)
    keep = kept_token_ids(tiny_lm.tokenizer, TRIM_CORPUS)
    head = trimmed.model.get_output_embeddings()
    assert isinstance(head, TrimmedHead) and head.proj.weight.shape[0] == len(keep) < len(tiny_lm.tokenizer)
    assert trimmed.info["kept_tokens"] == len(keep)
    assert trimmed.info["checksum"].startswith(tiny_lm.info["checksum"] + "+trimmed:")
    assert trimmed.info["embedding_checksum"] == tiny_lm.info["checksum"]
    prompts = ["hello world and more", "x", "오늘은"]  # prompts hold tokens outside the kept set
    expected = [_masked_generate(tiny_lm, p, keep, max_new_tokens=8) for p in prompts]
    assert trimmed.generate(prompts, max_new_tokens=8, batch_size=3) == expected  # batched, left-padded
    assert trimmed.generate(prompts, max_new_tokens=8, batch_size=1) == expected
    beams = trimmed.generate(prompts[:1], max_new_tokens=6, num_beams=3)
    assert beams == [_masked_generate(tiny_lm, prompts[0], keep, max_new_tokens=6, num_beams=3)]
    # the untrimmed model is untouched and the input side keeps every embedding
    np.testing.assert_allclose(trimmed.embed(TEXTS), tiny_lm.embed(TEXTS), atol=1e-6)
    for scoring in (lambda: trimmed.token_losses(TEXTS), lambda: trimmed.score_choices(["a"], [" b", " c"]),
                    lambda: trimmed.next_token_logprobs(["a"], [" b"])):
        with pytest.raises(ConfigError, match="needs the whole vocabulary"):
            scoring()
    with pytest.raises(ConfigError, match="list of texts"):
        load_model(str(tiny_causal_dir), dtype="float32", keep_tokens="one string")


def test_trimmed_soft_capped_model_never_samples_a_dropped_token(tiny_causal_dir, tmp_path):
    """Soft-capping (tanh(logits / cap) * cap) maps the trimmed head's -inf to -cap, a real probability."""
    import json
    import shutil

    from slmkit.models import load_model

    capped = tmp_path / "capped"
    shutil.copytree(tiny_causal_dir, capped)
    config = json.loads((capped / "config.json").read_text())
    config["final_logit_softcapping"] = 2.0
    (capped / "config.json").write_text(json.dumps(config))
    lm = load_model(str(capped), dtype="float32", keep_tokens=TRIM_CORPUS[:1])
    keep = set(lm.model.get_output_embeddings().kept.tolist())
    params = GenerationParams(max_new_tokens=40, min_new_tokens=40, do_sample=True, temperature=3.0, top_k=0)
    seen, decode = [], lm.tokenizer.decode
    lm.tokenizer.decode = lambda ids, **kw: (seen.append([int(i) for i in ids]), decode(ids, **kw))[1]
    lm.generate(["hello", "x y z"], params, batch_size=2)
    assert len(seen) == 2 and all(len(ids) == 40 and set(ids) <= keep for ids in seen)


def test_packed_bf16_linears_match_plain_bf16_and_survive_copies_and_edits(tiny_causal_dir, monkeypatch):
    import copy
    import pickle

    import torch

    from slmkit.models import load_model
    from slmkit.models._precision import mkldnn_bf16_linear_available
    from slmkit.models._transformers import PackedLinear

    if not mkldnn_bf16_linear_available():
        pytest.skip("no native bf16 / oneDNN linear on this CPU: bf16 layers stay plain (not packed)")
    packed = load_model(str(tiny_causal_dir), dtype="bfloat16")
    monkeypatch.setenv("SLMKIT_PACK_BF16", "0")
    plain = load_model(str(tiny_causal_dir), dtype="bfloat16")
    assert packed.info["packed_linears"] > 0 and plain.info["packed_linears"] == 0
    assert all(isinstance(m, torch.nn.Linear) for m in packed.model.modules() if isinstance(m, PackedLinear))
    np.testing.assert_array_equal(packed.embed(TEXTS), plain.embed(TEXTS))  # the same numbers, bit for bit
    np.testing.assert_array_equal(np.concatenate(packed.token_losses(TEXTS)), np.concatenate(plain.token_losses(TEXTS)))
    assert packed.generate(TEXTS, max_new_tokens=6) == plain.generate(TEXTS, max_new_tokens=6)
    # a copy drops the packed weights and packs again on use (classification's LoRA adaptation deep-copies)
    clone, ids = copy.deepcopy(packed.model), torch.tensor([[2, 10, 11, 12]])
    layer = next(m for m in clone.modules() if isinstance(m, PackedLinear))
    assert "_packed" not in vars(layer)
    with torch.no_grad():
        assert torch.equal(clone(ids).logits, packed.model(ids).logits)
    assert pickle.loads(pickle.dumps(layer)).__getstate__().get("_packed") is None
    # an in-place edit of a weight (a LoRA merge, an optimizer step) is seen at the next call
    layer = next(m for m in packed.model.modules() if isinstance(m, PackedLinear))
    x = torch.randn(3, layer.in_features, dtype=torch.bfloat16)
    with torch.no_grad():
        layer(x)
        layer.weight.mul_(2)
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    # autograd runs the plain product (the packed copy carries no gradient)
    out = layer(x.requires_grad_())
    out.float().sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_min_new_tokens_equals_transformers_own_when_eos_comes_first(kind, tiny_causal_dir, tmp_path):
    """slmkit bans EOS with its own cheap processor (greedy and beam search); the text must be what transformers'
    `min_new_tokens` gives. EOS is made the model's first greedy choice, so the minimum really bites."""
    import torch

    from slmkit.models import load_model
    from slmkit.testing import make_tiny_model_dir

    lm = load_model(str(tiny_causal_dir if kind == "causal" else make_tiny_model_dir(tmp_path, kind=kind)),
                    dtype="float32")
    prompt = "hello world and more"
    ids = lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        first = lm.model.generate(**ids, max_new_tokens=1, do_sample=False)[0, -1].item()
    lm.model.generation_config.eos_token_id = first
    skip = 1 if kind == "seq2seq" else ids["input_ids"].shape[1]  # the decoder start token / the prompt
    with torch.no_grad():
        assert lm.model.generate(**ids, max_new_tokens=6, do_sample=False).shape[1] == skip + 1  # EOS right away
    for beams in (1, 3):
        with torch.no_grad():
            out = lm.model.generate(**ids, max_new_tokens=6, min_new_tokens=4, num_beams=beams, do_sample=False)
        assert out.shape[1] - skip >= 4
        expected = lm.tokenizer.decode(out[0, skip:], skip_special_tokens=True)
        assert lm.generate([prompt], max_new_tokens=6, min_new_tokens=4, num_beams=beams) == [expected]


def test_empty_input_lists_give_empty_results(tiny_lm):
    assert tiny_lm.embed([]).shape[0] == 0 and tiny_lm.token_losses([]) == []
    assert tiny_lm.generate([]) == [] and tiny_lm.generate_detailed([]) == [] and tiny_lm.count_tokens([]) == []
    assert tiny_lm.score_choices([], ["a b", "c d"]).shape == (0, 2)


def test_older_lm_head_architectures_are_causal(tmp_path):
    import json

    from slmkit.models._registry import _kind_of_dir

    for name, kind in [("GPT2LMHeadModel", "causal"), ("LlamaForCausalLM", "causal"), ("BertModel", "encoder")]:
        (tmp_path / "config.json").write_text(json.dumps({"architectures": [name]}))
        assert _kind_of_dir(tmp_path) == kind, name


def test_keep_tokens_with_int8_is_refused_before_loading(tiny_causal_dir):
    from slmkit.errors import ConfigError
    from slmkit.models import load_model

    with pytest.raises(ConfigError, match="keep_tokens and quantize='int8'"):
        load_model(str(tiny_causal_dir), dtype="float32", quantize="int8", keep_tokens=["some text"])


def test_a_generation_config_eos_that_is_not_special_is_no_text(tiny_lm):
    prompt = "Stock prices rose"
    ids = tiny_lm.tokenizer(prompt, return_tensors="pt")
    import torch

    with torch.no_grad():
        first = tiny_lm.model.generate(**ids, max_new_tokens=1, do_sample=False)[0, -1].item()
    config = tiny_lm.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [saved, first] if isinstance(saved, int) else [*saved, first]
    try:
        (generation,) = tiny_lm.generate_detailed([prompt], max_new_tokens=8)
    finally:
        config.eos_token_id = saved
    assert (generation.text, generation.n_tokens, generation.finish_reason) == ("", 0, "stop")


def test_a_trimmed_output_layer_keeps_the_generation_configs_end_tokens(tiny_causal_dir, tmp_path):
    import json
    import shutil

    import torch

    from slmkit.models import load_model

    folder = tmp_path / "two-eos"
    shutil.copytree(tiny_causal_dir, folder)
    full = load_model(str(folder), dtype="float32")
    prompt = "Stock prices rose"
    ids = full.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = full.model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    end = int(out[0, -1])
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = [full.tokenizer.eos_token_id, end]
    (folder / "generation_config.json").write_text(json.dumps(config))
    texts = ["a few words that do not need that token"]
    trimmed = load_model(str(folder), dtype="float32", keep_tokens=texts)
    assert end in trimmed.model.get_output_embeddings().kept.tolist()
    assert trimmed.generate_detailed([prompt], max_new_tokens=8)[0].finish_reason == "stop"
