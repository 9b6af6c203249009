"""Real built-in models (slow: part of the README test command and CI)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"
TEXTS = ["The capital of France is Paris, a city on the Seine.", "오늘은 날씨가 맑아서 공원에 산책을 갔다."]


def _top5(logits) -> list[int]:
    return [int(i) for i in np.argsort(-np.asarray(logits))[:5]]


def test_gemma_runtime_paths(gemma):
    assert gemma.info["checksum"] == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert gemma.embed(TEXTS, layers=[9, -1]).shape == (2, 1280)
    losses = gemma.token_losses(TEXTS)
    assert all(0.5 < float(np.exp(x.mean())) < 500 for x in losses)  # a real LM, not random weights (~262k ppl)
    paris, london = gemma.score_choices([PROMPT], [" Paris", " Berlin"])[0]
    assert paris > london
    (text,) = gemma.generate([PROMPT], max_new_tokens=8)
    assert text.strip()


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python not installed (optional extra slmkit[llamacpp])",
)
def test_transformers_and_llamacpp_agree(gemma):
    """Same top-5 next tokens on a fixed prompt; mean token loss within 0.05 nats."""
    import torch

    from slmkit.models import load_model

    cpp = load_model("gemma3-270m", backend="llamacpp", n_ctx=256)
    ids = gemma.tokenizer(PROMPT).input_ids
    with torch.no_grad():
        hf_logits = gemma.model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
    assert _top5(hf_logits) == _top5(cpp.next_token_logits(ids))
    hf_loss = [float(x.mean()) for x in gemma.token_losses(TEXTS)]
    cpp_loss = [float(x.mean()) for x in cpp.token_losses(TEXTS)]
    assert np.allclose(hf_loss, cpp_loss, atol=0.05), (hf_loss, cpp_loss)
    assert cpp.score_choices([PROMPT], [" Paris", " Berlin"]).shape == (1, 2)
    assert cpp.embed(TEXTS).shape == (2, 640)
    assert cpp.generate([PROMPT], max_new_tokens=4)[0].strip()
    # the same GGUF, other numbers (4-bit weights): caches keyed by the checksum must not mix the two backends
    assert cpp.info["gguf_sha256"] == gemma.info["checksum"]
    assert cpp.info["checksum"] != gemma.info["checksum"]


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python not installed (optional extra slmkit[llamacpp])",
)
def test_llamacpp_zero_shot_scores_are_not_served_from_the_transformers_cache(gemma, tmp_path):
    from slmkit.classify import ZeroShotClassifier
    from slmkit.classify._cache import EmbeddingCache
    from slmkit.models import load_model

    cache = EmbeddingCache(tmp_path / "cache")
    texts = ["The film was a delight from start to finish.", "A dull, tedious mess."]
    words = {"positive": " great", "negative": " terrible"}
    prompt = "Review: {text}\nThe review is"
    scores = {}
    for name, lm in (("transformers", gemma), ("llamacpp", load_model("gemma3-270m", backend="llamacpp"))):
        cache.add_model(name, lm)
        clf = ZeroShotClassifier(name, prompt=prompt, label_words=words, cache=cache).fit()
        scores[name] = clf.decision_function(texts)
    # 4-bit llama.cpp scores are close to float32's but never bit-identical: equal arrays would be a cache hit
    assert not np.array_equal(scores["transformers"], scores["llamacpp"])


def _top1_agreement(reference, other_logits) -> float:
    """Teacher-forced next-token agreement of `other_logits(ids)` with the transformers model `reference`."""
    import torch

    agree = total = 0
    for text in TEXTS:
        ids = reference._encode([text])[0]
        with torch.no_grad():
            slow = reference.model(torch.tensor([ids])).logits[0].argmax(-1).numpy()
        fast = np.asarray(other_logits(list(ids))).argmax(-1)
        agree, total = agree + int((fast == slow).sum()), total + len(ids)
    return agree / total


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python not installed (optional extra slmkit[llamacpp])",
)
def test_llamacpp_serves_a_lora_run_with_its_adapter_on_the_4bit_base(tmp_path):
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from slmkit.models import load_model, resolve_model

    run = tmp_path / "run"
    torch.manual_seed(0)
    base = load_model("gemma3-270m", dtype="float32")
    # a LoRA whose B is not zero (peft's default would make the adapter a no-op), large enough to move the model
    adapted = get_peft_model(base.model, LoraConfig(r=8, lora_alpha=8, init_lora_weights=False,
                                                    target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
    adapted.save_pretrained(str(run / "model"))
    (run / "slmkit_run.json").write_text(json.dumps(
        {"status": "done", "method": "lora", "base_model": resolve_model("gemma3-270m").to_dict()}))
    tuned = load_model(str(run), dtype="float32")
    cpp = load_model(str(run), backend="llamacpp", n_ctx=256)
    cpp_base = load_model("gemma3-270m", backend="llamacpp", n_ctx=256)
    with_adapter = _top1_agreement(tuned, cpp._logits)
    base_only = _top1_agreement(tuned, cpp_base._logits)
    assert with_adapter >= 0.9, with_adapter  # the 4-bit base + adapter follows the fine-tuned model
    assert base_only < with_adapter - 0.1, (base_only, with_adapter)  # ... and the adapter is really applied
    assert "+adapter:" in cpp.info["checksum"] and cpp.info["checksum"] != cpp_base.info["checksum"]
    converted = Path(cpp.info["lora_gguf"])
    stamp = converted.stat().st_mtime_ns
    again = load_model(str(run), backend="llamacpp", n_ctx=256)
    assert Path(again.info["lora_gguf"]) == converted and converted.stat().st_mtime_ns == stamp  # converted once
    assert again.generate([PROMPT], max_new_tokens=4)[0] is not None


def _hand_made_lora(folder: Path, *, rsLoRA: bool = False) -> dict:
    """A peft LoRA adapter folder for gemma3-270m's layer-0 query projection, written by hand (no model load)."""
    import json

    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(8, 640, generator=gen),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(1024, 8, generator=gen),
    }
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "use_rslora": rsLoRA}))
    return tensors


