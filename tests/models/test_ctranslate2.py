"""The CTranslate2 backend against the transformers one on the tiny random Gemma 3: at float32 the engine must
give the very same text (greedy), stop strings, suppressed newline and min_new_tokens included, the same scores,
and a conversion that cannot leave a broken cache. int8 is checked on the real model (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.models import GenerationParams, load_model, resolve_model

ct2 = pytest.importorskip("ctranslate2")

from slmkit.models import _ctranslate2
from slmkit.models._base import progress_bar

PROMPTS = ["The cat sat on", "Stock prices rose", "오늘 날씨가"]


@pytest.fixture(scope="module")
def tiny_lora_run(tiny_causal_dir, tmp_path_factory):
    from slmkit.testing import TOY_TEXTS
    from slmkit.train import TrainConfig, train

    config = TrainConfig(method="lora", batch_size=8, max_steps=6, learning_rate=1e-2, report_to="none",
                         precision="fp32")
    prompts = [t + " Summary:" for t in TOY_TEXTS]
    run = tmp_path_factory.mktemp("ct2-lora") / "run"
    train(str(tiny_causal_dir), config, run, train_pairs=(prompts, [" " + t.split()[0] for t in TOY_TEXTS]))
    return run


@pytest.fixture(scope="module")
def fast_lm(tiny_causal_dir):
    return load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", num_threads=1)


@pytest.mark.parametrize("params", [
    GenerationParams(max_new_tokens=12),
    GenerationParams(max_new_tokens=8, min_new_tokens=5),
    GenerationParams(max_new_tokens=6, num_beams=3),
    GenerationParams(max_new_tokens=6, no_repeat_ngram_size=2, repetition_penalty=1.3),
])
def test_float32_greedy_text_equals_transformers(tiny_lm, fast_lm, params):
    expected = [tiny_lm.generate([p], params, batch_size=1)[0] for p in PROMPTS]
    assert fast_lm.generate(PROMPTS, params, batch_size=1) == expected
    assert fast_lm.generate(PROMPTS, params, batch_size=3) == expected  # batched rows decode independently
    counts = [tiny_lm.generate_detailed([p], params)[0] for p in PROMPTS]  # ids generated, why they ended
    assert fast_lm.generate_detailed(PROMPTS, params, batch_size=3) == counts


@pytest.fixture(scope="module")
def parallel_lm(tiny_causal_dir):
    return load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", num_threads=2)


@pytest.mark.parametrize("params", [
    GenerationParams(max_new_tokens=12),
    GenerationParams(max_new_tokens=8, min_new_tokens=5),
    GenerationParams(max_new_tokens=6, num_beams=3),
    GenerationParams(max_new_tokens=12, stop=("e", "never-produced")),
    GenerationParams(max_new_tokens=4, suppress_leading_newline=True),
])
def test_parallel_decoding_replicas_give_the_same_text(tiny_lm, parallel_lm, params):
    # two threads: greedy and beam batches are split over two single-thread replicas and decoded concurrently
    expected = [tiny_lm.generate([p], params, batch_size=1)[0] for p in PROMPTS]
    for batch_size in (1, 2, 8):
        assert parallel_lm.generate(PROMPTS, params, batch_size=batch_size) == expected
    assert parallel_lm._decoder is not parallel_lm._generator
    assert parallel_lm._single_stream_engine() is parallel_lm._generator  # one prompt, whole vocabulary: 2 threads
    assert parallel_lm._decoder.num_generators == 2 and parallel_lm._generator.num_generators == 1


def test_sampling_with_several_threads_is_reproducible(parallel_lm, fast_lm):
    params = GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.5, seed=3)
    first = parallel_lm.generate(PROMPTS * 2, params, batch_size=1)
    assert parallel_lm.generate(PROMPTS * 2, params, batch_size=1) == first
    assert fast_lm.generate(PROMPTS * 2, params, batch_size=1) == first  # the thread count does not change draws
    assert len(set(first)) > 1


@pytest.mark.parametrize("which", ["fast_lm", "parallel_lm"])
def test_progress_counts_every_text_and_leaves_results_unchanged(which, request, monkeypatch):
    lm = request.getfixturevalue(which)  # one engine decoding batch after batch, or replicas decoding concurrently
    bars = []

    def recording_bar(total, desc, enabled, items=None):
        bar = progress_bar(total, desc, enabled, items)
        bars.append((desc, enabled, bar))
        return bar

    monkeypatch.setattr(_ctranslate2, "progress_bar", recording_bar)
    params = GenerationParams(max_new_tokens=6, suppress_leading_newline=True)
    quiet = lm.generate(PROMPTS * 2, params, batch_size=2)
    assert lm.generate(PROMPTS * 2, params, batch_size=2, progress=True) == quiet
    assert len(lm.token_losses(PROMPTS, progress=True)) == 3
    # a disabled bar (no progress asked) counts nothing; an enabled one reaches its total
    assert [(desc, enabled, bar.n if enabled else None, bar.total) for desc, enabled, bar in bars] == [
        ("generate", False, None, 6), ("generate", True, 6, 6), ("token losses", True, 3, 3)]


def test_stop_strings_and_max_tokens_as_transformers(tiny_lm, fast_lm):
    full = [tiny_lm.generate([p], max_new_tokens=12, batch_size=1)[0] for p in PROMPTS]
    stop = full[0][3:5]
    assert stop
    params = GenerationParams(max_new_tokens=12, stop=(stop, "never-produced"))
    got = fast_lm.generate(PROMPTS, params)
    assert got == [tiny_lm.generate([p], params, batch_size=1)[0] for p in PROMPTS]
    assert got[0] == full[0][: full[0].index(stop)] and stop not in got[0]
    # the step callback ends a row at its stop string instead of running to max_new_tokens
    seen = []
    callback = fast_lm._stop_callback((stop,), [[]])
    for token in fast_lm._ids(full[0], bos=False):
        seen.append(token)
        if callback(type("Step", (), {"batch_id": 0, "token_id": token})()):
            break
    assert len(seen) < len(fast_lm._ids(full[0], bos=False))


def test_suppressed_leading_newline_as_transformers(tiny_lm, fast_lm):
    first = tiny_lm.generate(PROMPTS[:1], max_new_tokens=1, batch_size=1)[0]
    first_id = tiny_lm.tokenizer(first, add_special_tokens=False)["input_ids"][0]
    tiny_lm._newline_ids = fast_lm._newline_ids = [first_id]  # declare its usual first token "a newline"
    try:
        params = GenerationParams(max_new_tokens=4, suppress_leading_newline=True)
        expected = [tiny_lm.generate([p], params, batch_size=1)[0] for p in PROMPTS]
        got = fast_lm.generate(PROMPTS, params)
    finally:
        tiny_lm._newline_ids = fast_lm._newline_ids = None
    assert got == expected and not got[0].startswith(first)


def test_scores_equal_transformers_at_float32(tiny_lm, fast_lm):
    for a, b in zip(tiny_lm.token_losses(PROMPTS), fast_lm.token_losses(PROMPTS)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    for a, b in zip(tiny_lm.token_losses(PROMPTS, reverse=True), fast_lm.token_losses(PROMPTS, reverse=True)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(tiny_lm.score_choices(PROMPTS, ["good day", "bad"]),
                               fast_lm.score_choices(PROMPTS, ["good day", "bad"]), atol=1e-4)
    tokens = [t for t in ["a", "b", "c"] if len(tiny_lm.tokenizer(t, add_special_tokens=False)["input_ids"]) == 1]
    np.testing.assert_allclose(tiny_lm.next_token_logprobs(PROMPTS, tokens),
                               fast_lm.next_token_logprobs(PROMPTS, tokens), atol=1e-4)


def test_embeddings_come_from_the_transformers_twin(tiny_lm, fast_lm):
    np.testing.assert_array_equal(fast_lm.embed(PROMPTS), tiny_lm.embed(PROMPTS))
    assert (fast_lm.hidden_size, fast_lm.n_layers) == (tiny_lm.hidden_size, tiny_lm.n_layers)
    assert fast_lm.info["backend"] == "ctranslate2" and fast_lm.info["checksum"] == tiny_lm.info["checksum"]


def test_conversion_is_cached_once(tiny_causal_dir, fast_lm):
    again = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", num_threads=1)
    assert again.info["converted_cached"] and again.model_dir == fast_lm.model_dir
    marker = json.loads((fast_lm.model_dir / _ctranslate2.MARKER).read_text())
    assert marker["quantize"] == "float32" and marker["checksum"] == fast_lm.info["checksum"]


def test_interrupted_conversion_leaves_no_cache(tiny_causal_dir, monkeypatch):
    spec = resolve_model(str(tiny_causal_dir), backend="ctranslate2")
    final = _ctranslate2.converted_path(spec, "int8")
    assert not final.exists()

    def dies_midway(source, out_dir, *args):
        (out_dir / "model.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(_ctranslate2, "_convert", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="int8")
    assert not final.exists() and not any(final.parent.glob(f"{final.name}*"))
    monkeypatch.undo()
    lm = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="int8", num_threads=1)
    assert lm.info["checksum"].endswith("+ctranslate2-int8") and lm.generate(PROMPTS[:1], max_new_tokens=3)


def test_lora_run_is_merged_then_served(tiny_lora_run, tiny_lm):
    ref = load_model(str(tiny_lora_run), dtype="float32")
    fast = load_model(str(tiny_lora_run), backend="ctranslate2", quantize="float32", num_threads=1)
    expected = [ref.generate([p], max_new_tokens=8, batch_size=1)[0] for p in PROMPTS]
    assert fast.generate(PROMPTS, max_new_tokens=8) == expected
    assert (fast.model_dir / "source" / "model.safetensors").is_file()


def test_bad_options_are_clear(tiny_causal_dir, tiny_encoder_dir):
    with pytest.raises(ConfigError, match="quantize must be one of"):
        load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="int4")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        load_model(str(tiny_causal_dir), backend="ctranslate2", device="cuda")
    with pytest.raises(ConfigError, match="does not take n_ctx"):  # llama.cpp's option: not silently dropped
        load_model(str(tiny_causal_dir), backend="ctranslate2", n_ctx=256)
    with pytest.raises(ConfigError, match="runs causal LMs"):
        load_model(str(tiny_encoder_dir), backend="ctranslate2")


@pytest.mark.slow
def test_real_model_int8_agrees_with_float32(gemma):
    """Teacher-forced top-1 agreement of the int8 engine with transformers float32 on gemma3-270m.

    Measured 89% over 1,663 positions of DialogSum dialogues (README, runtime): int8 products with int8
    activations flip near-ties; the issue's 95% is not met at int8 (float32 agrees exactly, tests above)."""
    fast = load_model("gemma3-270m", backend="ctranslate2", quantize="int8")
    texts = ["The history of the Roman Empire begins with the founding of the city.",
             "#Person1#: 오늘 회의는 몇 시에 시작하나요?\n#Person2#: 오후 세 시에 시작합니다.",
             "Dear customer, your account statement for this month is now available online."]
    agree = total = 0
    for text in texts:
        ids = gemma._encode([text])[0]
        logits = np.asarray(fast._generator.forward_batch([fast._tokens(ids)]))[0]
        with torch.no_grad():
            ref = gemma.model(torch.tensor([ids])).logits[0].float().numpy()
        top_ref = ref.argmax(-1)
        agree += int((logits.argmax(-1) == top_ref).sum())
        total += len(ids)
    assert agree / total >= 0.85


