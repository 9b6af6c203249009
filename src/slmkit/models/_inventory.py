"""What `slmkit models list` shows: installed state, size, licence and cache state of each built-in model."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from slmkit._constants import CONVERTED_MARKER
from slmkit.models._registry import list_models
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import assembled_gguf, cache_dir, package_dir, package_installed


@dataclass
class ModelStatus:
    spec: ModelSpec
    installed: bool
    size_mb: float | None
    converted: bool
    engine_caches: tuple[str, ...] = ()

    def to_row(self) -> dict:
        return {
            "name": self.spec.name,
            "kind": self.spec.kind,
            "package": self.spec.package,
            "installed": self.installed,
            "size_mb": self.size_mb,
            "licence": self.spec.licence,
            "converted_cache": self.converted,
            "engine_caches": list(self.engine_caches),
        }


@dataclass
class EngineStatus:
    """A backend: whether it can run here, and the precisions it offers."""

    backend: str
    available: bool
    version: str | None
    precisions: tuple[str, ...]
    note: str

    def to_row(self) -> dict:
        return {"backend": self.backend, "available": self.available, "version": self.version,
                "precisions": list(self.precisions), "note": self.note}


# (backend, import name, distribution, precisions, what it is for)
ENGINES = (
    ("transformers", "transformers", "transformers", ("float32", "bfloat16", "float16", "int8-dynamic"),
     "the default: every job, training, GPU; keep_tokens= trims the output layer"),
    ("ctranslate2", "ctranslate2", "ctranslate2", ("int8", "float32"),
     "fast CPU generation and scoring; extra `fast`; keep_tokens= trims the output layer"),
    ("llamacpp", "llama_cpp", "llama-cpp-python", ("gguf",), "GGUF files as quantised, and LoRA runs of them (adapter applied by llama.cpp); extra `llamacpp` (compiles)"),
)


def engine_statuses() -> list[EngineStatus]:
    """One status per backend slmkit knows. Cheap: looks packages up without importing them."""
    import importlib.util

    out = []
    for backend, module, dist, precisions, note in ENGINES:
        available = importlib.util.find_spec(module) is not None
        try:
            version = importlib.metadata.version(dist) if available else None
        except importlib.metadata.PackageNotFoundError:
            version = None
        if backend == "transformers":  # the one fact that depends on the machine
            note = f"{note}; {_auto_precision_here()}"
        out.append(EngineStatus(backend, available, version, precisions, note))
    return out


def _auto_precision_here() -> str:
    """What dtype="auto" runs on this machine's CPU (a GPU, when torch sees one, decides for itself)."""
    from slmkit.models._precision import cpu_native_bf16

    if cpu_native_bf16():
        return "auto = bfloat16 on this CPU (native bf16; oneDNN-packed layers)"
    return "auto = float32 on this CPU (no native bf16)"


def model_statuses() -> list[ModelStatus]:
    """One status per registered model. Cheap: reads package metadata and directory listings only."""
    out = []
    for spec in list_models():
        installed = package_installed(spec)
        out.append(
            ModelStatus(
                spec,
                installed,
                _package_size_mb(spec) if installed else None,
                _is_converted(spec) if installed else False,
                _engine_caches(spec),
            )
        )
    return out


def _engine_caches(spec: ModelSpec) -> tuple[str, ...]:
    """The fast-engine conversions cached for this model name ("ctranslate2 int8", ...)."""
    from slmkit.models._ctranslate2 import MARKER, QUANTIZATIONS

    root = cache_dir() / "ctranslate2"
    return tuple(
        f"ctranslate2 {q}" for q in QUANTIZATIONS if any(root.glob(f"{spec.name}-*-{q}/{MARKER}"))
    )


def _package_size_mb(spec: ModelSpec) -> float:
    # The weights of gemma3-270m live in four chunk packages, so count every distribution the package pulls in
    # whose name starts with its own.
    total = 0
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name == spec.package or name.startswith(f"{spec.package}-part"):
            total += sum((f.size or 0) for f in dist.files or [])
    return round(total / 2**20, 1)


def _is_converted(spec: ModelSpec) -> bool:
    """True when no conversion is needed (not a GGUF) or a finished conversion of this GGUF is cached."""
    if spec.package_path and not spec.package_path.endswith(".gguf"):
        return True
    entries = list((cache_dir() / "converted").glob(f"*/{CONVERTED_MARKER}"))
    if spec.package_path:
        gguf = package_dir(spec.module) / spec.package_path
    else:
        gguf = assembled_gguf(spec)
    import json

    return any(json.loads(e.read_text()).get("gguf") == str(gguf) for e in entries)
