"""What the server serves: built-in models plus the artifacts found under the served directory.

Artifacts are named by their path relative to the served directory ("runs/ko-lora", "clf/reviews"). A name
is only ever looked up in the scanned listing, never joined onto a path, so no request can reach a file
outside the served directory.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from slmkit._constants import CONFIG_NAME, METRICS_NAME, RUN_INFO_NAME

KINDS = ("builtin", "model", "run", "classifier", "scorer")
_MAX_DEPTH = 4
_RESCAN_SECONDS = 2.0


class ApiError(Exception):
    """An error the server answers with `status` and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass
class Entry:
    """One servable thing: its name, kind, folder (None for built-ins), config and metrics."""

    name: str
    kind: str
    path: Path | None = None
    task: str | None = None
    config: dict = field(default_factory=dict)
    metrics: dict | None = None

    @property
    def target(self) -> str:
        """What `load_model` / `load_classifier` / `load_scorer` is given."""
        return str(self.path) if self.path is not None else self.name

    def files(self) -> dict[str, bool]:
        if self.path is None:
            return {}
        return {name: (self.path / name).is_file() for name in ("metrics.jsonl", "learning_curve.png", "curve.json",
                                                                "curve.png")}

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "task": self.task, "config": self.config,
                "metrics": self.metrics, "files": [k for k, v in self.files().items() if v]}


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def classify_folder(path: Path) -> Entry | None:
    """The Entry a folder is, or None when it holds nothing servable."""
    from slmkit.quality import QUALITY_CONFIG_NAME, SCORER_INFO_NAME

    if (path / RUN_INFO_NAME).is_file():
        info = _read_json(path / RUN_INFO_NAME) or {}
        if info.get("status") != "done":
            return None
        config = {k: v for k, v in info.items() if k not in ("metrics",)}
        return Entry("", "run", path, info.get("task"), config, info.get("metrics"))
    if (path / QUALITY_CONFIG_NAME).is_file():
        info = _read_json(path / SCORER_INFO_NAME) or {}
        if info.get("status") != "done":
            return None
        return Entry("", "scorer", path, "quality", _read_json(path / QUALITY_CONFIG_NAME) or {}, info)
    if (path / CONFIG_NAME).is_file() and (path / "head.npz").is_file():
        config = _read_json(path / CONFIG_NAME) or {}
        metrics = _read_json(path / METRICS_NAME)
        if (path / "curve.json").is_file():
            metrics = {**(metrics or {}), "curve": _read_json(path / "curve.json")}
        return Entry("", "classifier", path, "classify", config, metrics)
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        return Entry("", "model", path, None, _read_json(path / "config.json") or {}, None)
    return None


def check_name(name: str, param: str = "model") -> str:
    """Refuse names that try to leave the served directory; return the normalized name."""
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, f"{param} is empty; give a model or artifact name (GET /v1/registry lists them)",
                       param=param)
    pure = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "~", "\\")) or ".." in pure.parts or ":" in name or "\x00" in name:
        raise ApiError(400, f"{param} {name!r} is not allowed: artifact names are paths relative to the served "
                            "directory and cannot contain '..', start with '/' or '~', or name a drive",
                       param=param, code="invalid_name")
    return str(pure)


class Registry:
    """The listing of built-in models and served artifacts, rescanned when a name is missed."""

    def __init__(self, served_dir: str | Path | None) -> None:
        self.served_dir = Path(served_dir).resolve() if served_dir else None
        self._entries: dict[str, Entry] = {}
        self._scanned_at = float("-inf")

    def builtin(self) -> list[Entry]:
        from slmkit.models import model_statuses

        return [Entry(s.spec.name, "builtin", None, None, s.to_row(), None) for s in model_statuses()]

    def scan(self) -> dict[str, Entry]:
        entries = {e.name: e for e in self.builtin()}
        if self.served_dir is not None and self.served_dir.is_dir():
            for folder in self._walk(self.served_dir, 0):
                entry = classify_folder(folder)
                if entry is not None:
                    entry.name = folder.relative_to(self.served_dir).as_posix()
                    entries[entry.name] = entry
        self._entries, self._scanned_at = entries, time.monotonic()
        return entries

    def _walk(self, folder: Path, depth: int):
        if depth > 0:
            yield folder
            if classify_folder(folder) is not None:  # an artifact's inner folders are its own business
                return
        if depth >= _MAX_DEPTH:
            return
        try:
            children = sorted(os.scandir(folder), key=lambda d: d.name)
        except OSError:
            return
        for child in children:
            # Symbolic links are not followed: they could point outside the served directory.
            if child.is_dir(follow_symlinks=False) and not child.name.startswith((".", "__")):
                yield from self._walk(Path(child.path), depth + 1)

    def entries(self) -> dict[str, Entry]:
        if time.monotonic() - self._scanned_at > _RESCAN_SECONDS:
            self.scan()
        return self._entries

    def get(self, name: str, kinds: tuple[str, ...], *, param: str = "model") -> Entry:
        """The entry called `name` of one of `kinds`; 400 for a path-like name, 404 when unknown."""
        name = check_name(name, param)
        entry = self._entries.get(name) or self.entries().get(name)
        if entry is None and time.monotonic() - self._scanned_at > 0.2:
            entry = self.scan().get(name)
        if entry is None or entry.kind not in kinds:
            known = sorted(n for n, e in self._entries.items() if e.kind in kinds)
            what = {"classifier": "classifier artifact", "scorer": "quality scorer"}.get(kinds[0], "model")
            where = f" under {self.served_dir}" if self.served_dir else " (no served directory given)"
            shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "") if known else "none"
            raise ApiError(404, f"unknown {what} {name!r}{where}; known: {shown}", param=param,
                           code="model_not_found")
        if entry.path is not None and self.served_dir is not None:
            # Belt and braces: the listing never holds such a path, but a swapped-in symlink could.
            if not entry.path.resolve().is_relative_to(self.served_dir):
                raise ApiError(403, f"{param} {name!r} resolves outside the served directory", param=param)
        return entry
