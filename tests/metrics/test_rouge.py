from __future__ import annotations

import numpy as np
import pytest

from slmkit.errors import ConfigError
from slmkit.metrics import KiwiTokenizer, bootstrap_ci, competition_score, get_tokenizer, rouge


def test_rouge_score_own_expectation():
    # rouge-score's test: target "testing one two", prediction "testing" -> P 1, R 1/3, F 0.5.
    result = rouge(["testing"], ["testing one two"], tokenizer="default", n_bootstrap=0)
    assert result.precision["rouge1"][0] == pytest.approx(1.0)
    assert result.recall["rouge1"][0] == pytest.approx(1 / 3)
    assert result.fmeasure["rouge1"][0] == pytest.approx(0.5)
    assert result.fmeasure["rougeL"][0] == pytest.approx(0.5)


def test_korean_whitespace_hand_computed():
    # tokens: [나는, 사과를, 먹었다] vs [나는, 배를, 먹었다]: R1 = RL = 2/3, no shared bigram.
    result = rouge(["나는 사과를 먹었다"], ["나는 배를 먹었다"], tokenizer="whitespace", n_bootstrap=0)
    scores = result.summary()
    assert scores["rouge1"] == pytest.approx(200 / 3)
    assert scores["rouge2"] == 0
    assert scores["rougeL"] == pytest.approx(200 / 3)
    assert competition_score(result) == pytest.approx((2 / 3 + 0 + 2 / 3) / 3 * 100)


def test_korean_kiwi_hand_computed():
    tok = KiwiTokenizer()
    assert tok.tokenize("나는 사과를 먹었다") == ["나", "는", "사과", "를", "먹", "었", "다"]
    assert tok.tokenize("나는 배를 먹었다") == ["나", "는", "배", "를", "먹", "었", "다"]
    # 6 of 7 morphemes shared, 4 of 6 bigrams, LCS 6.
    result = rouge(["나는 사과를 먹었다"], ["나는 배를 먹었다"], tokenizer=tok, n_bootstrap=0)
    s = result.summary()
    assert s["rouge1"] == pytest.approx(600 / 7) and s["rouge2"] == pytest.approx(400 / 6)
    assert s["rougeL"] == pytest.approx(600 / 7)
    assert s["final"] == pytest.approx((6 / 7 + 4 / 6 + 6 / 7) / 3 * 100)
    assert result.tokenizer == "kiwi"


def test_default_tokenizer_drops_hangul():
    assert (
        rouge(["나는 사과를 먹었다"], ["나는 사과를 먹었다"], tokenizer="default", n_bootstrap=0).summary()["final"]
        == 0
    )
    assert (
        rouge(["나는 사과를 먹었다"], ["나는 사과를 먹었다"], tokenizer="char", n_bootstrap=0).summary()["final"]
        == 100
    )


def test_kiwi_options_keep_tags_and_drop_punctuation():
    tok = KiwiTokenizer(protect_tags=True, keep_punctuation=False)
    tokens = tok.tokenize("#Person1#이 왔다.")
    assert tokens[0] == "#Person1#" and "." not in tokens
    assert tok.name == "kiwi(tags,nopunct)"


def test_multi_reference_max_and_mean():
    refs = [["the cat sat", "a dog ran"]]
    best = rouge(["the cat sat"], refs, tokenizer="whitespace", multi_ref="max", n_bootstrap=0)
    mean = rouge(["the cat sat"], refs, tokenizer="whitespace", multi_ref="mean", n_bootstrap=0)
    assert best.fmeasure["rouge1"][0] == pytest.approx(1.0)
    assert mean.fmeasure["rouge1"][0] == pytest.approx(0.5)
    assert best.to_dict()["multi_ref"] == "max"


def test_per_example_scores_and_bootstrap():
    preds = ["a b c", "a b", "x y", "a"]
    refs = ["a b c", "a b c", "a b c", "a b c"]
    result = rouge(preds, refs, tokenizer="whitespace", n_bootstrap=200, seed=3)
    assert result.final.shape == (4,) and result.final[0] == pytest.approx(100)
    lo, hi = result.ci["final"]
    assert lo <= result.summary()["final"] <= hi
    again = rouge(preds, refs, tokenizer="whitespace", n_bootstrap=200, seed=3)
    assert again.ci == result.ci
    assert result.to_dict()["bootstrap_seed"] == 3  # recorded, so the intervals can be reproduced


def test_bootstrap_ci_of_constant_is_the_constant():
    assert bootstrap_ci({"x": np.full(10, 7.0)}, 50)["x"] == (7.0, 7.0)


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="example 1 has no non-empty reference"):
        rouge(["a"], [["", " "]])
    with pytest.raises(ConfigError, match="example 2 has no non-empty reference"):  # a plain string too
        rouge(["a", "b"], ["a", " "])
    with pytest.raises(ConfigError, match="unknown ROUGE tokenizer 'mecab'"):
        get_tokenizer("mecab")
    with pytest.raises(ConfigError, match="multi_ref"):
        rouge(["a"], ["a"], multi_ref="min")


def test_decomposed_korean_scores_like_composed_korean():
    import unicodedata

    from slmkit.summarize._dialogue import detect_language

    text = "친구와 저녁을 먹기로 했다"
    nfd = unicodedata.normalize("NFD", text)
    assert rouge([nfd], [text], tokenizer="kiwi", n_bootstrap=0).summary()["final"] == pytest.approx(100)
    assert detect_language([nfd]) == "ko"  # so "auto" picks the Korean tokenizer
