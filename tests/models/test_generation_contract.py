"""Every backend honours GenerationParams the same way: max tokens, stop strings, the suppressed leading
newline, min_new_tokens; and the single-token fast path of score_choices equals the per-choice path.

llama-cpp-python is an optional extra that is usually not installed: its code path runs here against a fake
`Llama` that wraps the tiny transformers model (same tokenizer, same logits, llama-cpp-python's completion
loop), so both backends must produce the very same text. With the real extra installed, the real-model test
in test_real_models.py compares them on gemma3-270m.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.models import GenerationParams
from slmkit.models._base import cut_at_stop, log_softmax
from slmkit.models._llamacpp import LlamaCppLM
from slmkit.models._spec import ModelSpec

PROMPTS = ["The cat sat on", "Stock prices rose", "오늘 날씨가"]


class FakeLlama:
    """llama_cpp.Llama's surface that slmkit uses, computed by a transformers model (greedy decoding only)."""

    def __init__(self, lm, *, logits_all=False, embedding=False, **_):
        self.lm, self.tok = lm, lm.tokenizer
        self.calls: list[dict] = []
        self._ids: list[int] = []

    # tokens
    def tokenize(self, text: bytes, add_bos=True, special=False):
        ids = self.tok(text.decode("utf-8"), add_special_tokens=False)["input_ids"]
        return ([self.tok.bos_token_id] if add_bos else []) + ids

    def detokenize(self, ids, prev_tokens=None, special=False) -> bytes:
        return self.tok.decode(list(ids), skip_special_tokens=True).encode("utf-8")

    def n_vocab(self):
        return len(self.tok)

    def n_embd(self):
        return self.lm.model.config.hidden_size

    def token_eos(self):
        return self.tok.eos_token_id

    # scoring context
    def reset(self):
        self._ids = []

    def eval(self, ids):
        self._ids = list(ids)

    @property
    def scores(self):
        with torch.no_grad():
            return self.lm.model(torch.tensor([self._ids])).logits[0].float().numpy()

    # generation: llama-cpp-python's loop (processor, greedy pick, EOS, stop strings cut from the text)
    def create_completion(self, prompt, *, max_tokens, temperature, top_k, top_p, repeat_penalty, seed,
                          stop=None, logits_processor=None, **extra):
        assert temperature == 0.0 and top_k == 1, "the fake decodes greedily only"
        self.calls.append({"max_tokens": max_tokens, "stop": stop, "seed": seed, **extra})
        ids = self.tokenize(prompt.encode("utf-8"))
        new: list[int] = []
        text, finish = "", "length"
        for _ in range(max_tokens):
            self.eval(ids + new)
            logits = self.scores[-1].copy()
            if logits_processor is not None:
                logits = logits_processor(np.asarray(ids + new, dtype=np.intc), logits)
            token = int(np.argmax(logits))
            if token == self.token_eos():
                finish = "stop"
                break
            new.append(token)
            text = self.detokenize(new).decode("utf-8", errors="replace")
            if stop and any(s in text for s in stop):
                text, finish = cut_at_stop(text, stop), "stop"
                break
        # as llama-cpp-python: generated tokens up to the one completing a stop string, EOS not counted
        return {"choices": [{"text": text, "finish_reason": finish}],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(new),
                          "total_tokens": len(ids) + len(new)}}


class _LogitsProcessorList(list):
    def __call__(self, input_ids, scores):
        for processor in self:
            scores = processor(input_ids, scores)
        return scores


@pytest.fixture()
def fake_cpp(tiny_lm, monkeypatch):
    fake_module = types.SimpleNamespace(
        Llama=lambda **kwargs: FakeLlama(tiny_lm, **kwargs), LogitsProcessorList=_LogitsProcessorList,
        LLAMA_POOLING_TYPE_NONE=0,
    )
    monkeypatch.setattr("slmkit.models._llamacpp._import_llama_cpp", lambda: fake_module)
    spec = ModelSpec(name="tiny-gguf", path="unused.gguf", backend="llamacpp")
    monkeypatch.setattr("slmkit.models._llamacpp.sha256_file", lambda path: "0" * 64)
    return LlamaCppLM(spec, "unused.gguf", n_ctx=512, num_threads=1)


def _both(tiny_lm, fake_cpp, params):
    hf = [tiny_lm.generate([p], params, batch_size=1)[0] for p in PROMPTS]
    return hf, fake_cpp.generate(PROMPTS, params)


def test_max_new_tokens_same_text_on_every_backend(tiny_lm, fake_cpp):
    seen = _spy_new_tokens(tiny_lm)
    try:
        hf, cpp = _both(tiny_lm, fake_cpp, GenerationParams(max_new_tokens=6))
    finally:
        del tiny_lm.model.generate
    assert hf == cpp
    assert max(seen) <= 6 and fake_cpp._llm.calls[-1]["max_tokens"] == 6


def _spy_new_tokens(lm) -> list[int]:
    """Record how many tokens each `model.generate` call added (undo with `del lm.model.generate`)."""
    seen, original = [], lm.model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        seen.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    lm.model.generate = spy
    return seen