def test_summarize_predict_runs_on_the_engine(tiny_causal_dir, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from slmkit.cli.main import app
    from slmkit.summarize import PredictConfig
    from slmkit.summarize._predict import build_summarizer

    table = tmp_path / "dev.csv"
    pd.DataFrame({"fname": ["d0", "d1"], "dialogue": ["#Person1#: 배고파.\n#Person2#: 밥 먹으러 가자.",
                                                     "#Person1#: Hi.\n#Person2#: Hello there."]}).to_csv(table, index=False)
    config = PredictConfig(method="zero-shot", model=str(tiny_causal_dir), backend="ctranslate2", max_new_tokens=4)
    assert build_summarizer(config, "en").lm.info["backend"] == "ctranslate2"
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["summarize", "predict", str(table), "--output", str(out), "--method", "zero-shot",
                                      "--model", str(tiny_causal_dir), "--backend", "ctranslate2",
                                      "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out)["fname"]) == ["d0", "d1"]


def test_summarize_predict_runs_the_engine_at_the_precision_asked(tiny_causal_dir, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from slmkit.cli.main import app
    from slmkit.summarize import PredictConfig
    from slmkit.summarize._predict import build_summarizer

    table = tmp_path / "dev.csv"
    pd.DataFrame({"fname": ["d0", "d1"], "dialogue": ["#Person1#: 배고파.\n#Person2#: 밥 먹으러 가자.",
                                                     "#Person1#: Hi.\n#Person2#: Hello there."]}).to_csv(table, index=False)
    config = PredictConfig(method="zero-shot", model=str(tiny_causal_dir), backend="ctranslate2", quantize="float32")
    assert build_summarizer(config, "en").lm.info["quantize"] == "float32"  # the engine's float32 equals
    # transformers float32 (test_float32_greedy_text_equals_transformers); int8 is the default
    common = ["summarize", "predict", str(table), "--method", "zero-shot", "--model", str(tiny_causal_dir),
              "--max-new-tokens", "6"]
    runner = CliRunner()
    engine = runner.invoke(app, [*common, "--output", str(tmp_path / "ct2.csv"), "--backend", "ctranslate2",
                                 "--quantize", "float32"])
    assert engine.exit_code == 0, engine.output
    manifest = json.loads((tmp_path / "ct2.csv.manifest.json").read_text())
    assert manifest["identity"]["config"]["quantize"] == "float32"
    # an int8 output's manifest names no quantize, as before the option existed (its rows still resume)
    int8 = runner.invoke(app, [*common, "--output", str(tmp_path / "int8.csv"), "--backend", "ctranslate2"])
    assert int8.exit_code == 0, int8.output
    assert "quantize" not in json.loads((tmp_path / "int8.csv.manifest.json").read_text())["identity"]["config"]
    with pytest.raises(ConfigError, match="quantize applies to the ctranslate2 backend"):
        PredictConfig(model=str(tiny_causal_dir), quantize="float32")
    with pytest.raises(ConfigError, match="'int8' or 'float32'"):
        PredictConfig(model=str(tiny_causal_dir), backend="ctranslate2", quantize="int4")


def test_trimmed_vocabulary_is_the_full_model_masked_to_the_kept_tokens(tiny_lm, tiny_causal_dir):
    from transformers import LogitsProcessor, LogitsProcessorList

    corpus = ["the cat sat on the mat", "stock prices rose again", "오늘 날씨가 좋다"]
    fast = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", keep_tokens=corpus,
                      num_threads=1)
    keep = _ctranslate2.kept_token_ids(tiny_lm.tokenizer, corpus)
    assert fast.info["kept_tokens"] == len(keep) < len(tiny_lm.tokenizer)
    assert "+trimmed:" in fast.info["checksum"]

    class OnlyKept(LogitsProcessor):
        def __call__(self, input_ids, scores):
            mask = torch.full_like(scores, float("-inf"))
            mask[:, keep] = 0
            return scores + mask

    for prompt in PROMPTS:  # prompts hold tokens outside the kept set: the input side keeps every embedding
        ids = tiny_lm.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = tiny_lm.model.generate(**ids, max_new_tokens=8, do_sample=False,
                                         logits_processor=LogitsProcessorList([OnlyKept()]))
        expected = tiny_lm.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        assert fast.generate([prompt], max_new_tokens=8)[0] == expected
    # two threads: a trimmed model of either precision decodes one prompt on a single-thread replica, the same text
    parallel = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", keep_tokens=corpus,
                          num_threads=2)
    assert parallel._single_stream_engine() is parallel._decoder is not parallel._generator
    assert [parallel.generate([p], max_new_tokens=8)[0] for p in PROMPTS] == fast.generate(PROMPTS, max_new_tokens=8)
    int8 = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="int8", keep_tokens=corpus,
                      num_threads=2)
    assert int8._single_stream_engine() is int8._decoder is not int8._generator
    int8_alone = load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="int8", keep_tokens=corpus,
                            num_threads=1)
    assert [int8.generate([p], max_new_tokens=8)[0] for p in PROMPTS] == int8_alone.generate(PROMPTS, max_new_tokens=8)
    with pytest.raises(ConfigError, match="serves generation only"):
        fast.token_losses(PROMPTS)
    with pytest.raises(ConfigError, match="list of texts"):  # one string would keep only its characters
        load_model(str(tiny_causal_dir), backend="ctranslate2", quantize="float32", keep_tokens="the cat")


