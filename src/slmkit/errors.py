"""slmkit's exceptions. Each also subclasses the matching builtin, so callers may catch either."""

from __future__ import annotations


class SlmkitError(Exception):
    """Base class of every error slmkit raises on purpose (the CLI prints these as one line)."""


class DataError(SlmkitError, ValueError):
    """Input data is malformed: the message names the file, the 1-based row and the field."""


class ConfigError(SlmkitError, ValueError):
    """A configuration value or combination of values is not allowed."""


class UnknownModelError(SlmkitError, KeyError):
    """A model name is not registered and is not a usable path."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ModelUnavailableError(SlmkitError, OSError):
    """The model is known but its weights cannot be reached (offline, package missing...)."""


class MissingExtraError(SlmkitError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


class NotFittedError(SlmkitError, AttributeError):
    """A fitted object was used before `fit`."""


class TrainingDivergedError(SlmkitError, RuntimeError):
    """Training produced a non-finite loss or gradient; the run stopped and wrote no model."""