def test_stop_strings_cut_the_same_way_on_every_backend(tiny_lm, fake_cpp):
    full = [tiny_lm.generate([p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    stop = full[0][3:5]  # a string the first continuation really produces, after some text
    assert stop
    params = GenerationParams(max_new_tokens=12, stop=(stop, "never-produced"))
    hf, cpp = _both(tiny_lm, fake_cpp, params)
    assert hf == cpp
    assert hf[0] == full[0][: full[0].index(stop)]
    for text, whole in zip(hf, full):  # every output is the un-stopped text cut before its first stop string
        assert text == cut_at_stop(whole, params.stop) and stop not in text
    assert fake_cpp._llm.calls[-1]["stop"] == [stop, "never-produced"]
    # batched transformers generation (left padding, several rows) stops each row on its own
    assert tiny_lm.generate(PROMPTS, params, batch_size=3) == hf


def test_stop_strings_end_generation_early(tiny_lm):
    full = tiny_lm.generate(PROMPTS[:1], max_new_tokens=30)[0]
    stop = full[1:3]
    seen = _spy_new_tokens(tiny_lm)
    try:
        assert tiny_lm.generate(PROMPTS[:1], max_new_tokens=30, stop=(stop,))[0] == full[: full.index(stop)]
    finally:
        del tiny_lm.model.generate
    assert seen[0] < 30


def test_suppressed_leading_newline_same_on_every_backend(tiny_lm, fake_cpp):
    # The tiny model rarely starts with a line break, so declare its usual first token "a newline token".
    first = tiny_lm.generate(PROMPTS[:1], max_new_tokens=1, batch_size=1)[0]
    first_id = tiny_lm.tokenizer(first, add_special_tokens=False)["input_ids"][0]
    tiny_lm._newline_ids = fake_cpp._newline_ids = [first_id]
    try:
        hf, cpp = _both(tiny_lm, fake_cpp, GenerationParams(max_new_tokens=4, suppress_leading_newline=True))
        plain = tiny_lm.generate(PROMPTS[:1], max_new_tokens=4, batch_size=1)[0]
    finally:
        tiny_lm._newline_ids = None
    assert hf == cpp
    assert not hf[0].startswith(first) and plain.startswith(first)


def test_newline_token_ids_are_whitespace_with_a_line_break(tiny_lm, fake_cpp):
    ids = tiny_lm.newline_token_ids()
    assert ids and all("\n" in tiny_lm.tokenizer.decode([i]) and not tiny_lm.tokenizer.decode([i]).strip()
                       for i in ids)
    assert set(fake_cpp.newline_token_ids()) >= set(ids)


def test_min_new_tokens_bans_eos_on_every_backend(tiny_lm, fake_cpp):
    eos = tiny_lm.tokenizer.eos_token_id
    processor = fake_cpp._constraints(GenerationParams(max_new_tokens=5, min_new_tokens=2))
    scores = np.zeros(len(tiny_lm.tokenizer), dtype=np.float32)
    for step, expect_banned in enumerate([True, True, False]):
        out = processor(np.arange(7 + step), scores.copy())
        assert bool(out[eos] == -np.inf) is expect_banned
    assert fake_cpp._constraints(GenerationParams()) is None
    hf, cpp = _both(tiny_lm, fake_cpp, GenerationParams(max_new_tokens=5, min_new_tokens=3))
    assert hf == cpp


def test_seed_and_extra_reach_llamacpp(fake_cpp):
    fake_cpp.generate(PROMPTS[:1], GenerationParams(max_new_tokens=2, seed=7, extra={"min_p": 0.1}))
    assert fake_cpp._llm.calls[-1]["seed"] == 7 and fake_cpp._llm.calls[-1]["min_p"] == 0.1


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny_lm):
    params = GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.5, seed=11)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = tiny_lm.generate(PROMPTS, params)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream is untouched
    assert tiny_lm.generate(PROMPTS, params) == first
    others = [tiny_lm.generate(PROMPTS, params, seed=s) for s in (12, 13, 14)]
    assert any(o != first for o in others)


def test_params_normalise_and_validate():
    assert GenerationParams(stop="\n").stop == ("\n",)
    assert GenerationParams(stop=["a", "b"]).stop == ("a", "b")
    with pytest.raises(ConfigError, match="stop"):
        GenerationParams(stop=("",))
    with pytest.raises(ConfigError, match="typed"):
        GenerationParams(extra={"stop_strings": ["\n"]})
    with pytest.raises(ConfigError, match="min_new_tokens"):
        GenerationParams(max_new_tokens=2, min_new_tokens=3)


def test_model_facts(tiny_lm, tiny_encoder, fake_cpp):
    assert (tiny_lm.hidden_size, tiny_lm.n_layers) == (32, 2)
    assert (tiny_encoder.hidden_size, tiny_encoder.n_layers) == (32, 2)
    assert tiny_lm.embed(["a b"]).shape == (1, tiny_lm.hidden_size)
    assert fake_cpp.hidden_size == 32 and fake_cpp.n_layers is None


# ---- next-token path -------------------------------------------------------------------------------------
SINGLE = [" b", " c", " g", " lo", " of"]  # one token each in the tiny byte-level BPE vocabulary


def _per_choice(lm, prompts, choices, **kwargs):
    """The per-choice path, forced (what score_choices did before the fast path)."""
    lm.single_token_ids = lambda tokens: None
    try:
        return lm.score_choices(prompts, choices, **kwargs)
    finally:
        del lm.single_token_ids


@pytest.mark.parametrize("backend", ["transformers", "llamacpp"])
def test_next_token_path_equals_per_choice_path(tiny_lm, fake_cpp, backend):
    lm = tiny_lm if backend == "transformers" else fake_cpp
    assert lm.single_token_ids(SINGLE) is not None
    slow = _per_choice(lm, PROMPTS, SINGLE)
    np.testing.assert_allclose(lm.score_choices(PROMPTS, SINGLE), slow, rtol=0, atol=1e-5)
    np.testing.assert_allclose(lm.score_choices(PROMPTS, SINGLE, reduction="mean"), slow, rtol=0, atol=1e-5)
    np.testing.assert_allclose(lm.next_token_logprobs(PROMPTS, SINGLE), slow, rtol=0, atol=1e-5)
    per_prompt = [SINGLE[:2], SINGLE[2:4], SINGLE[3:5]]
    np.testing.assert_allclose(lm.score_choices(PROMPTS, per_prompt), _per_choice(lm, PROMPTS, per_prompt),
                               rtol=0, atol=1e-5)


def test_next_token_path_is_one_forward_per_prompt(tiny_lm):
    calls = []
    original = tiny_lm._backbone

    def spy(input_ids, mask, hidden_states):
        calls.append(input_ids.shape[0])
        return original(input_ids, mask, hidden_states)

    tiny_lm._backbone = spy
    try:
        tiny_lm.score_choices(PROMPTS, SINGLE, batch_size=1)
        assert sum(calls) == len(PROMPTS)
        calls.clear()
        tiny_lm.score_choices(PROMPTS, [" the cat", " b"], batch_size=1)  # multi-token: one pass per choice
        assert sum(calls) == 2 * len(PROMPTS)
    finally:
        del tiny_lm._backbone


def test_next_token_logprobs_refuses_multi_token_candidates(tiny_lm, fake_cpp):
    assert tiny_lm.single_token_ids([" the cat", " b"]) is None
    for lm in (tiny_lm, fake_cpp):
        with pytest.raises(ConfigError, match="one token"):
            lm.next_token_logprobs(PROMPTS, [" the cat", " b"])


def test_log_softmax_helper():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0]])
    out = log_softmax(x)
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0)
    np.testing.assert_allclose(out[1, :2], np.log(0.5))