@pytest.mark.slow
def test_real_model_scores_batches_of_unequal_lengths(gemma):
    """CTranslate2 4.8 fails on padded scoring batches of real Gemma 3 sequences; the backend groups equal lengths."""
    fast = load_model("gemma3-270m", backend="ctranslate2", quantize="float32")
    texts = ["News article: N/A\nIs this about world or sports? Answer:", "x y", "오늘 날씨가 정말 좋네요."]
    for a, b in zip(fast.token_losses(texts, batch_size=3), gemma.token_losses(texts)):
        np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(fast.score_choices(texts, [" world", " sports"], batch_size=3),
                               gemma.score_choices(texts, [" world", " sports"]), atol=1e-3)
    assert _ctranslate2.equal_length_batches([3, 5, 3, 3], 2) == [[0, 2], [3], [1]]


def test_engine_weights_and_twin_stay_float32_whatever_slmkit_dtype_says(tiny_lora_run, monkeypatch):
    monkeypatch.setenv("SLMKIT_DTYPE", "bfloat16")
    fast = load_model(str(tiny_lora_run), backend="ctranslate2", quantize="float32", num_threads=1)
    assert fast._twin().info["dtype"] == "float32"
    assert fast.info["checksum"] == load_model(str(tiny_lora_run), dtype="float32").info["checksum"]


