"""The one record type that flows through slmkit pipelines (datatrove's Document, in spirit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A text with an id; steps put their scores and decisions into `metadata`."""

    text: str
    id: str
    metadata: dict[str, Any] = field(default_factory=dict)