def test_generated_tokens_are_counted_from_ids_on_every_backend(tiny_lm, fake_cpp):
    """`generate_detailed` counts the ids the model generated, whatever re-tokenizing the text would give."""
    full = tiny_lm.generate_detailed(PROMPTS, GenerationParams(max_new_tokens=7, min_new_tokens=7), batch_size=3)
    assert [(g.n_tokens, g.finish_reason) for g in full] == [(7, "length")] * 3
    assert [g.text for g in full] == tiny_lm.generate(PROMPTS, max_new_tokens=7, min_new_tokens=7)
    hf = [tiny_lm.generate_detailed([p], max_new_tokens=7, min_new_tokens=7)[0] for p in PROMPTS]
    assert hf == full == fake_cpp.generate_detailed(PROMPTS, max_new_tokens=7, min_new_tokens=7)
    # a stop string: the tokens up to the one completing it, on both backends and in a batch
    text = tiny_lm.generate([PROMPTS[0]], max_new_tokens=12)[0]
    params = GenerationParams(max_new_tokens=12, stop=(text[3:5],))
    stopped = tiny_lm.generate_detailed(PROMPTS, params, batch_size=3)
    assert stopped[0].finish_reason == "stop" and 0 < stopped[0].n_tokens < 12
    assert stopped == [tiny_lm.generate_detailed([p], params)[0] for p in PROMPTS]
    assert stopped == fake_cpp.generate_detailed(PROMPTS, params)


def test_an_eos_ends_the_count_and_is_not_counted(tiny_lm):
    prompt = PROMPTS[0]
    ids = tiny_lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        third = tiny_lm.model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)[0, -1].item()
    config = tiny_lm.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = third  # the model's third greedy token is now its end of sequence
    try:
        (alone,) = tiny_lm.generate_detailed([prompt], max_new_tokens=8)
        batched = tiny_lm.generate_detailed(PROMPTS, max_new_tokens=8, batch_size=3)
    finally:
        config.eos_token_id = saved
    assert (alone.n_tokens, alone.finish_reason) == (2, "stop") and batched[0] == alone
