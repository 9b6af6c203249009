"""slmkit: small language models made strong, cheap and explainable on a CPU, offline.

Importing slmkit is cheap: torch and transformers load only when a model is loaded.
"""

from __future__ import annotations

__version__ = "0.1.0"

from slmkit.errors import ConfigError, DataError, SlmkitError, UnknownModelError

__all__ = ["__version__", "SlmkitError", "DataError", "ConfigError", "UnknownModelError"]
