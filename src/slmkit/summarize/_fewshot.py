"""Few-shot example selection: per input, the most similar training dialogues by embedding cosine."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from slmkit._status import chunks
from slmkit.errors import ConfigError
from slmkit.summarize._prompts import Example

logger = logging.getLogger(__name__)


class FewShotRetriever:
    """Pick `k` examples per dialogue from a pool by cosine similarity of mean-pooled LM embeddings.

    Only pool dialogues of at most `max_example_chars` characters are candidates: a long example would make
    every prompt long, and prompt length is what a CPU pays for.

    A causal LM's mean-pooled states share one large common direction, so raw cosine makes a few pool
    dialogues the nearest neighbour of almost everything (hubness) and the model then copies their summary.
    `center=True` subtracts the pool mean before normalizing; on the Korean example dialogues it raised the
    share of nearest examples with the input's topic from 3/6 to 5/6 (gemma3-270m, last layer). But ROUGE is
    what counts: on the last 100 Korean dev rows few-shot scored 22.7 raw vs 20.8 centred (95% intervals
    overlap; bench/results/summarize_baselines.json), so raw cosine (`center=False`) is the default.

    The pool's vectors are kept in the on-disk embedding cache that classification uses (keyed by model
    checksum, pooling, layer and text), so a second run over the same pool embeds nothing.

    Args:
        embedder: a LanguageModel (`embed` is used); an English encoder such as "minilm-l6" or the causal LM.
        k: examples per prompt.
        max_example_chars: longest candidate dialogue.
        batch_size: embedding batch size.
        center: subtract the pool's mean embedding before cosine similarity.
        cache: an `slmkit.classify.EmbeddingCache` for the pool's vectors, or None (always embed).
        progress: show a progress bar while the pool is embedded.
    """

    def __init__(
        self,
        embedder,
        *,
        k: int = 2,
        max_example_chars: int = 700,
        batch_size: int = 8,
        center: bool = False,
        cache=None,
        progress: bool = False,
    ) -> None:
        if k < 1:
            raise ConfigError(f"k (few-shot examples) must be >= 1, got {k}")
        self.embedder = embedder
        self.k = k
        self.max_example_chars = max_example_chars
        self.batch_size = batch_size
        self.center = center
        self.cache = cache
        self.progress = progress

    def fit(self, dialogues: Sequence[str], summaries: Sequence[str], ids: Sequence[str] | None = None):
        """Embed the candidate pool; `ids` let `select` skip an input's own row when the pool contains it."""
        ids = list(ids) if ids is not None else [str(i) for i in range(len(dialogues))]
        keep = [i for i, d in enumerate(dialogues) if len(d) <= self.max_example_chars]
        if len(keep) < self.k:
            raise ConfigError(
                f"only {len(keep)} pool dialogue(s) are at most {self.max_example_chars} characters but k={self.k}; "
                "raise max_example_chars or give a larger example set"
            )
        self.pool_ = [Example(dialogues[i], summaries[i]) for i in keep]
        self.ids_ = [ids[i] for i in keep]
        raw = self._embed_pool([dialogues[i] for i in keep])
        self.mean_ = raw.mean(axis=0) if self.center else np.zeros(raw.shape[1], raw.dtype)
        self.vectors_ = _unit(raw - self.mean_)
        logger.info(
            "few-shot pool: %d of %d dialogues (<= %d chars)", len(keep), len(dialogues), self.max_example_chars
        )
        return self

    def select(self, dialogues: Sequence[str], ids: Sequence[str] | None = None) -> list[list[Example]]:
        """For each dialogue, its k nearest pool examples, least similar first (the closest sits nearest the input)."""
        if not hasattr(self, "vectors_"):
            raise ConfigError("FewShotRetriever.select called before fit(pool)")
        sims = _unit(self._embed(list(dialogues)) - self.mean_) @ self.vectors_.T
        out = []
        for row, scores in enumerate(sims):
            if ids is not None:  # never show a dialogue its own reference
                scores = np.where(np.asarray(self.ids_) == ids[row], -np.inf, scores)
            best = np.argsort(-scores, kind="stable")[: self.k]
            out.append([self.pool_[j] for j in best[::-1]])
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed(texts, pooling="mean", layers=[-1], batch_size=self.batch_size)

    def _embed_pool(self, texts: list[str]) -> np.ndarray:
        """The pool's vectors: from the cache where present, the rest embedded under a progress bar."""

        def compute(missing: list[str]) -> np.ndarray:
            pieces = chunks(missing, 4 * self.batch_size, desc="embedding few-shot pool", unit="dialogue",
                            show=self.progress)
            return np.concatenate([self._embed(piece) for piece in pieces])

        info = getattr(self.embedder, "info", None) or {}
        # a trimmed output layer (keep_tokens) leaves embeddings as they were: share the untrimmed model's vectors
        checksum = info.get("embedding_checksum") or info.get("checksum")
        if self.cache is None or checksum is None:
            return compute(texts)
        from slmkit.classify._cache import embedding_namespace
        from slmkit.classify._embedder import resolve_layers

        # The key classification's embedder uses for the same vectors (no template, mean pooling, last layer).
        last = resolve_layers((-1,), getattr(self.embedder, "n_layers", None))[0]
        space = embedding_namespace(checksum, "{text}", "mean", last)
        hits = self.cache.hits
        vectors = self.cache.get_or_compute(space, texts, compute)
        logger.info("few-shot pool: %d of %d vectors from the embedding cache", self.cache.hits - hits, len(texts))
        return vectors


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
