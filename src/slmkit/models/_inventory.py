"""What `slmkit models list` shows: installed state, size, licence and cache state of each built-in model."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from slmkit._constants import CONVERTED_MARKER
from slmkit.models._registry import list_models
from slmkit.models._spec import ModelSpec
from slmkit.models._weights import cache_dir, package_dir, package_installed


@dataclass
class ModelStatus:
    spec: ModelSpec
    installed: bool
    size_mb: float | None
    converted: bool

    def to_row(self) -> dict:
        return {
            "name": self.spec.name,
            "kind": self.spec.kind,
            "package": self.spec.package,
            "installed": self.installed,
            "size_mb": self.size_mb,
            "licence": self.spec.licence,
            "converted_cache": self.converted,
        }


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
            )
        )
    return out


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
        gguf = cache_dir() / "gguf" / spec.name / f"{spec.name}.gguf"
    import json

    return any(json.loads(e.read_text()).get("gguf") == str(gguf) for e in entries)
