"""ServeConfig: everything `slmkit serve` needs, one field per CLI option (kebab-case there)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field

from slmkit._constants import DEFAULT_MODEL, DEFAULT_SEED
from slmkit.errors import ConfigError

ENV_API_KEY = "SLMKIT_API_KEY"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_local_host(host: str) -> bool:
    """True for loopback addresses (the only ones served without a warning when no API key is set)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """How the server runs and what it accepts.

    Attributes:
        served_dir: folder searched for fine-tuned run folders, classifier artifacts, quality scorers and model
            folders; artifact names are paths relative to it and can never leave it. None: built-in models only.
        host / port: where uvicorn listens; 127.0.0.1 (this machine only) by default.
        api_key: when set, every /v1 request must send `Authorization: Bearer KEY` or `X-API-Key: KEY`.
        default_model: model used when a request names none (summarize, completions).
        max_request_mb: largest request body (JSON or CSV upload); larger ones get 413.
        max_batch: most texts (or dialogues, messages) in one request.
        max_text_chars: longest single text, dialogue or prompt.
        max_new_tokens: most tokens one generation request may ask for.
        batch_wait_ms: how long a model call waits for more concurrent requests to join it; 0 (default): no
            wait, a call takes whatever queued while the previous one ran.
        max_micro_batch: most texts in one micro-batched model call; 1 turns micro-batching off
            (one request per model call).
        jobs_dir: where background jobs keep uploads and results; None: a temporary folder.
        seed: generation seed when a request gives none.
    """

    served_dir: str | None = field(default=None, metadata={"help": "folder of artifacts to serve"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind"})
    port: int = field(default=8000, metadata={"help": "port to bind"})
    api_key: str | None = field(default=None, metadata={"help": "required API key (header)"})
    default_model: str = field(default=DEFAULT_MODEL, metadata={"help": "model when a request names none"})
    max_request_mb: float = field(default=5.0, metadata={"help": "largest request body in MB"})
    max_batch: int = field(default=64, metadata={"help": "most texts per request"})
    max_text_chars: int = field(default=20_000, metadata={"help": "longest text per item"})
    max_new_tokens: int = field(default=512, metadata={"help": "most new tokens per generation"})
    batch_wait_ms: float = field(default=0.0, metadata={"help": "micro-batching window"})
    max_micro_batch: int = field(default=32, metadata={"help": "most texts per model call (1: off)"})
    jobs_dir: str | None = field(default=None, metadata={"help": "folder for background job files"})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "default generation seed"})

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key is empty; give a non-empty key or leave it out")
        if not self.max_request_mb > 0:
            raise ConfigError(f"max_request_mb must be > 0, got {self.max_request_mb}")
        for name in ("max_batch", "max_text_chars", "max_new_tokens", "max_micro_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["api_key"] = "set" if self.api_key else None  # never echo the key
        return out
