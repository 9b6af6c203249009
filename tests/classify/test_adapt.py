"""Encoder adaptation (slmkit.classify._adapt): contrastive fine-tunes (the sentence encoder's, and the LM's own
through LoRA on slmkit.train), nested selection, budget, artifact, explain.

Tiny random models (a two-layer Gemma as the LM, a two-layer BERT as the sentence encoder) and a small dataset
written here; the real MiniLM is exercised by the `slow` test at the end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmkit.classify import LMClassifier, _adapt, explain, load_classifier
from slmkit.errors import ConfigError

FRUIT = ["I ate a ripe banana.", "The apple was crisp and sweet.", "She peeled an orange slowly.",
         "Cherries were on sale today.", "He blended mango and lime.", "A bowl of grapes sat there.",
         "The pear tasted of honey.", "We picked plums in the garden.", "Fresh lemons smell lovely.",
         "That melon was huge and juicy."]
VEHICLES = ["The bus arrived ten minutes late.", "He parked the truck outside.", "Her bicycle has a flat tyre.",
            "The train left the station at noon.", "A red car sped down the road.", "They sailed a small boat.",
            "The plane landed in heavy rain.", "My scooter needs new brakes.", "The tram was full this morning.",
            "A tractor crossed the field."]
TEXTS = FRUIT + VEHICLES
LABELS = np.array(["fruit"] * len(FRUIT) + ["vehicle"] * len(VEHICLES))
HELD_OUT = ["Kiwis are small and fuzzy.", "The ferry rocked in the waves."]
FEW_PAIRS = 8  # per example, in the selection tests: 10 steps per fine-tune keeps them fast


@pytest.fixture(autouse=True)
def few_pairs(monkeypatch):
    monkeypatch.setattr(_adapt, "PAIRS_PER_EXAMPLE", FEW_PAIRS)
    monkeypatch.setattr(_adapt, "LM_PAIRS_PER_EXAMPLE", FEW_PAIRS)


def _clf(tiny_causal_dir, tiny_encoder_dir, cache, **kwargs):
    params = {"template": "{text}", "pooling": "mean", "layers": (-1,), "cv": 3, "random_state": 0,
              "adapt_budget_s": 600, "adapt_encoder": str(tiny_encoder_dir), "cache": cache}
    return LMClassifier(str(tiny_causal_dir), **(params | kwargs))


def _pair_loss(lm, first, second, sim) -> float:
    a = _adapt.embed_encoder(lm, first)
    b = _adapt.embed_encoder(lm, second)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(np.mean((cos - np.asarray(sim)) ** 2))


def test_sentence_pairs_label_same_and_different():
    first, second, sim = _adapt.sentence_pairs(TEXTS, LABELS, 4, seed=0)
    assert len(first) == len(TEXTS) * 4 and sum(sim) == len(TEXTS) * 2
    label = dict(zip(TEXTS, LABELS))
    assert all((label[a] == label[b]) == bool(s) for a, b, s in zip(first, second, sim))


def test_contrastive_step_lowers_pair_loss(tiny_encoder_dir):
    from slmkit.models import load_model

    pairs = _adapt.sentence_pairs(TEXTS, LABELS, 4, seed=1)
    before = _pair_loss(load_model(str(tiny_encoder_dir)), *pairs)
    model, info = _adapt.contrastive_finetune(str(tiny_encoder_dir), TEXTS, LABELS, pairs_per_example=40, seed=0)
    after = _pair_loss(_adapt.wrap_encoder(model, str(tiny_encoder_dir)), *pairs)
    assert info["steps"] == info["planned_steps"] == 50
    assert after < before


def test_paired_choice_needs_a_gap_beyond_one_se():
    base = np.array([-0.5, -0.6, -0.4, -0.55])
    assert _adapt.paired_choice({"frozen": base, "concat": base + 0.001 * np.array([1, -1, 1, -1])}) == "frozen"
    assert _adapt.paired_choice({"frozen": base, "concat": base + 0.1}) == "concat"
    assert _adapt.paired_choice({"frozen": base, "concat": base + 0.1, "encoder-ft": base + 0.1}) == "concat"


def test_budget_zero_and_auto_on_cpu_never_adapt(tiny_causal_dir, tiny_encoder_dir, cache, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("adaptation ran")

    monkeypatch.setattr(_adapt, "search", boom)
    monkeypatch.setattr("slmkit.classify._classifier.search", boom)
    for budget in (0, 0.0, "auto"):  # the tiny model runs on the CPU here: "auto" is off
        clf = _clf(tiny_causal_dir, tiny_encoder_dir, cache, adapt_budget_s=budget).fit(TEXTS, LABELS)
        assert clf.adapt_ is None and clf.parts_ is None
    assert _adapt.resolve_budget("auto", "cuda") == _adapt.GPU_BUDGET_S
    with pytest.raises(ConfigError):
        _adapt.resolve_budget(-1, "cpu")


def test_selection_never_sees_held_out_rows(tiny_causal_dir, tiny_encoder_dir, cache, monkeypatch):
    seen = []
    real = _adapt.contrastive_finetune

    def spy(base, texts, y, **kwargs):
        seen.append(list(texts))
        return real(base, texts, y, **kwargs)

    monkeypatch.setattr(_adapt, "contrastive_finetune", spy)
    monkeypatch.setattr("slmkit.classify._classifier.contrastive_finetune", spy)
    monkeypatch.setattr("slmkit.classify._classifier.search",  # the LM's fine-tunes: the next section
                        lambda *a, **k: _adapt.search(*a, **(k | {"lm": None})) | {"chosen": "concat-ft"})
    clf = _clf(tiny_causal_dir, tiny_encoder_dir, cache).fit(TEXTS, LABELS)
    clf.predict(HELD_OUT)
    folds = _adapt.adapt_folds(LABELS, 3, 0)
    assert len(seen) == len(folds) + 1  # one fine-tune per fold, then the final one
    for texts, (train, test) in zip(seen, folds):  # each fold's fine-tune saw its training rows only
        assert sorted(texts) == sorted(TEXTS[i] for i in train)
        assert not set(texts) & {TEXTS[i] for i in test}
    assert sorted(seen[-1]) == sorted(TEXTS)
    assert not {t for texts in seen for t in texts} & set(HELD_OUT)


@pytest.fixture(scope="module")
def adapted(tiny_causal_dir, tiny_encoder_dir):
    """One classifier per adapted choice, the choice forced (the tiny random models would rarely earn it)."""
    from slmkit.classify import EmbeddingCache

    out = {}
    cache = EmbeddingCache(None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_adapt, "PAIRS_PER_EXAMPLE", FEW_PAIRS)
        patch.setattr(_adapt, "LM_PAIRS_PER_EXAMPLE", FEW_PAIRS)
        for choice in ("concat", "encoder-ft", "concat-ft", "lm-ft"):
            # Only the "lm-ft" fit also tries the LM's fine-tunes (they cost the most); its report has them all.
            patch.setattr("slmkit.classify._classifier.search",
                          lambda *a, choice=choice, **k: _adapt.search(*a, **(k if choice == "lm-ft" else k | {
                              "lm": None})) | {"chosen": choice})
            out[choice] = _clf(tiny_causal_dir, tiny_encoder_dir, cache).fit(TEXTS, LABELS)
    return out


def test_adaptation_report_records_candidates(adapted):
    report = adapted["lm-ft"].adapt_
    assert [row["candidate"] for row in report["table"]] == list(_adapt.CANDIDATES)
    assert all(len(row["fold_scores"]) == report["n_folds"] == 3 for row in report["table"])
    assert report["skipped"] is None and report["pairs_per_example"] == FEW_PAIRS
    assert len(report["fold_finetunes"]) == 3 and "final_finetune" not in report  # chosen: the LM's
    assert adapted["concat-ft"].adapt_["final_finetune"]["steps"] > 0
    assert report["lm_skipped"] is None and report["lm_pairs_per_example"] == FEW_PAIRS
    assert len(report["lm_fold_finetunes"]) == 3
    assert report["lm_final_finetune"]["steps"] == report["lm_final_finetune"]["planned_steps"] > 0
    assert adapted["concat-ft"].adapt_["lm_skipped"] == "not asked for"


@pytest.mark.parametrize("choice", ["concat", "encoder-ft", "concat-ft", "lm-ft"])
def test_adapted_artifact_round_trip_predicts_identically(adapted, choice, tmp_path):
    clf = adapted[choice]
    clf.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "slmkit_config.json").read_text())
    assert config["adapt"]["chosen"] == choice
    assert [p.get("adapted", False) for p in config["parts"]] == {
        "concat": [False, False], "encoder-ft": [True], "concat-ft": [False, True], "lm-ft": [True]}[choice]
    assert (tmp_path / "model" / "encoder").is_dir() == (choice in ("encoder-ft", "concat-ft"))
    assert (tmp_path / "model" / "lm_adapter").is_dir() == (choice == "lm-ft")
    from slmkit.classify import EmbeddingCache

    loaded = load_classifier(tmp_path / "model", cache=EmbeddingCache(None))  # nothing cached: real passes
    np.testing.assert_allclose(loaded.predict_proba(TEXTS + HELD_OUT), clf.predict_proba(TEXTS + HELD_OUT),
                               rtol=1e-5, atol=1e-6)
    assert loaded.parts_ == clf.parts_ or choice.endswith("-ft")  # the fine-tuned encoder's folder moved


@pytest.mark.parametrize("choice, method", [("concat", "occlusion"), ("encoder-ft", "exact"),
                                            ("concat-ft", "occlusion"), ("lm-ft", "exact")])
def test_explanations_work_for_adapted_choices(adapted, choice, method):
    clf = adapted[choice]
    (exp,) = explain(clf, HELD_OUT[:1])
    assert exp.method == method and exp.words
    decision = float(np.ravel(clf.decision_function(HELD_OUT[:1]))[0])  # two classes: the explained side's sign
    assert abs(exp.logit) == pytest.approx(abs(decision), rel=1e-4, abs=1e-4)
    if method == "occlusion":
        with pytest.raises(ConfigError, match="occlusion"):
            explain(clf, HELD_OUT[:1], method="exact")


def test_tiny_budget_skips_fine_tuning_with_a_reason(tiny_causal_dir, tiny_encoder_dir, cache):
    clf = _clf(tiny_causal_dir, tiny_encoder_dir, cache, adapt_budget_s=0.01).fit(TEXTS, LABELS)
    report = clf.adapt_
    assert report["skipped"] and "budget" in report["skipped"]
    assert report["lm_skipped"] and "budget" in report["lm_skipped"]
    assert [row["candidate"] for row in report["table"]] == ["frozen", "concat"]
    assert report["chosen"] in ("frozen", "concat")


def test_fixed_pairs_ignore_the_budget_and_give_the_same_fit_twice(tiny_causal_dir, tiny_encoder_dir, cache):
    """adapt_pairs=N: every fine-tune gets N pairs per example whatever the budget (0.01 s skips them when paced)
    and however fast the machine is, so two fits with one seed agree fold score for fold score."""
    fits = [_clf(tiny_causal_dir, tiny_encoder_dir, cache, adapt_budget_s=0.01, adapt_pairs="4").fit(TEXTS, LABELS)
            for _ in range(2)]
    report = fits[0].adapt_
    assert report["pairs_fixed"] and report["skipped"] is None and report["lm_skipped"] is None
    assert report["pairs_per_example"] == report["lm_pairs_per_example"] == 4
    infos = report["fold_finetunes"] + report["lm_fold_finetunes"]
    assert len(infos) == 6 and all(i["pairs_per_example"] == 4 and not i["stopped_by_budget"] for i in infos)
    assert [row["candidate"] for row in report["table"]] == list(_adapt.CANDIDATES)
    assert report["table"] == fits[1].adapt_["table"] and report["chosen"] == fits[1].adapt_["chosen"]


def test_adapt_pairs_must_be_auto_or_an_even_count_of_at_least_the_minimum(tiny_causal_dir, tiny_encoder_dir,
                                                                           cache):
    from slmkit.classify import ClassifyConfig

    assert _adapt.resolve_pairs("auto") is None and _adapt.resolve_pairs(" 8 ") == 8 == _adapt.resolve_pairs(8)
    assert ClassifyConfig(adapt_pairs="12").adapt_pairs == 12 and ClassifyConfig().adapt_pairs == "auto"
    for bad in (2, 5, "8.0", 8.5, "many", None):
        with pytest.raises(ConfigError, match="adapt_pairs must be 'auto' or an even number"):
            _adapt.resolve_pairs(bad)
    with pytest.raises(ConfigError, match="adapt_pairs"):  # refused before any forward pass, budget or not
        _clf(tiny_causal_dir, tiny_encoder_dir, cache, adapt_budget_s=0, adapt_pairs=3).fit(TEXTS, LABELS)


# -- the LM's own contrastive LoRA fine-tune ("lm-ft") ------------------------------------------------------------

def test_lm_candidate_is_refit_per_fold_without_held_out_rows(tiny_causal_dir, tiny_encoder_dir, cache, monkeypatch):
    seen = []
    real = _adapt.lm_contrastive_finetune

    def spy(lm, texts, y, **kwargs):
        seen.append((list(texts), kwargs))
        return real(lm, texts, y, **kwargs)

    monkeypatch.setattr(_adapt, "lm_contrastive_finetune", spy)
    monkeypatch.setattr("slmkit.classify._classifier.lm_contrastive_finetune", spy)
    monkeypatch.setattr("slmkit.classify._classifier.search",
                        lambda *a, **k: _adapt.search(*a, **k) | {"chosen": "lm-ft"})
    monkeypatch.setattr(_adapt, "finetune_available", lambda: False)  # the encoder's fine-tunes are not the point
    template = "Text: {text}\nAnswer:"
    clf = _clf(tiny_causal_dir, tiny_encoder_dir, cache, template=template, pooling="last").fit(TEXTS, LABELS)
    clf.predict(HELD_OUT)
    folds = _adapt.adapt_folds(LABELS, 3, 0)
    assert len(seen) == len(folds) + 1  # one fine-tune per fold, then the final one
    for (texts, _), (train, test) in zip(seen, folds):
        assert sorted(texts) == sorted(TEXTS[i] for i in train)
        assert not set(texts) & {TEXTS[i] for i in test}
    assert sorted(seen[-1][0]) == sorted(TEXTS)
    assert not {t for texts, _ in seen for t in texts} & set(HELD_OUT)
    # Every fine-tune adapts the frozen configuration: its template, pooling and absolute layers.
    assert all((k["template"], k["pooling"], tuple(k["layers"])) == (template, "last", (2,)) for _, k in seen)
    assert seen[-1][1]["run_dir"] is not None and all(k.get("run_dir") is None for _, k in seen[:-1])
    assert [row["candidate"] for row in clf.adapt_["table"]] == ["frozen", "concat", "lm-ft"]
    assert clf.parts_[0]["adapted"] and clf.parts_[0]["template"] == template
    (exp,) = explain(clf, HELD_OUT[:1])  # last-token pooling: no exact shares, occlusion
    assert exp.method == "occlusion" and exp.words


def test_lm_finetune_leaves_the_cached_model_alone(tiny_lm):
    recipe = {"template": "{text}", "pooling": "mean", "layers": (1, 2)}
    before = tiny_lm.embed(TEXTS, **recipe)
    adapted, info = _adapt.lm_contrastive_finetune(tiny_lm, TEXTS, LABELS, **recipe, pairs_per_example=4, seed=0)
    assert info["steps"] == info["planned_steps"] == 5 and not info["stopped_by_budget"]
    np.testing.assert_array_equal(tiny_lm.embed(TEXTS, **recipe), before)  # trained on a copy
    assert np.abs(adapted.embed(TEXTS, **recipe) - before).max() > 1e-4  # the copy moved


def test_lm_finetune_trains_float32_weights_of_a_bfloat16_served_lm(tiny_lm):
    import copy

    import torch

    from slmkit.models._transformers import TransformersLM

    served = TransformersLM(tiny_lm.spec, copy.deepcopy(tiny_lm.model).to(torch.bfloat16), tiny_lm.tokenizer,
                            {**tiny_lm.info, "dtype": "bfloat16"})
    adapted, info = _adapt.lm_contrastive_finetune(served, TEXTS, LABELS, template="{text}", pooling="mean",
                                                   layers=(2,), pairs_per_example=4, seed=0)
    assert info["steps"] == 5 and next(adapted.model.parameters()).dtype == torch.float32
    assert next(served.model.parameters()).dtype == torch.bfloat16  # the served model is left as it was


def test_lm_budget_too_small_skips_the_lm_with_a_reason(tiny_causal_dir, tiny_encoder_dir, cache, monkeypatch):
    calls = []
    real = _adapt.lm_contrastive_finetune

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out[1])
        return out

    monkeypatch.setattr(_adapt, "lm_contrastive_finetune", spy)
    monkeypatch.setattr(_adapt, "finetune_available", lambda: False)
    monkeypatch.setattr(_adapt, "TRAIN_SHARE", 0.0)  # no time left for fine-tuning, whatever the pace
    report = _clf(tiny_causal_dir, tiny_encoder_dir, cache).fit(TEXTS, LABELS).adapt_
    assert "too small" in report["lm_skipped"] and "LM fine-tune" in report["lm_skipped"]
    assert "lm-ft" not in [row["candidate"] for row in report["table"]] and report["chosen"] != "lm-ft"
    assert len(calls) == 1 and calls[0]["steps"] <= 4 < calls[0]["planned_steps"]  # the pace probe only


def test_lm_candidate_needs_a_causal_transformers_lm(tiny_encoder, tiny_lm):
    assert _adapt.lm_unsupported(tiny_lm) is None
    assert "encoder" in _adapt.lm_unsupported(tiny_encoder)
    assert "one pooling" in _adapt.lm_unsupported(tiny_lm, "mean+last")  # the fine-tune trains a single pooling


def test_config_rejects_a_bad_budget():
    from slmkit.classify import ClassifyConfig

    assert ClassifyConfig(adapt_budget="30").adapt_budget == 30.0
    with pytest.raises(ConfigError, match="adapt_budget"):
        ClassifyConfig(adapt_budget="soon")


@pytest.mark.slow
def test_real_minilm_finetune_moves_same_label_pairs_closer():
    from slmkit.models import load_model

    pairs = _adapt.sentence_pairs(TEXTS, LABELS, 4, seed=1)
    before = _pair_loss(load_model("minilm-l6"), *pairs)
    model, info = _adapt.contrastive_finetune("minilm-l6", TEXTS, LABELS, pairs_per_example=16, seed=0)
    assert info["steps"] == 20
    assert _pair_loss(_adapt.wrap_encoder(model, "minilm-l6"), *pairs) < before


def test_a_concatenated_classifier_notices_when_its_encoder_weights_change(adapted, tmp_path):
    from safetensors.torch import load_file, save_file

    from slmkit.classify import EmbeddingCache

    adapted["concat-ft"].save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "slmkit_config.json").read_text())
    saved = config["model"]
    assert len(saved["parts"]) == 2 and saved["checksum"].count(" | ") == 1  # both parts' weights count
    layers = config["layers_resolved"]  # one list per part (it was empty for concatenations)
    assert len(layers) == 2 and all(isinstance(part, list) and part for part in layers)
    assert all("tokenizer_sha256" in p for p in saved["parts"])  # set for GGUF conversions, None for folders
    weights = next((tmp_path / "model" / "encoder").glob("*.safetensors"))
    tensors = load_file(str(weights))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.5
    save_file(tensors, str(weights))
    with pytest.warns(UserWarning, match="checksum .* but the head was trained on"):
        load_classifier(tmp_path / "model", cache=EmbeddingCache(None))
