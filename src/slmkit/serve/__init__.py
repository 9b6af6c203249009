"""Serve slmkit over HTTP: an OpenAI-compatible runtime API, the summarize / classify / quality jobs, a registry
of served artifacts, background batch jobs and a small web page, all from one process (`slmkit serve`).

Needs the `serve` extra (`pip install 'slmkit[serve]'`: FastAPI, uvicorn, python-multipart).

Example:
    >>> from slmkit.serve import ServeConfig, create_app
    >>> app = create_app(ServeConfig(served_dir="runs"))       # an ASGI app; or serve(config) to run uvicorn
"""

from __future__ import annotations

from slmkit.serve._config import ENV_API_KEY, ServeConfig, is_local_host

__all__ = ["ENV_API_KEY", "ServeConfig", "create_app", "is_local_host", "serve"]


def _require_extra():
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401  (python-multipart: CSV uploads)
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from slmkit.errors import MissingExtraError

        raise MissingExtraError(f"slmkit serve needs {exc.name}: pip install 'slmkit[serve]'") from exc


def create_app(config: ServeConfig | None = None):
    """The FastAPI application for `config` (see slmkit.serve._app.create_app)."""
    _require_extra()
    from slmkit.serve._app import create_app as _create

    return _create(config)


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Run the server with uvicorn until interrupted."""
    _require_extra()
    from slmkit.serve._app import serve as _serve

    _serve(config, log_level=log_level)