@pytest.mark.parametrize("suppress", [False, True])
def test_an_empty_prompt_does_not_spoil_the_rows_batched_with_it(tiny_lm, fast_lm, suppress):
    prompts = ["", "The cat sat on", "Hi"]
    params = GenerationParams(max_new_tokens=6, suppress_leading_newline=suppress)
    expected = [tiny_lm.generate([p], params)[0] for p in prompts]
    assert fast_lm.generate(prompts, params, batch_size=3) == expected  # the others returned their own prompt


def test_texts_longer_than_the_sliding_window_are_scored(tiny_lm, fast_lm):
    from slmkit.testing import TOY_TEXTS

    long = " ".join(TOY_TEXTS)[:600]  # ~250 tokens; the tiny Gemma 3's window is 64 (gemma3-270m's: 512)
    texts = [long, "a short one", long[:200]]
    assert fast_lm._window and len(tiny_lm.token_losses([long])[0]) > fast_lm._window
    for reverse in (False, True):  # CTranslate2 raised ValueError past the window
        ours, theirs = fast_lm.token_losses(texts, reverse=reverse), tiny_lm.token_losses(texts, reverse=reverse)
        for mine, reference in zip(ours, theirs):
            np.testing.assert_allclose(mine, reference, atol=1e-4)
    for choices in (["yes", "no maybe"], [" a", " b"]):
        np.testing.assert_allclose(fast_lm.score_choices(texts, choices), tiny_lm.score_choices(texts, choices),
                                   atol=1e-4)