@pytest.mark.parametrize("rslora", [False, True])
def test_a_lora_adapter_converts_to_llamacpp_whole_or_not_at_all(tmp_path, monkeypatch, rslora):
    # needs the gguf package and the built-in GGUF only (not llama-cpp-python): runs wherever the slow tests run
    import gguf

    from slmkit.models import resolve_model
    from slmkit.models._llamacpp import lora_adapter_gguf
    from slmkit.models._weights import cache_dir, gguf_path

    base = gguf_path(resolve_model("gemma3-270m"))
    tensors = _hand_made_lora(tmp_path / "adapter", rsLoRA=rslora)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    before = set((cache_dir() / "llamacpp").glob("*"))  # other tests' conversions share the session's cache
    with monkeypatch.context() as patch:  # killed while writing the tensors
        patch.setattr(gguf.GGUFWriter, "write_tensors_to_file", interrupted)
        with pytest.raises(KeyboardInterrupt):
            lora_adapter_gguf(tmp_path / "adapter", base)
    assert set((cache_dir() / "llamacpp").glob("*")) == before, "a broken or partial adapter was left in the cache"

    converted = lora_adapter_gguf(tmp_path / "adapter", base)
    reader = gguf.GGUFReader(str(converted))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    # llama.cpp scales by alpha / r: the peft scaling (alpha / r, or alpha / sqrt(r) with rsLoRA) times r
    expected_alpha = 16 / (8**0.5 if rslora else 8) * 8
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(expected_alpha)
    got = {t.name: np.asarray(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    assert set(got) == {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b"}
    np.testing.assert_array_equal(
        got["blk.0.attn_q.weight.lora_a"],
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].numpy())
    np.testing.assert_array_equal(
        got["blk.0.attn_q.weight.lora_b"],
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].numpy())
    assert lora_adapter_gguf(tmp_path / "adapter", base) == converted  # cached: converted once
