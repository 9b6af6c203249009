"""LMEmbedder: texts -> vectors from a small LM (template, pooling, layers), cached on disk."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from slmkit._constants import DEFAULT_MODEL
from slmkit.classify._cache import EmbeddingCache, embedding_namespace
from slmkit.errors import ConfigError, DataError
from slmkit.models import LanguageModel

POOLINGS = ("mean", "last")
# Both poolings side by side: one forward pass gives both, and a head over both beat any single choice on the
# configuration study (bench/classify_selection.py).
BOTH = "mean+last"
POOLING_CHOICES = (*POOLINGS, BOTH)  # what LMEmbedder, LMClassifier and ClassifyConfig accept
_STORE_EVERY = 64  # texts embedded between cache writes (and progress-bar updates)


def check_texts(X, where: str = "X") -> list[str]:
    """A list of non-empty strings from a list, array, Series or single-column frame; else DataError."""
    if isinstance(X, str):
        raise DataError(f"{where}: expected a sequence of texts, got a single string; wrap it in a list")
    if hasattr(X, "ndim") and X.ndim == 2:
        if X.shape[1] != 1:
            raise DataError(f"{where}: expected one text column, got an array of shape {X.shape}")
        X = np.asarray(X)[:, 0]
    texts = list(X)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{where}: row {row + 1}: expected text, found {type(text).__name__} ({text!r:.40})")
        if not text.strip():
            raise DataError(f"{where}: row {row + 1}: empty text; fill it in or drop the row")
    return texts


def n_model_layers(lm: LanguageModel) -> int | None:
    """The layers `embed(layers=...)` can address (`LanguageModel.n_layers`); None where only the last is."""
    return getattr(lm, "n_layers", None)


def resolve_layers(layers: Sequence[int | float], n_layers: int | None) -> tuple[int, ...]:
    """Absolute hidden-state indices (0 = embeddings, n_layers = last); floats in (0, 1] are depth fractions."""
    if isinstance(layers, (int, float)):
        layers = (layers,)
    if not layers:
        raise ConfigError("layers must name at least one layer, e.g. (-1,) for the last or (0.5,) for the middle")
    out = []
    for layer in layers:
        if isinstance(layer, float):
            if not 0 < layer <= 1:
                raise ConfigError(f"a fractional layer must be in (0, 1] (depth fraction), got {layer}")
            if n_layers is None:
                raise ConfigError("fractional layers need a transformers model that reports its depth")
            layer = round(layer * n_layers)
        elif n_layers is not None:
            if not -(n_layers + 1) <= layer <= n_layers:
                raise ConfigError(f"layer {layer} is out of range for a {n_layers}-layer model "
                                  f"(use {-(n_layers + 1)}..{n_layers})")
            layer = layer % (n_layers + 1)
        out.append(int(layer))
    return tuple(out)


class LMEmbedder(TransformerMixin, BaseEstimator):
    """Featurise texts with a small LM's hidden states, wrapped in an instruction template.

    Args:
        model: registry name (`slmkit models list`), local directory or ModelSpec; loaded in `fit`.
        template: where the text goes ("{text}" exactly once), e.g.
            "Review: {text}\\nIs this review positive or negative? Answer:".
        pooling: "mean" (average over the formatted text's tokens, BOS excluded), "last" (last token) or
            "mean+last" (both, side by side, from the same forward pass).
        layers: hidden-state indices to concatenate (-1 = last layer; a float in (0, 1] is a depth fraction,
            0.5 = middle layer).
        batch_size: texts per forward pass.
        cache: an EmbeddingCache shared with other estimators; `None` makes a private one in the default
            cache dir at `fit`.

    Attributes:
        lm_: the loaded LanguageModel.
        layers_: the absolute layer indices used.
        model_info_: the model's name, backend and checksum (recorded in saved artifacts).
        poolings_: the poolings used, in feature order.
        n_features_out_: hidden size x number of layers x number of poolings.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, template: str = "{text}", pooling: str = "mean",
                 layers: Sequence[int | float] = (-1,), batch_size: int = 16,
                 cache: EmbeddingCache | None = None) -> None:
        self.model = model
        self.template = template
        self.pooling = pooling
        self.layers = layers
        self.batch_size = batch_size
        self.cache = cache

    def _validate_params(self) -> None:
        if self.pooling not in POOLING_CHOICES:
            raise ConfigError(f"LMEmbedder: pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}")
        if not isinstance(self.template, str) or self.template.count("{text}") != 1:
            raise ConfigError(f"LMEmbedder: template must contain '{{text}}' exactly once, got {self.template!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"LMEmbedder: batch_size must be a positive int, got {self.batch_size!r}")

    def fit(self, X=None, y=None) -> LMEmbedder:
        """Load the model (nothing is learned; X and y are ignored)."""
        self._validate_params()
        self.cache_ = self.cache if self.cache is not None else EmbeddingCache()
        self.lm_ = self.cache_.model(self.model)
        self.layers_ = resolve_layers(self.layers, n_model_layers(self.lm_))
        info = self.lm_.info
        self.model_info_ = {k: info.get(k) for k in ("name", "backend", "checksum", "tokenizer_sha256", "dtype")}
        self.hidden_size_ = int(self.lm_.hidden_size)
        self.poolings_ = tuple(self.pooling.split("+"))
        self.n_features_out_ = self.hidden_size_ * len(self.layers_) * len(self.poolings_)
        self.embed_seconds_ = 0.0
        self.n_embedded_ = 0
        return self

    def _namespace(self, layer: int, pooling: str) -> str:
        return embedding_namespace(self.model_info_["checksum"], self.template, pooling, layer)

    def _embed_missing(self, texts: list[str], poolings: tuple[str, ...], keep: bool = False):
        """Read every (pooling, layer) block of `texts` from the cache and embed the texts missing any of them.

        One forward pass per chunk gives every pooling and layer (blocks pooling-major, then layer, as the LM
        returns them); each block is stored on its own, so other layer sets and poolings reuse it, and chunks are
        stored as they finish, so an interrupted run over thousands of texts keeps its work. Returns (cached
        blocks per space, the texts embedded now, their vectors when `keep`).
        """
        spaces = [self._namespace(layer, how) for how in poolings for layer in self.layers_]
        cached = [self.cache_.get(space, texts) for space in spaces]
        missing = list(dict.fromkeys(t for i, t in enumerate(texts) if any(c[i] is None for c in cached)))
        fresh: dict[str, np.ndarray] = {}
        for chunk in _chunks(missing):
            start = time.perf_counter()
            vectors = self.lm_.embed(chunk, pooling=poolings, layers=self.layers_, template=self.template,
                                     batch_size=self.batch_size)
            self.embed_seconds_ += time.perf_counter() - start
            self.n_embedded_ += len(chunk)
            for j, space in enumerate(spaces):
                self.cache_.put(space, chunk, vectors[:, j * self.hidden_size_ : (j + 1) * self.hidden_size_])
            if keep:
                fresh.update(zip(chunk, vectors))
        return cached, missing, fresh

    def fill_cache(self, X, poolings: Sequence[str] = POOLINGS) -> int:
        """Embed the texts not yet cached under every pooling in `poolings`, one forward pass for all of them.

        Afterwards an LMEmbedder with the same model and template and any of these poolings and a subset of
        `layers_` reads every text back from the cache. Returns the number of texts embedded.
        """
        check_is_fitted(self, "lm_")
        _, missing, _ = self._embed_missing(check_texts(X), tuple(poolings))
        return len(missing)

    def transform(self, X) -> np.ndarray:
        """Embed texts (cached ones are read back, the rest computed once).

        Args:
            X: sequence of n_samples non-empty strings (or an array / frame of shape (n_samples, 1)).

        Returns:
            float32 array of shape (n_samples, n_features_out_).
        """
        check_is_fitted(self, "lm_")
        texts = check_texts(X)
        cached, missing, fresh = self._embed_missing(texts, self.poolings_, keep=True)
        self.cache_.hits += len(texts) - len(missing)
        self.cache_.misses += len(missing)
        out = np.empty((len(texts), self.n_features_out_), np.float32)
        for i, text in enumerate(texts):
            out[i] = fresh[text] if text in fresh else np.concatenate([blocks[i] for blocks in cached])
        return out

    def embed_uncached(self, texts: Sequence[str]) -> np.ndarray:
        """Features straight from the LM, not through the cache (for throw-away texts such as occlusion variants)."""
        check_is_fitted(self, "lm_")
        return self.lm_.embed(list(texts), pooling=self.poolings_, layers=self.layers_, template=self.template,
                              batch_size=self.batch_size)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "lm_")
        prefix = [f"{how}_" if len(self.poolings_) > 1 else "" for how in self.poolings_]
        return np.array([f"{pre}layer{layer}_{k}" for pre in prefix for layer in self.layers_
                         for k in range(self.hidden_size_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _chunks(texts: list[str]):
    """`texts` in slices of _STORE_EVERY, under a progress bar when the CLI shows progress (library calls and
    benchmarks stay quiet: they embed thousands of small sets)."""
    from slmkit._status import chunks

    return chunks(texts, _STORE_EVERY, desc="embedding texts", unit="text")
