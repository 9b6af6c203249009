"""Inference precision of the transformers backend: dtype= / quantize= / $SLMKIT_DTYPE, on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.models import _precision as precision
from slmkit.models import load_model

TEXTS = ["hello world", "오늘 날씨가 좋네요", "a much longer text that needs padding in the batch", "x"]


@pytest.fixture(scope="module")
def bf16_lm(tiny_causal_dir):
    return load_model(str(tiny_causal_dir), dtype="bfloat16")


@pytest.fixture(autouse=True)
def no_env_dtype(monkeypatch):
    monkeypatch.delenv("SLMKIT_DTYPE", raising=False)


def _cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_dtype_is_applied_and_recorded(bf16_lm, tiny_lm):
    assert bf16_lm.info["dtype"] == "bfloat16" and bf16_lm.info["quantize"] is None
    assert bf16_lm.info["dtype_requested"] == "bfloat16"
    assert next(bf16_lm.model.parameters()).dtype == torch.bfloat16
    # Caches keyed by the checksum never mix precisions; the files' own checksum stays available.
    assert bf16_lm.info["weights_checksum"] == tiny_lm.info["checksum"] == tiny_lm.info["weights_checksum"]
    assert bf16_lm.info["checksum"] == tiny_lm.info["checksum"] + "+bfloat16"
    assert tiny_lm.info["dtype"] == "float32" and next(tiny_lm.model.parameters()).dtype == torch.float32


def test_bf16_outputs_are_float32_arrays_close_to_float32(bf16_lm, tiny_lm):
    vectors, reference = bf16_lm.embed(TEXTS, layers=[0, -1]), tiny_lm.embed(TEXTS, layers=[0, -1])
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert _cosine(vectors, reference).min() > 0.999
    losses, ref_losses = bf16_lm.token_losses(TEXTS), tiny_lm.token_losses(TEXTS)
    assert all(x.dtype == np.float32 for x in losses)
    assert [len(x) for x in losses] == [len(x) for x in ref_losses]
    for got, want in zip(losses, ref_losses):
        assert got.mean() == pytest.approx(want.mean(), rel=0.01)
    scores = bf16_lm.score_choices(["the cat sat", "오늘"], [" on the mat", " 날씨"])
    np.testing.assert_allclose(scores, tiny_lm.score_choices(["the cat sat", "오늘"], [" on the mat", " 날씨"]),
                               rtol=0.02)
    states = bf16_lm.token_states(TEXTS[:1])[0].states
    assert states.dtype == np.float32


def test_bf16_text_with_nothing_scored_gives_an_empty_float32_array(bf16_lm):
    (losses,) = bf16_lm.token_losses([""])  # BOS only: nothing to score
    assert losses.dtype == np.float32 and len(losses) == 0


def test_bf16_embeddings_still_skip_the_logit_layer(bf16_lm, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("embed must not project to the vocabulary")

    monkeypatch.setattr(bf16_lm.model.get_output_embeddings(), "forward", boom)
    bf16_lm.embed(TEXTS)


def test_bf16_generates(bf16_lm):
    out = bf16_lm.generate(["hello", "오늘 날씨가"], max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(x, str) for x in out)
    sampled = bf16_lm.generate(["hello"], max_new_tokens=4, do_sample=True, seed=1)
    assert sampled == bf16_lm.generate(["hello"], max_new_tokens=4, do_sample=True, seed=1)


def test_int8_quantises_the_linear_layers(tiny_causal_dir, tiny_lm):
    lm = load_model(str(tiny_causal_dir), quantize="int8")
    assert lm.info["quantize"] == "int8" and lm.info["dtype"] == "float32"
    assert lm.info["checksum"].endswith("+int8")
    assert lm.info["n_parameters"] == tiny_lm.info["n_parameters"]  # counted before the weights are packed
    assert not any(type(m) is torch.nn.Linear for m in lm.model.modules())
    vectors = lm.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == tiny_lm.embed(TEXTS).shape
    assert all(x.dtype == np.float32 for x in lm.token_losses(TEXTS))
    assert len(lm.generate(["hello"], max_new_tokens=3)) == 1


def test_invalid_choices_are_clear_config_errors(tiny_causal_dir):
    with pytest.raises(ConfigError, match="dtype= must be one of auto, float32, bfloat16, float16"):
        load_model(str(tiny_causal_dir), dtype="float8")
    with pytest.raises(ConfigError, match="quantize must be None or 'int8'"):
        load_model(str(tiny_causal_dir), quantize="int4")
    with pytest.raises(ConfigError, match="cannot be combined with bfloat16"):
        load_model(str(tiny_causal_dir), dtype="bfloat16", quantize="int8")
    with pytest.raises(ConfigError, match="CPU only"):
        precision.resolve_precision(None, "int8", "cuda")


def test_aliases_are_accepted(tiny_causal_dir):
    assert precision.requested_dtype("bf16") == "bfloat16"
    assert precision.requested_dtype(" FP32 ") == "float32"
    assert load_model(str(tiny_causal_dir), dtype="fp16").info["dtype"] == "float16"


def test_env_dtype_is_honoured_and_an_argument_wins(tiny_causal_dir, monkeypatch):
    monkeypatch.setenv("SLMKIT_DTYPE", "bfloat16")
    lm = load_model(str(tiny_causal_dir))
    assert lm.info["dtype"] == "bfloat16" and next(lm.model.parameters()).dtype == torch.bfloat16
    assert load_model(str(tiny_causal_dir), dtype="float32").info["dtype"] == "float32"
    monkeypatch.setenv("SLMKIT_DTYPE", "double")
    with pytest.raises(ConfigError, match=r"\$SLMKIT_DTYPE must be one of"):
        load_model(str(tiny_causal_dir))


def test_auto_is_float32_on_a_cpu_without_bf16_and_bf16_with_it(tiny_causal_dir, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx", "avx2", "fma"})  # AMD EPYC Zen 3
    assert precision.auto_dtype("cpu") == "float32"
    lm = load_model(str(tiny_causal_dir), device="cpu")
    assert lm.info["dtype"] == "float32" and lm.info["dtype_requested"] == "auto"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})  # Sapphire Rapids-like
    assert precision.auto_dtype("cpu") == "bfloat16"
    assert load_model(str(tiny_causal_dir), device="cpu", dtype="auto").info["dtype"] == "bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert precision.cpu_native_bf16()


def test_cpu_flags_reads_proc_cpuinfo():
    flags = precision.cpu_flags()
    assert isinstance(flags, set)
    if flags:  # Linux
        assert "fpu" in flags or "neon" in flags or "asimd" in flags or "sse2" in flags
