"""On-disk cache of per-text vectors (embeddings, zero-shot scores) and an in-process memo of loaded models.

Embeddings are stored one layer at a time in SQLite, keyed by sha256(model checksum, template, pooling, layer,
text), so a learning curve, a cross-validation fold, a new penalty or a new random draw never embeds a text
twice, and a layer set such as (-1, 9) is assembled from entries that (-1,) or (9,) already wrote. SQLite gives
atomic, crash-safe writes and concurrent readers for free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from slmkit.models import LanguageModel, cache_dir, load_model

logger = logging.getLogger(__name__)

CACHE_FILE = "embeddings.sqlite"


def namespace_key(**parts) -> str:
    """A stable key for everything except the text that decides a vector (model checksum, template...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def embedding_namespace(checksum: str, template: str, pooling: str, layer: int) -> str:
    """The key of one embedding layer: every user of the cache (classifiers, few-shot retrieval) builds it here,
    with `layer` an absolute hidden-state index (`resolve_layers`), so they share vectors."""
    return namespace_key(kind="embed", checksum=checksum, template=template, pooling=pooling, layer=layer)


def _text_key(namespace: str, text: str) -> bytes:
    return hashlib.sha256(f"{namespace}\x00{text}".encode()).digest()


class EmbeddingCache:
    """Vectors on disk plus the models loaded in this process, shared by every estimator it is given to.

    Pass one instance to several estimators (and to their `clone`s: a deep copy returns the same object) so
    that a model is loaded once per process and a text is embedded once per model, template, pooling and layer.

    Args:
        directory: where `embeddings.sqlite` lives; default `<slmkit cache dir>/classify`. `None`,
            `":memory:"` and `"none"` keep vectors in memory only (tests, the server, `--cache-dir none`).
        max_items: keep at most this many vectors, dropping the oldest (None: no bound).
        load_options: forwarded to `slmkit.models.load_model` (e.g. `num_threads`).

    Example:
        >>> cache = EmbeddingCache()
        >>> clf = LMClassifier(model="gemma3-270m", cache=cache)
    """

    def __init__(self, directory: str | Path | None = "default", *, max_items: int | None = None,
                 **load_options) -> None:
        if directory == "default":
            directory = cache_dir() / "classify"
        if max_items is not None and max_items < 1:
            raise ValueError(f"EmbeddingCache: max_items must be >= 1 or None, got {max_items}")
        # "none" (as the CLI spells it) or ":memory:": embeddings are kept in memory only, no folder is made
        off = directory is None or str(directory) == ":memory:" or str(directory).lower() == "none"
        self.directory = None if off else Path(directory)
        self.max_items = max_items
        self.load_options = load_options
        self._models: dict[str, LanguageModel] = {}
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0

    # clone() deep-copies non-estimator parameters; a cache is a shared handle, so copies are the same object.
    def __deepcopy__(self, memo) -> EmbeddingCache:
        return self

    def __getstate__(self) -> dict:  # pickling (joblib workers) re-opens the database and reloads models
        state = self.__dict__.copy()
        state.update(_models={}, _conn=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory) if self.directory else None!r})"

    # -- models -----------------------------------------------------------------------------------------------
    def model(self, name) -> LanguageModel:
        """The loaded model for `name` (a registry key, path or ModelSpec), loading it on first use."""
        key = name if isinstance(name, str) else repr(name)
        if key not in self._models:
            self._models[key] = load_model(name, **self.load_options)
        return self._models[key]

    def add_model(self, name: str, lm: LanguageModel) -> None:
        """Serve an already loaded model under `name` (e.g. one a caller loaded with custom options)."""
        self._models[name] = lm

    def loaded_models(self) -> dict[str, dict]:
        """name -> `info` (backend, checksum, load time...) of every model this cache has loaded."""
        return {name: dict(lm.info) for name, lm in self._models.items()}

    # -- vectors ----------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.directory is None:
                target = ":memory:"
            else:
                self.directory.mkdir(parents=True, exist_ok=True)
                target = str(self.directory / CACHE_FILE)
            self._conn = sqlite3.connect(target, timeout=60, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL" if target != ":memory:" else "PRAGMA journal_mode=MEMORY")
            self._conn.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, value BLOB NOT NULL)")
        return self._conn

    def get(self, namespace: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Cached float32 vectors for `texts` under `namespace`; `None` where absent."""
        keys = [_text_key(namespace, t) for t in texts]
        found: dict[bytes, bytes] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(conn.execute(f"SELECT key, value FROM vectors WHERE key IN ({marks})", chunk).fetchall())
        return [np.frombuffer(found[k], dtype=np.float32) if k in found else None for k in keys]

    def put(self, namespace: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one float32 row of `vectors` per text (atomically: all or nothing)."""
        rows = [(_text_key(namespace, t), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for t, v in zip(texts, vectors)]
        with self._lock:
            conn = self._connection()
            with conn:
                conn.executemany("INSERT OR REPLACE INTO vectors (key, value) VALUES (?, ?)", rows)
                if self.max_items is not None:  # a long-running server must not grow without bound
                    excess = conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] - self.max_items
                    if excess > 0:  # oldest first: rowids grow with insertion
                        conn.execute(
                            "DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY rowid LIMIT ?)",
                            (excess,),
                        )

    def get_or_compute(self, namespace: str, texts: Sequence[str],
                       compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Vectors for `texts`, computing (and storing) only the missing ones, each distinct text once."""
        cached = self.get(namespace, texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, cached) if v is None))
        self.hits += len(texts) - sum(v is None for v in cached)
        self.misses += len(missing)
        if missing:
            fresh = np.asarray(compute(missing), dtype=np.float32)
            self.put(namespace, missing, fresh)
            lookup = dict(zip(missing, fresh))
            cached = [v if v is not None else lookup[t] for t, v in zip(texts, cached)]
        if not cached:
            return np.zeros((0, 0), np.float32)
        return np.stack(cached).astype(np.float32, copy=False)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
