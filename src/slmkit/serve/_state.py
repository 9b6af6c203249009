"""The server's shared state: config, registry, loaded objects, the model thread, micro-batcher and jobs."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import Request

from slmkit.serve._batching import MicroBatcher
from slmkit.serve._config import ServeConfig
from slmkit.serve._registry import ApiError, Entry, Registry

logger = logging.getLogger(__name__)

LM_KINDS = ("builtin", "model", "run")
# Embeddings a served classifier keeps in memory (repeated texts skip the model); bounded because a server runs
# for days: 20,000 vectors of one 640-wide layer are ~50 MB.
SERVED_VECTORS = 20_000


class ServerState:
    """Everything the routes share. Objects are loaded on first use, on the model thread, and kept."""

    def __init__(self, config: ServeConfig) -> None:
        from slmkit.serve._jobs import JobManager

        self.config = config
        self.registry = Registry(config.served_dir)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmkit-model")
        self.batcher = MicroBatcher(self.executor, wait_s=config.batch_wait_ms / 1000,
                                    max_items=config.max_micro_batch)
        self._objects: dict[tuple, object] = {}
        self._classify_cache = None  # the EmbeddingCache every served classifier shares (see `classifier`)
        self._lock = threading.RLock()
        if config.jobs_dir:
            jobs_dir = Path(config.jobs_dir)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="slmkit-serve-jobs-")
            jobs_dir = Path(self._tmp.name)
        self.jobs = JobManager(self, jobs_dir)

    # ---- running on the model thread ------------------------------------------------------------------

    async def run(self, fn: Callable, *args):
        """Run `fn(*args)` on the model thread (loads and unbatched calls)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def cached(self, key: tuple, make: Callable[[], object]):
        """The object stored under `key`, made once (call on the model thread)."""
        with self._lock:
            if key not in self._objects:
                logger.info("loading %s", key)
                self._objects[key] = make()
            return self._objects[key]

    def loaded(self) -> list[str]:
        return [":".join(str(p) for p in key) for key in self._objects]

    # ---- lookups ------------------------------------------------------------------------------------------

    def lm_entry(self, name: str | None) -> Entry:
        return self.registry.get(name or self.config.default_model, LM_KINDS)

    def lm(self, entry: Entry):
        return self.loaded_lm(entry.target)

    def loaded_lm(self, target: str):
        """The model at `target`, loaded once and shared by every endpoint that uses it."""
        from slmkit.models import load_model

        return self.cached(("lm", target), lambda: load_model(target))

    def classifier(self, entry: Entry):
        from slmkit.classify import EmbeddingCache, load_classifier

        # One cache for every classifier served: artifacts on the same LM share one loaded copy of it (each had
        # its own, so ten classifiers on gemma3-270m held ten copies) and one bounded store of vectors.
        with self._lock:
            if self._classify_cache is None:
                self._classify_cache = EmbeddingCache(None, max_items=SERVED_VECTORS)
            cache = self._classify_cache
        return self.cached(("classifier", entry.target), lambda: load_classifier(entry.target, cache=cache))

    def scorer(self, entry: Entry):
        from slmkit.quality import load_scorer

        return self.cached(("scorer", entry.target), lambda: load_scorer(entry.target))

    def close(self) -> None:
        self.jobs.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def get_state(request: Request) -> ServerState:
    return request.app.state.slmkit


def check_texts(state: ServerState, texts: list[str], param: str) -> None:
    """Enforce the batch-size and text-length limits with messages that name the item and the option."""
    config = state.config
    if len(texts) > config.max_batch:
        raise ApiError(413, f"{param} has {len(texts)} items; the limit is {config.max_batch} per request "
                            "(server option --max-batch; use a background job for large tables)", param=param)
    for i, text in enumerate(texts):
        if len(text) > config.max_text_chars:
            raise ApiError(413, f"{param}[{i}] has {len(text):,} characters; the limit is "
                                f"{config.max_text_chars:,} (server option --max-text-chars)", param=param)
