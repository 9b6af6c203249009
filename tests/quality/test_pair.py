"""The scorer pair: token reversal, matched training of both sides, determinism, both routes, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slmkit.errors import ConfigError
from slmkit.models._transformers import reverse_content
from slmkit.quality import QualityConfig, load_scorer, train_scorer, training_token_counts
from slmkit.testing import TOY_TEXTS
from slmkit.train import document_ids, encode_documents


def test_reversal_round_trips_and_matches_the_training_layout(tiny_lm):
    tok = tiny_lm.tokenizer
    for text in TOY_TEXTS:
        scored = tok(text)["input_ids"]  # what token_losses encodes: BOS + content
        body = tok(text, add_special_tokens=False)["input_ids"]
        reversed_ids = reverse_content(scored, tok.bos_token_id, tok.eos_token_id)
        assert reversed_ids == document_ids(tok, body, reverse=True)[:-1]  # the reverse LM's training layout
        assert reversed_ids != scored and reverse_content(reversed_ids, tok.bos_token_id, tok.eos_token_id) == scored
    # a trailing EOS stays last, like document_ids puts it
    full = document_ids(tok, body)
    assert reverse_content(full, tok.bos_token_id, tok.eos_token_id) == document_ids(tok, body, reverse=True)


def test_a_tokenizer_that_adds_no_bos_trains_and_scores_in_one_layout(tmp_path):
    # SmolLM2's GGUF defines a BOS it never adds: training documents had one, scored texts did not
    import pandas as pd
    from tokenizers import processors

    from slmkit.quality import ScorerPair, score_frame
    from slmkit.testing import tiny_lm

    lm = tiny_lm(tmp_path / "tiny")
    tok = lm.tokenizer
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", pair="$A $B")
    assert tok.bos_token_id is not None and tok("the cat")["input_ids"][0] != tok.bos_token_id
    for text in TOY_TEXTS[:3]:
        scored = tok(text)["input_ids"]
        for reverse in (False, True):
            trained = encode_documents(tok, [text], max_length=64, pack=False, reverse=reverse)[0].input_ids
            expected = reverse_content(scored, tok.bos_token_id, tok.eos_token_id) if reverse else scored
            assert trained[:-1] == expected  # + EOS
    one = next(t for t in ("a", "x", "I", "the") if lm.count_tokens([t])[0] == 1)
    out = score_frame(ScorerPair(None, QualityConfig(), {}, lm, lm), pd.DataFrame({"text": [one, TOY_TEXTS[0]]},
                      dtype=object), text_column="text")
    assert out["reject_reason"][0].startswith("no tokens to score") and pd.isna(out["reject_reason"][1])
    assert np.isnan(out["S"][0]) and out["n_tokens"][1] > 0


def test_a_scratch_pair_scores_only_as_many_tokens_as_it_was_trained_on(pair):
    assert pair.config.route == "scratch" and pair.max_tokens == pair.config.training.max_length
    assert pair.forward.max_length > pair.max_tokens  # the model's context is longer: its last positions untrained
    long = " ".join(TOY_TEXTS * 20)
    assert pair.score_texts([long])["reject_reason"][0].startswith("too long")


def test_reverse_token_losses_score_the_reversed_sequence(tiny_lm):
    texts = TOY_TEXTS[:3]
    losses = tiny_lm.token_losses(texts, reverse=True)
    for text, got in zip(texts, losses):
        ids = reverse_content(tiny_lm.tokenizer(text)["input_ids"], tiny_lm.tokenizer.bos_token_id, None)
        with torch.no_grad():
            logits = tiny_lm.model(input_ids=torch.tensor([ids])).logits[0, :-1]
        expected = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none").numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    forward = tiny_lm.token_losses(texts)
    assert [len(f) for f in forward] == [len(r) for r in losses]
    assert not all(np.allclose(f, r) for f, r in zip(forward, losses))


def test_both_sides_train_on_identical_token_multisets(scorer_dir, pair):
    tok = pair.forward.tokenizer
    texts = TOY_TEXTS * 3
    forward = encode_documents(tok, texts, max_length=64)
    backward = encode_documents(tok, texts, max_length=64, reverse=True)
    assert [e.input_ids for e in forward] != [e.input_ids for e in backward]  # really reversed ...
    assert training_token_counts(tok, texts, 64, reverse=False) == training_token_counts(tok, texts, 64, reverse=True)
    info = json.loads((scorer_dir / "scorer.json").read_text())
    assert info["token_multiset_sha256"]["forward"] == info["token_multiset_sha256"]["reverse"]
    runs = {side: json.loads((scorer_dir / side / "slmkit_run.json").read_text()) for side in ("forward", "reverse")}
    for key in ("train_tokens", "n_train", "steps", "method"):  # ... and trained alike
        assert runs["forward"][key] == runs["reverse"][key], key
    assert runs["forward"]["base_checksum"] == runs["reverse"]["base_checksum"]
    assert pair.checksums()["forward"] != pair.checksums()["reverse"]  # two different models came out
    sides = info["sides"]  # scorer.json names the weights each side scores with
    assert sides["forward"]["model_checksum"] != sides["reverse"]["model_checksum"]
    assert all(len(sides[s]["model_checksum"]) == 64 and sides[s]["versions"]["torch"] for s in sides)


def test_s_is_mean_forward_minus_mean_reverse_loss(pair):
    frame = pair.score_texts(TOY_TEXTS)
    fwd = pair.forward.token_losses(TOY_TEXTS)
    rev = pair.reverse.token_losses(TOY_TEXTS, reverse=True)
    np.testing.assert_allclose(frame["forward_loss"], [f.mean() for f in fwd], rtol=1e-5)
    np.testing.assert_allclose(frame["reverse_loss"], [r.mean() for r in rev], rtol=1e-5)
    np.testing.assert_allclose(frame["S"], frame["forward_loss"] - frame["reverse_loss"], rtol=1e-6)
    np.testing.assert_allclose(frame["forward_ppl"], np.exp(frame["forward_loss"]), rtol=1e-6)
    assert list(frame["n_tokens"]) == [len(f) for f in fwd]
    assert frame["reject_reason"].isna().all()


def test_scores_are_deterministic_for_a_seed(tmp_path, pair, tiny_config):
    texts = TOY_TEXTS * 3
    again = train_scorer(texts, tmp_path / "again", tiny_config(seed=0), progress=False)
    other = train_scorer(texts, tmp_path / "other", tiny_config(seed=1), progress=False)
    assert again["status"] == other["status"] == "done"
    s0 = pair.score_texts(TOY_TEXTS)["S"]
    np.testing.assert_array_equal(load_scorer(tmp_path / "again").score_texts(TOY_TEXTS)["S"], s0)
    assert not np.allclose(load_scorer(tmp_path / "other").score_texts(TOY_TEXTS)["S"], s0)


def test_adapted_route_fine_tunes_both_twins_of_a_pretrained_model(tiny_causal_dir, tmp_path, tiny_config):
    config = tiny_config(route="adapted", base_model=str(tiny_causal_dir), learning_rate=5e-3)
    info = train_scorer(TOY_TEXTS * 2, tmp_path / "adapted", config, progress=False)
    assert info["status"] == "done" and not (tmp_path / "adapted" / "base").exists()
    for side in ("forward", "reverse"):
        run = json.loads((tmp_path / "adapted" / side / "slmkit_run.json").read_text())
        assert run["method"] == "lora" and run["base_model"]["path"] == str(tiny_causal_dir)
    frame = load_scorer(tmp_path / "adapted").score_texts(TOY_TEXTS)
    assert np.isfinite(frame["S"]).all()


def test_training_resumes_and_refuses_another_config_or_corpus(tmp_path, tiny_config):
    texts = TOY_TEXTS * 3
    first = train_scorer(texts, tmp_path / "pair", tiny_config(), progress=False, stop_after_steps=2)
    assert first == {"status": "interrupted", "side": "forward"}
    with pytest.raises(ConfigError, match="not finished training"):
        load_scorer(tmp_path / "pair")
    done = train_scorer(texts, tmp_path / "pair", tiny_config(), progress=False)
    assert done["status"] == "done" and done["sides"]["forward"]["steps"] == 4
    with pytest.raises(ConfigError, match="another config"):
        train_scorer(texts, tmp_path / "pair", tiny_config(seed=3), progress=False)
    with pytest.raises(ConfigError, match="another corpus"):
        train_scorer(texts[:-1], tmp_path / "pair", tiny_config(), progress=False)


def test_quality_config_round_trips_and_rejects_bad_values(tmp_path, tiny_config):
    config = tiny_config(seed=7)
    config.save(tmp_path)
    loaded = QualityConfig.load(tmp_path)
    assert loaded == config and loaded.training.seed == loaded.scratch.seed == 7
    with pytest.raises(ConfigError, match="route"):
        QualityConfig(route="sideways")
    with pytest.raises(ConfigError, match="method must be 'full'"):
        tiny_config(method="lora")
    with pytest.raises(ConfigError, match="unknown QualityConfig field"):
        QualityConfig.from_dict({"rout": "scratch"})
