"""create_app: the FastAPI application (routes, limits, API key, error bodies, web page) and `serve`."""

from __future__ import annotations

import hmac
import json
import logging
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmkit.errors import MissingExtraError, ModelUnavailableError, SlmkitError, UnknownModelError
from slmkit.serve._config import ServeConfig
from slmkit.serve._registry import ApiError
from slmkit.serve._state import ServerState

logger = logging.getLogger(__name__)
STATIC = Path(str(files("slmkit.serve") / "static"))
_DRAIN_LIMIT = 64 * 1024 * 1024  # bodies up to this are read and dropped so the client sees the 413
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          409: "conflict_error", 413: "request_too_large", 503: "service_unavailable"}


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error shape, which its clients turn into a typed exception carrying the message."""
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error" if status >= 500 else
                                                              "invalid_request_error"),
                      "param": param, "code": code}}


def _json_error(status: int, message: str, **kwargs) -> JSONResponse:
    return JSONResponse(error_body(status, message, **kwargs), status_code=status)


class GuardMiddleware:
    """Pure ASGI: the API key check and the request-size limit, before any route parses a byte."""

    def __init__(self, app, *, max_bytes: int, api_key: str | None) -> None:
        self.app, self.max_bytes, self.api_key = app, max_bytes, api_key

    async def _reply(self, send, status: int, message: str, code: str) -> None:
        body = json.dumps(error_body(status, message, code=code)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, headers: dict) -> bool:
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.api_key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.api_key and scope["path"].startswith("/v1") and not self._authorized(headers):
            return await self._reply(send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                                                "'X-API-Key: KEY' (the key given to slmkit serve --api-key)",
                                     "invalid_api_key")
        limit = self.max_bytes
        too_big = f"request body is larger than the server's limit of {limit / 1048576:g} MB (--max-request-mb)"
        declared = headers.get(b"content-length")
        try:
            declared_n = int(declared) if declared is not None else None
        except ValueError:
            return await self._reply(send, 400, "invalid Content-Length header", "invalid_header")
        if declared_n is not None and declared_n > limit:
            if declared_n <= _DRAIN_LIMIT:
                await self._drain(receive)
            return await self._reply(send, 413, too_big, "request_too_large")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > limit:
                if more:
                    await self._drain(receive, size)
                return await self._reply(send, 413, too_big, "request_too_large")
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _drain(self, receive, size: int = 0) -> None:
        while size <= _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    parts, param = [], None
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        where = ".".join(loc) or "body"
        param = param or (loc[0] if loc and err.get("type") != "json_invalid" else None)
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            detail = ctx.get("error", "")
            parts.append(f"malformed JSON{f' ({detail})' if detail else ''}; send a JSON object")
            continue
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    message = "; ".join(dict.fromkeys(parts))[:1000] or "invalid request"
    return message, param


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The server application. Nothing is loaded until a request needs it."""
    from slmkit import __version__
    from slmkit.serve import (
        _routes_classify,
        _routes_jobs,
        _routes_openai,
        _routes_quality,
        _routes_registry,
        _routes_summarize,
    )

    config = config or ServeConfig()
    state = ServerState(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.jobs.resume_unfinished()  # jobs an earlier server on the same --jobs-dir left unfinished
        yield
        state.close()

    app = FastAPI(title="slmkit", version=__version__, lifespan=lifespan,
                  description="Small language models served locally: OpenAI-compatible runtime and slmkit jobs.")
    app.state.slmkit = state
    for module in (_routes_openai, _routes_summarize, _routes_classify, _routes_quality, _routes_jobs,
                   _routes_registry):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _json_error(exc.status, exc.message, param=exc.param, code=exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return _json_error(400, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no endpoint {request.method} {request.url.path} (see /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _json_error(exc.status_code, message)

    @app.exception_handler(SlmkitError)
    async def _slmkit(request: Request, exc: SlmkitError):
        status = 400
        if isinstance(exc, UnknownModelError):
            status = 404
        elif isinstance(exc, ModelUnavailableError | MissingExtraError):
            status = 503
        return _json_error(status, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # A bug, not bad input: logged with its traceback on the server, one line to the client.
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _json_error(500, f"internal error: {type(exc).__name__}: {str(exc)[:300]}")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(GuardMiddleware, max_bytes=config.max_request_bytes, api_key=config.api_key)
    return app


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Run the server in this process until interrupted (uvicorn, one worker)."""
    import uvicorn

    from slmkit.serve._config import is_local_host

    if not is_local_host(config.host) and not config.api_key:
        logger.warning("serving on %s without an API key: anyone who can reach this address can use the server "
                       "(give --api-key or set SLMKIT_API_KEY)", config.host)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level=log_level, workers=1)
