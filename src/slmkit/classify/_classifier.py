"""LMClassifier: LMEmbedder + PLRClassifier in one estimator that saves to (and loads from) an artifact dir."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from slmkit._constants import DEFAULT_MODEL
from slmkit.classify._adapt import (
    DEFAULT_ENCODER,
    ENCODER_TEMPLATE,
    ConcatEmbedder,
    contrastive_finetune,
    lm_contrastive_finetune,
    resolve_budget,
    resolve_pairs,
    save_encoder,
    search,
)
from slmkit.classify._auto import AUTO, GENERIC_TEMPLATE, AutoReport, Candidate, candidates, select
from slmkit.classify._cache import EmbeddingCache
from slmkit.classify._embedder import LMEmbedder, check_texts, n_model_layers
from slmkit.classify._plr import PLRClassifier, check_label_counts
from slmkit.errors import DataError

DEFAULT_TEMPLATE = GENERIC_TEMPLATE  # the instruction "auto" tries first when the labels are not words


class LMClassifier(ClassifierMixin, BaseEstimator):
    """Tens-of-shot text classifier: a small LM's pooled hidden states -> penalised logistic regression.

    Args:
        model: registry name (`slmkit models list`), local directory or ModelSpec.
        template: "auto" (default: chosen by CV between an instruction naming the labels, or DEFAULT_TEMPLATE
            when the labels are numbers, and the bare text) or an instruction with "{text}" exactly once, e.g.
            "Review: {text}\\nIs the review positive or negative? Answer:".
        pooling: "auto" (default: chosen by CV), "mean" (exact per-token explanations), "last" or "mean+last"
            (both side by side, from one forward pass; explained by occlusion).
        layers: "auto" (default: middle, last or both, chosen by CV) or hidden-state indices to concatenate;
            floats in (0, 1] are depth fractions (0.5 = middle).
        penalty, Cs, l1_ratios, cv, class_weight: see PLRClassifier.
        batch_size: texts per forward pass.
        random_state: seed for the CV folds (and the configuration search's repeated folds).
        cache: EmbeddingCache shared across estimators (and their clones); default: one in the slmkit cache dir.
        adapt_budget_s: seconds allowed for encoder adaptation candidates (`slmkit.classify._adapt`): the frozen
            features beside `adapt_encoder`'s, a SetFit-style contrastive fine-tune of that encoder (alone or
            beside the frozen features) and the same fine-tune of the LM itself (LoRA through slmkit.train, on
            the chosen template, pooling and layers), each refit inside every CV fold and kept only when CV says
            it pays. 0 = off; "auto" (default) = 900 s when the model runs on a GPU, off on a CPU.
        adapt_encoder: the sentence encoder adaptation uses (registry name or directory), default "minilm-l6".
        adapt_pairs: pairs per example for every contrastive fine-tune. "auto" (default) sizes them to the budget
            from the pace measured on the first fold (at most 40 for the encoder, 20 for the LM): the result then
            depends on the machine's speed. An even number >= 4 fixes them: no pacing and no time limit, the
            same fit for a seed on any machine (the budget then only switches adaptation on).

    Attributes:
        embedder_: the fitted LMEmbedder; head_: the fitted PLRClassifier; classes_: array of shape (n_classes,).
        template_, pooling_, layers_: the configuration used (the chosen one where a parameter is "auto").
        auto_: the AutoReport of the configuration search (candidates, CV scores, choice), or None.
        adapt_: the adaptation search's report (candidates, per-fold CV scores, choice, fine-tune sizes and
            times, or why fine-tuning was skipped), or None when adaptation was off.
        parts_: None (the frozen LM alone) or the embedders chosen by adaptation, as dicts of model, template,
            pooling and layers (a fine-tuned encoder's model is the folder it was saved to; the LoRA-adapted LM's
            is its slmkit.train run folder, which `load_model` serves as base + adapter).
        fit_seconds_: time spent fitting the head; embed_seconds_: time spent in the LM during fit;
        select_seconds_: time spent choosing the configuration (its forward passes included).

    Example:
        >>> clf = LMClassifier(template="Review: {text}\\nSentiment:").fit(texts, labels)
        >>> clf.predict(["What a lovely film."])
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, template: str = AUTO, pooling: str = AUTO,
                 layers: Sequence[int | float] | str = AUTO, penalty: str = "l2", Cs=13,
                 l1_ratios=(0.2, 0.5, 0.8), cv: int = 5, class_weight="balanced", batch_size: int = 16,
                 random_state=None, cache: EmbeddingCache | None = None, adapt_budget_s: float | str = AUTO,
                 adapt_encoder: str = DEFAULT_ENCODER, adapt_pairs: int | str = AUTO) -> None:
        self.model = model
        self.template = template
        self.pooling = pooling
        self.layers = layers
        self.penalty = penalty
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.class_weight = class_weight
        self.batch_size = batch_size
        self.random_state = random_state
        self.cache = cache
        self.adapt_budget_s = adapt_budget_s
        self.adapt_encoder = adapt_encoder
        self.adapt_pairs = adapt_pairs

    def _make_embedder(self, cache: EmbeddingCache | None = None) -> LMEmbedder | ConcatEmbedder:
        """The embedder of the fitted (or fixed) configuration."""
        cache = cache if cache is not None else self.cache
        parts = getattr(self, "parts_", None)
        if parts:
            embedders = [LMEmbedder(p["model"], template=p["template"], pooling=p["pooling"], layers=p["layers"],
                                    batch_size=self.batch_size, cache=cache) for p in parts]
            return embedders[0] if len(embedders) == 1 else ConcatEmbedder(embedders)
        template = getattr(self, "template_", self.template)
        pooling = getattr(self, "pooling_", self.pooling)
        layers = getattr(self, "layers_", self.layers)
        if AUTO in (template, pooling) or (isinstance(layers, str) and layers == AUTO):
            raise DataError("LMClassifier: template, pooling or layers is 'auto', which fit resolves; call fit "
                            "first, or give all three explicitly")
        return LMEmbedder(self.model, template=template, pooling=pooling, layers=layers, batch_size=self.batch_size,
                          cache=cache if cache is not None else self.cache)

    def _choose(self, texts: list[str], y: np.ndarray, cache: EmbeddingCache) -> AutoReport | None:
        """Set template_, pooling_ and layers_: the fixed values, or the CV choice among the candidates."""
        if AUTO not in (self.template, self.pooling) and not (isinstance(self.layers, str) and self.layers == AUTO):
            self.template_, self.pooling_, self.layers_ = self.template, self.pooling, self.layers
            return None
        deep = n_model_layers(cache.model(self.model)) is not None
        cands = candidates(self.template, self.pooling, self.layers, np.unique(y), deep=deep)
        # One forward pass per template fills every pooling and layer the candidates need (in the cache).
        for template in dict.fromkeys(c.template for c in cands):
            layers = tuple(dict.fromkeys(v for c in cands if c.template == template for v in c.layer_values))
            wide = LMEmbedder(self.model, template=template, layers=layers, batch_size=self.batch_size,
                              cache=cache).fit()
            wide.fill_cache(texts, tuple(dict.fromkeys(p for c in cands for p in c.pooling.split("+"))))
            self.embed_seconds_ += wide.embed_seconds_

        def features(cand: Candidate) -> np.ndarray:
            return LMEmbedder(self.model, template=cand.template, pooling=cand.pooling, layers=cand.layer_values,
                              batch_size=self.batch_size, cache=cache).fit().transform(texts)

        from slmkit._status import status

        with status(f"choosing template, pooling and layers by cross-validation ({len(cands)} candidates)"):
            report = select(features, cands, y, n_splits=self.cv, class_weight=self.class_weight,
                            seed=self.random_state)
        best = cands[report.chosen]
        self.template_, self.pooling_, self.layers_ = best.template, best.pooling, best.layer_values
        return report

    def _adapt(self, texts: list[str], y: np.ndarray, cache: EmbeddingCache, pairs: int | None) -> dict | None:
        """Set parts_: None (keep the frozen choice) or the adapted embedders, when CV says they pay. `pairs`: the
        resolved `adapt_pairs` (None = sized to the budget)."""
        self.parts_ = None
        budget = resolve_budget(self.adapt_budget_s, str(cache.model(self.model).info.get("device", "cpu")))
        if budget <= 0:
            return None
        frozen = self._make_embedder(cache).fit()
        features = frozen.transform(texts)
        self.embed_seconds_ += frozen.embed_seconds_
        encoder_part = {"model": self.adapt_encoder, "template": ENCODER_TEMPLATE, "pooling": "mean", "layers": (-1,)}

        def encoder_features() -> np.ndarray:
            emb = LMEmbedder(self.adapt_encoder, template=ENCODER_TEMPLATE, pooling="mean", layers=(-1,),
                             batch_size=self.batch_size, cache=cache).fit()
            out = emb.transform(texts)
            self.embed_seconds_ += emb.embed_seconds_
            return out

        from slmkit._status import status

        device = str(cache.model(self.adapt_encoder).info.get("device", "cpu"))
        # The LM candidate adapts the frozen choice: same template, pooling and (absolute) layers.
        recipe = {"template": frozen.template, "pooling": frozen.pooling, "layers": tuple(frozen.layers_)}
        lm_part = {"model": self.model, "template": self.template_, "pooling": self.pooling_, "layers": self.layers_}
        with status(f"trying encoder adaptation by cross-validation (budget {budget:.0f} s)"):
            report = search(texts, y, features, encoder_features, budget_s=budget, encoder=self.adapt_encoder,
                            n_splits=self.cv, class_weight=self.class_weight, seed=self.random_state, device=device,
                            batch_size=self.batch_size, lm={"lm": frozen.lm_, **recipe}, pairs=pairs)
            choice = report["chosen"]
            if choice in ("encoder-ft", "concat-ft"):  # the final fine-tune: all training rows, the CV'd recipe
                model, info = contrastive_finetune(self.adapt_encoder, texts, y,
                                                   pairs_per_example=report["pairs_per_example"],
                                                   seed=self.random_state, device=device)
                report["final_finetune"] = info
                encoder_part = {**encoder_part, "model": str(save_encoder(model, _scratch_dir())), "adapted": True}
            elif choice == "lm-ft":  # the LoRA adapter on all training rows, kept as a run folder
                run_dir = Path(_scratch_dir()) / "lm"
                _, info = lm_contrastive_finetune(frozen.lm_, texts, y, **recipe, run_dir=run_dir,
                                                  pairs_per_example=report["lm_pairs_per_example"],
                                                  seed=self.random_state)
                report["lm_final_finetune"] = info
                lm_part = {**lm_part, "model": str(run_dir), "adapted": True}
        self.parts_ = {"frozen": None, "concat": [lm_part, encoder_part], "encoder-ft": [encoder_part],
                       "concat-ft": [lm_part, encoder_part], "lm-ft": [lm_part]}[choice]
        return report

    def _make_head(self) -> PLRClassifier:
        return PLRClassifier(penalty=self.penalty, Cs=self.Cs, l1_ratios=self.l1_ratios, cv=self.cv,
                             class_weight=self.class_weight, random_state=self.random_state)

    def fit(self, X, y) -> LMClassifier:
        """Embed the texts (cached) and fit the penalised head.

        Args:
            X: sequence of n_samples non-empty texts.
            y: sequence of n_samples labels; every label needs at least two examples.
        """
        texts = check_texts(X)
        y = np.asarray(y)
        if len(y) != len(texts):
            raise DataError(f"X has {len(texts)} texts but y has {len(y)} labels; they must match row for row")
        check_label_counts(y)
        pairs = resolve_pairs(self.adapt_pairs)  # a bad value fails now, not after minutes of forward passes
        cache = self.cache if self.cache is not None else EmbeddingCache()
        self.embed_seconds_ = 0.0
        start = time.perf_counter()
        self.auto_ = self._choose(texts, y, cache)
        self.adapt_ = self._adapt(texts, y, cache, pairs)
        self.select_seconds_ = time.perf_counter() - start
        self.embedder_ = self._make_embedder(cache).fit()
        features = self.embedder_.transform(texts)
        self.embed_seconds_ += self.embedder_.embed_seconds_
        start = time.perf_counter()
        self.head_ = self._make_head().fit(features, y)
        self.fit_seconds_ = time.perf_counter() - start
        self.classes_ = self.head_.classes_
        return self

    def transform(self, X) -> np.ndarray:
        """The embeddings the head sees, array of shape (n_samples, n_features)."""
        check_is_fitted(self, "head_")
        return self.embedder_.transform(X)

    def decision_function(self, X) -> np.ndarray:
        """Logits, shape (n_samples,) for two classes (positive = classes_[1]) else (n_samples, n_classes)."""
        return self.head_.decision_function(self.transform(X))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, array of shape (n_samples, n_classes)."""
        return self.head_.predict_proba(self.transform(X))

    def predict(self, X) -> np.ndarray:
        """Labels, array of shape (n_samples,)."""
        return self.head_.predict(self.transform(X))

    def save(self, directory) -> None:
        """Write the fitted classifier as an artifact directory (see `slmkit.classify.save_classifier`)."""
        from slmkit.classify._artifact import save_classifier

        save_classifier(self, directory)

    @classmethod
    def load(cls, directory, *, cache: EmbeddingCache | None = None) -> LMClassifier:
        """Rebuild a fitted classifier from `save`'s directory (loads the LM it names)."""
        from slmkit.classify._artifact import load_classifier

        return load_classifier(directory, cache=cache)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


def _scratch_dir():
    """A folder for a fine-tuned encoder until `save` copies it into the artifact; removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="slmkit-encoder-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
