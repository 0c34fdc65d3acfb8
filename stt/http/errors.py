"""The one middleware that turns any failure into the JSON error shape of the API face called.

Domain errors (``stt/errors.py``) carry a code; ``STATUS`` maps it to an HTTP status here. The face that owns
the path (``stt/http/faces/``) renders the answer; paths of no face get the native shape.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from stt.errors import ApiError
from stt.http.faces.face import ErrorInfo, app_face
from stt.http.faces.native.errors import native_error
from stt.http.stats import request_stats
from stt.logs import safe

log = logging.getLogger("stt.errors")

STATUS = {  # domain error code -> HTTP status
    "bad_request": 400, "invalid_audio": 400, "unknown_model": 400, "not_found": 404, "not_ready": 409,
    "model_not_found": 404, "too_large": 413, "unsupported_encoding": 415, "overloaded": 503, "engine_error": 500,
    "internal_error": 500,
}
HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "too_large", 429: "rate_limited"}
PASSED_HEADERS = ("WWW-Authenticate", "Retry-After", "Allow")


def info_from_error(exc: ApiError) -> ErrorInfo:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else {}
    return ErrorInfo(STATUS.get(exc.code, 500), exc.message, exc.code, exc.param, headers)


def _info_from_http(exc: web.HTTPException) -> ErrorInfo:
    headers = {k: v for k, v in exc.headers.items() if k in PASSED_HEADERS}
    return ErrorInfo(exc.status, exc.reason, HTTP_CODES.get(exc.status, "http_error"), headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        info = info_from_error(exc)
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
    request_stats(request).error_code = info.code
    face = app_face(request)
    return (face.error_renderer if face else native_error)(request, info)
