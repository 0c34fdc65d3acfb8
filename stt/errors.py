"""Domain errors and the one middleware that turns any failure into the JSON error shape of the API face called.

Each API face (native, OpenAI, Deepgram) registers a renderer for its path prefix; anything not registered
uses the native shape ``{"status": "failed", "message": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from stt.logs import safe

log = logging.getLogger("stt.errors")


class ApiError(Exception):
    """A failure with an HTTP status and a message that is safe to show the client."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class AudioError(BadRequest):
    code = "invalid_audio"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class Overloaded(ApiError):
    status, code = 503, "overloaded"


class EngineError(ApiError):
    status, code = 500, "engine_error"


ErrorRenderer = Callable[[web.Request, "ErrorInfo"], web.Response]


class ErrorInfo:
    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}


def native_error_body(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    """The native error shape; also used where aiohttp or CORS answer before the error middleware runs."""
    body: dict[str, Any] = {"status": "failed", "message": message, "code": code}
    if param:
        body["param"] = param
    return body


def native_error(request: web.Request, info: ErrorInfo) -> web.Response:
    return web.json_response(native_error_body(info.message, info.code, info.param), status=info.status,
                             headers=info.headers)


ERROR_RENDERERS = web.AppKey("error_renderers", list[tuple[str, ErrorRenderer]])


def register_error_renderer(app: web.Application, prefix: str, renderer: ErrorRenderer) -> None:
    app.setdefault(ERROR_RENDERERS, []).append((prefix, renderer))


def _renderer_for(request: web.Request) -> ErrorRenderer:
    for prefix, renderer in request.app.get(ERROR_RENDERERS, []):
        if request.path.startswith(prefix):
            return renderer
    return native_error


def _info_from_http(exc: web.HTTPException) -> ErrorInfo:
    headers = {k: v for k, v in exc.headers.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            413: "too_large", 429: "rate_limited"}.get(exc.status, "http_error")
    return ErrorInfo(exc.status, exc.reason, code, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        info = ErrorInfo(exc.status, exc.message, exc.code, exc.param, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        info = _info_from_http(exc)
    except (RecursionError, UnicodeDecodeError) as exc:
        # A parser given hostile input (JSON nested 5,000 deep, bytes that are not text): the request's fault.
        log.warning("request could not be parsed: %s", type(exc).__name__)
        info = ErrorInfo(400, f"Malformed request: it could not be parsed ({type(exc).__name__})", "bad_request")
    except Exception:  # the server must answer, and stay up, whatever went wrong inside
        log.exception("unhandled error on %s %s", safe(request.method, 20), safe(request.path))
        info = ErrorInfo(500, "Internal server error", "internal_error")
    from stt.http.stats import request_stats  # here: stats -> scheduler -> errors would be an import cycle

    request_stats(request).error_code = info.code
    return _renderer_for(request)(request, info)
