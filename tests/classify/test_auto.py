"""Automatic configuration: candidates, the best-CV choice, shared passes, training rows only, artifact record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slmkit.classify import DEFAULT_TEMPLATE, ClassifyConfig, EmbeddingCache, LMClassifier, LMEmbedder, explain_table
from slmkit.classify import fit_classifier as fit_table
from slmkit.classify import _auto
from slmkit.classify._auto import PLAIN_TEMPLATE, candidates, label_template, one_se_choice
from slmkit.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


class RecordingCache(EmbeddingCache):
    """An in-memory cache that remembers every text it was asked about."""

    def __init__(self) -> None:
        super().__init__(None)
        self.seen: set[str] = set()

    def get(self, namespace, texts):
        self.seen.update(texts)
        return super().get(namespace, texts)


def test_label_template_names_word_labels_and_falls_back_for_numbers():
    assert label_template(["sports", "world", "sci_tech"]) == (
        "Text: {text}\nQuestion: Is this text sports, world or sci tech?\nAnswer:")
    assert label_template([0, 1]) is None and label_template(["1.0", "2.0"]) is None
    assert label_template([f"l{i}" for i in range(9)]) is None  # too many names for a short instruction
    kinds = {c.template_kind for c in candidates("auto", "auto", "auto", [0, 1])}
    assert kinds == {"generic", "plain"}
    assert candidates("auto", "auto", "auto", [0, 1])[0].template == DEFAULT_TEMPLATE  # the default comes first


def test_fixed_choices_restrict_the_candidates():
    both = candidates("auto", "auto", "auto", ["a", "b"])  # one wide candidate per template, the instruction first
    assert [(c.template_kind, c.pooling, c.layers, c.layer_values) for c in both] == [
        ("label-aware", "mean+last", "middle+last", (0.5, -1)), ("plain", "mean+last", "middle+last", (0.5, -1))]
    assert len(candidates("auto", "auto", "auto", ["a", "b"], deep=False)) == 4  # llama.cpp: last layer only
    assert len(candidates("auto", "auto", (0.5, -1), ["a", "b"])) == 4  # given layers: 2 templates x mean/last
    fixed = candidates("Review: {text}", "mean", "auto", ["a", "b"])
    assert [(c.template_kind, c.pooling, c.layers) for c in fixed] == [
        ("given", "mean", "last"), ("given", "mean", "middle"), ("given", "mean", "middle+last")]
    assert {c.template for c in candidates("auto", "last", (-1,), ["a", "b"])} == {PLAIN_TEMPLATE,
                                                                                    label_template(["a", "b"])}


def test_one_standard_error_rule_prefers_the_earlier_candidate():  # the previous rule, kept for the studies
    assert one_se_choice(np.array([-0.50, -0.45, -0.60]), np.array([0.03, 0.06, 0.01])) == 0  # within 1 SE
    assert one_se_choice(np.array([-0.50, -0.40, -0.60]), np.array([0.03, 0.05, 0.01])) == 1  # clearly better


def test_select_picks_the_best_mean_cv_score_even_within_one_standard_error(monkeypatch):
    # Folds of very different difficulty: the bare text wins every fold by 0.02, far inside one (unpaired) SE.
    hard = np.array([-0.9, -0.3, -0.6, -0.2, -0.8, -0.4, -0.7, -0.5, -0.35, -0.65])
    cands = candidates("auto", "auto", "auto", ["a", "b"])
    gain = {cands[0].template: 0.0, cands[1].template: 0.02}

    def fake_scores(X, codes, folds, **kwargs):  # one fold-score column per candidate; X[0, 0] names it
        rows = [hard[i] for i in range(len(folds))] if len(folds) == 5 else [hard[5 + i] for i in range(len(folds))]
        return np.repeat(np.array(rows)[:, None] + X[0, 0], len(_auto.SELECTION_C_GRID), axis=1)

    monkeypatch.setattr(_auto, "fold_scores", fake_scores)
    y = np.array(["a", "b"] * 10)
    report = _auto.select(lambda c: np.full((len(y), 2), gain[c.template]), cands, y, seed=0)
    means = [row["cv_mean"] for row in report.table]
    assert means[1] - means[0] < report.table[0]["cv_se"]  # the old one-SE rule would have kept the instruction
    assert report.chosen == 1 and len(report.table[1]["fold_scores"]) == 10
    tie = _auto.select(lambda c: np.zeros((len(y), 2)), cands, y, seed=0)
    assert tie.chosen == 0  # a tie goes to the earlier candidate


def test_select_maps_a_class_weight_dict_from_labels_to_the_codes_it_fits_on(monkeypatch):
    seen = []

    def spy(X, codes, folds, *, class_weight, seed):
        seen.append(class_weight)
        return np.zeros((len(folds), len(_auto.SELECTION_C_GRID)))

    monkeypatch.setattr(_auto, "fold_scores", spy)
    cands = candidates("auto", "auto", "auto", ["a", "b"])
    y = np.array([1, 2] * 10)
    _auto.select(lambda c: np.zeros((len(y), 2)), cands, y, class_weight={1: 5.0}, seed=0)
    assert seen and all(w == {0: 5.0} for w in seen)  # label 1 is code 0 (it weighted code 1 = label 2)
    with pytest.raises(DataError, match="class_weight names label"):
        _auto.select(lambda c: np.zeros((len(y), 2)), cands, y, class_weight={"x": 1.0}, seed=0)


def test_one_pass_fills_every_pooling(tiny_causal_dir, cache, en_data):
    texts, _ = en_data
    wide = LMEmbedder(str(tiny_causal_dir), template="Review: {text}", layers=(1, -1), cache=cache).fit()
    assert wide.fill_cache(texts[:6], ("mean", "last")) == 6
    for pooling in ("mean", "last"):
        emb = LMEmbedder(str(tiny_causal_dir), template="Review: {text}", pooling=pooling, layers=(1,),
                         cache=cache).fit()
        before = cache.misses
        got = emb.transform(texts[:6])
        assert cache.misses == before  # every vector came from the shared pass
        direct = emb.lm_.embed(texts[:6], pooling=pooling, layers=emb.layers_, template="Review: {text}")
        np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-5)


def test_auto_choice_sees_training_rows_only_and_is_seeded(tiny_causal_dir, en_data):
    texts, y = en_data
    train, test = np.arange(0, 40, 2), np.arange(1, 40, 2)
    recorder = RecordingCache()
    clf = LMClassifier(str(tiny_causal_dir), cv=3, cache=recorder, random_state=0)
    clf.fit([texts[i] for i in train], y[train])
    assert recorder.seen <= {texts[i] for i in train}
    assert recorder.seen.isdisjoint({texts[i] for i in test} - {texts[i] for i in train})
    again = LMClassifier(str(tiny_causal_dir), cv=3, cache=recorder, random_state=0)
    again.fit([texts[i] for i in train], y[train])
    assert again.auto_.table == clf.auto_.table and again.auto_.chosen == clf.auto_.chosen
    assert (clf.template_, clf.pooling_, clf.layers_) == (again.template_, again.pooling_, again.layers_)
    assert clf.select_seconds_ > 0


def test_choice_and_cv_scores_are_recorded_in_the_artifact(tiny_causal_dir, en_data, cache, tmp_path):
    texts, y = en_data
    clf = LMClassifier(str(tiny_causal_dir), cv=3, cache=cache, random_state=1).fit(texts, y)
    assert len(clf.auto_.table) == 2 and {r["template"] for r in clf.auto_.table} == {"label-aware", "plain"}
    assert clf.pooling_ == "mean+last" and tuple(clf.layers_) == (0.5, -1)
    clf.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "slmkit_config.json").read_text())
    assert saved["params"]["template"] == "auto"
    assert saved["chosen"]["template"] == clf.template_ and saved["chosen"]["pooling"] == clf.pooling_
    assert saved["auto"]["chosen"] == clf.auto_.chosen and saved["auto"]["metric"] == "neg_log_loss"
    keys = {"cv_mean", "cv_se", "C", "template_text", "layer_values"}
    assert all(keys <= set(row) for row in saved["auto"]["table"])
    loaded = LMClassifier.load(tmp_path / "m", cache=cache)
    assert (loaded.template_, loaded.pooling_) == (clf.template_, clf.pooling_)
    assert loaded.auto_.table == clf.auto_.table
    np.testing.assert_allclose(loaded.predict_proba(texts[:5]), clf.predict_proba(texts[:5]), rtol=1e-5)


def test_fixed_configuration_skips_the_search(tiny_causal_dir, en_data, cache):
    texts, y = en_data
    clf = LMClassifier(str(tiny_causal_dir), template="{text}", pooling="last", layers=(1,), cv=3, cache=cache,
                       random_state=0).fit(texts, y)
    assert clf.auto_ is None and clf.embedder_.template == "{text}" and clf.embedder_.layers_ == (1,)
    partly = LMClassifier(str(tiny_causal_dir), template="{text}", pooling="mean", cv=3, cache=cache,
                          random_state=0).fit(texts, y)
    assert [r["layers"] for r in partly.auto_.table] == ["last", "middle", "middle+last"]


def test_both_poolings_side_by_side_are_the_two_embeddings_from_one_pass(tiny_causal_dir, en_data, cache, tmp_path):
    texts, y = en_data
    template = "Review: {text}"
    both = LMEmbedder(str(tiny_causal_dir), template=template, pooling="mean+last", layers=(1, -1), cache=cache).fit()
    got = both.transform(texts[:6])
    parts = [LMEmbedder(str(tiny_causal_dir), template=template, pooling=how, layers=(1, -1), cache=cache).fit()
             for how in ("mean", "last")]
    before = cache.misses
    np.testing.assert_allclose(got, np.hstack([p.transform(texts[:6]) for p in parts]), rtol=1e-5, atol=1e-5)
    assert cache.misses == before  # each (pooling, layer) block was cached on its own by the wide pass
    np.testing.assert_allclose(both.embed_uncached(texts[:6]), got, rtol=1e-5, atol=1e-5)
    names = both.get_feature_names_out()
    assert got.shape[1] == both.n_features_out_ == len(names) == 4 * both.hidden_size_
    assert names[0].startswith("mean_layer1_") and names[-1].startswith("last_layer")
    clf = LMClassifier(str(tiny_causal_dir), template=template, pooling="mean+last", layers=(1, -1), cv=3,
                       cache=cache, random_state=0).fit(texts, y)
    assert clf.auto_ is None and clf.embedder_.n_features_out_ == got.shape[1]
    clf.save(tmp_path / "m")
    loaded = LMClassifier.load(tmp_path / "m", cache=cache)
    assert loaded.pooling_ == "mean+last"
    np.testing.assert_allclose(loaded.predict_proba(texts[:5]), clf.predict_proba(texts[:5]), rtol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        LMEmbedder(str(tiny_causal_dir), pooling="last+mean").fit()


@pytest.mark.parametrize("pooling", ["last", "mean+last"])
def test_explain_table_works_for_a_pick_without_exact_contributions(tiny_causal_dir, tmp_path, pooling):
    train = EXAMPLES / "sentences_en.csv"
    config = ClassifyConfig(model=str(tiny_causal_dir), pooling=pooling, template="{text}", layers=(-1,), cv=3,
                            cache_dir=None)
    fit_table(train, tmp_path / "m", config)
    result = explain_table(tmp_path / "m", train, tmp_path / "r.html", limit=2, train_path=train, n_boot=2,
                           cache_dir=None)
    assert result["explanations"][0]["method"] == "occlusion" and "mean pooling" in result["global_skipped"]


@pytest.mark.parametrize("bad", [{"pooling": "max"}, {"template": "no slot"}])
def test_config_accepts_auto_and_rejects_the_rest(bad):
    assert ClassifyConfig().template == "auto" and ClassifyConfig().layers == "auto"
    with pytest.raises(ValueError, match="auto"):
        ClassifyConfig(**bad)


def test_table_of_numeric_labels_uses_the_generic_instruction(tiny_causal_dir, tmp_path):
    frame = pd.read_csv(EXAMPLES / "sentences_en.csv")
    frame["label"] = (frame["label"] == "positive").astype(int)
    path = tmp_path / "t.jsonl"
    frame.to_json(path, orient="records", lines=True)
    clf, metrics = fit_table(path, tmp_path / "m", ClassifyConfig(model=str(tiny_causal_dir), cv=3, cache_dir=None))
    assert {r["template"] for r in clf.auto_.table} == {"generic", "plain"} and metrics["select_seconds"] > 0