def test_generation_ends_on_every_eos_of_the_generation_config(tiny_causal_dir, tmp_path):
    import shutil

    folder = tmp_path / "two-eos"
    shutil.copytree(tiny_causal_dir, folder)
    hf = load_model(str(folder), dtype="float32")
    prompts = ["Stock prices rose", "The cat"]
    ids = hf.tokenizer(prompts[1], return_tensors="pt")
    with torch.no_grad():
        out = hf.model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    new = out[0, ids["input_ids"].shape[1] :]
    second = int(new[2])  # the third token "The cat" is continued with
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = [hf.tokenizer.eos_token_id, second]  # e.g. Gemma 3 IT: <eos> and <end_of_turn>
    (folder / "generation_config.json").write_text(json.dumps(config))
    hf = load_model(str(folder), dtype="float32")
    fast = load_model(str(folder), backend="ctranslate2", quantize="float32", num_threads=1)
    expected = hf.generate_detailed(prompts, max_new_tokens=8)
    assert expected[1].finish_reason == "stop" and expected[1].n_tokens < 8  # transformers stops there
    assert fast.generate_detailed(prompts, max_new_tokens=8) == expected  # CTranslate2 ran on past it


def test_a_moved_or_retokenized_folder_gets_a_conversion_of_its_own(tiny_causal_dir, tmp_path):
    import shutil

    first = tmp_path / "a" / "mymodel"
    shutil.copytree(tiny_causal_dir, first)
    expected = load_model(str(first), backend="ctranslate2", quantize="float32", num_threads=1).generate(PROMPTS[:1])
    moved = tmp_path / "b" / "mymodel"
    shutil.move(str(first), str(moved))  # the cached conversion's recorded source is gone
    lm = load_model(str(moved), backend="ctranslate2", quantize="float32", num_threads=1)
    assert lm.generate(PROMPTS[:1]) == expected and str(lm.source_dir).startswith(str(moved))
    other = tmp_path / "c" / "mymodel"  # same name, same weights, another end of sequence
    shutil.copytree(moved, other)
    config = json.loads((other / "generation_config.json").read_text())
    config["eos_token_id"] = [config["eos_token_id"], 5] if isinstance(config["eos_token_id"], int) else [5]
    (other / "generation_config.json").write_text(json.dumps(config))
    other_lm = load_model(str(other), backend="ctranslate2", quantize="float32", num_threads=1)
    assert other_lm.model_dir != lm.model_dir and str(other_lm.source_dir).startswith(str(other))
