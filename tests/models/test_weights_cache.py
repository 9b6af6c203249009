from __future__ import annotations

import pytest

from slmkit._constants import CONVERTED_MARKER
from slmkit.models import cache_dir
from slmkit.models._weights import converted_dir, ensure_converted, sha256_file


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


def test_conversion_runs_once_and_is_atomic(monkeypatch, tmp_path):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    calls = []

    def failing(out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        ensure_converted(gguf, failing)
    assert not converted_dir(gguf).exists()  # nothing half-written left behind

    def convert(out):
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"full")

    first = ensure_converted(gguf, convert)
    second = ensure_converted(gguf, convert)
    assert first == second and len(calls) == 1
    assert (first / CONVERTED_MARKER).is_file() and (first / "model.safetensors").read_bytes() == b"full"
    assert first.name == sha256_file(gguf)[:16]
    # a changed GGUF gets its own entry
    gguf.write_bytes(b"other weights")
    assert ensure_converted(gguf, convert) != first


def test_a_conversion_records_what_converted_it_and_the_tokenizer_it_made(monkeypatch, tmp_path):
    import hashlib
    import importlib.metadata

    from slmkit.models._weights import converted_info

    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")

    def convert(out):
        (out / "model.safetensors").write_bytes(b"full")
        (out / "tokenizer.json").write_text('{"model": "bpe"}')

    info = converted_info(ensure_converted(gguf, convert))
    assert info["transformers"] == importlib.metadata.version("transformers")
    assert info["tokenizer_sha256"] == hashlib.sha256(b'{"model": "bpe"}').hexdigest()
    assert converted_info(tmp_path / "nowhere") == {}
