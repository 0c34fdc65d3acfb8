"""The two process-wide changes to aiohttp, applied once by ``apply()`` from ``server.py`` (and the tests' and
benchmarks' in-process servers), never from the app factory. aiohttp has no per-application hook for either.

1. Errors that aiohttp answers itself, before any middleware runs: a request line or header over 8 KiB,
malformed HTTP, an exception that escapes the app. aiohttp's own answer is plain text that quotes the first
bytes of the offending line, and its log line does too: for an oversized ``Authorization`` header that is
the token. Here they get the API's JSON error shape and an X-Request-Id, and are logged without raw bytes.

``RequestHandler.handle_error`` is replaced; the replacement keeps aiohttp's contract (same status,
connection closed, ConnectionError when a response was already started).

2. ``Expect: 100-continue`` is answered after auth (stt/http/expect.py), on every route, 404s and 405s included:
aiohttp offers ``expect_handler=`` per route only and takes the default from the module global
``web_urldispatcher._default_expect_handler`` when a route is built, so that global does nothing here.

``tests/server/test_aiohttp_patches.py`` fails when a new aiohttp changes the shape of what is patched.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from aiohttp import web, web_urldispatcher
from aiohttp.web_protocol import RequestHandler

from stt.http.faces.native.errors import native_error_body
from stt.http.observability import REQUEST_ID_HEADER, SERVER_NAME

log = logging.getLogger("stt.protocol")
PATCHED = (RequestHandler.handle_error, web_urldispatcher._default_expect_handler)  # aiohttp's own, for the test


def _json_handle_error(self: RequestHandler, request: web.BaseRequest, status: int = 500,
                       exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    if status >= 500:
        log.error("%s internal error answering %s", request_id, request.remote, exc_info=exc)
        text, code = "Internal server error", "internal_error"
    else:
        # The exception's text quotes the raw request bytes (possibly a token): only its type is logged.
        log.warning("%s malformed HTTP request from %s: %s -> %d", request_id, request.remote,
                    type(exc).__name__ if exc else "-", status)
        text = (f"Malformed HTTP request ({type(exc).__name__ if exc else HTTPStatus(status).phrase}): "
                "the request line or a header is over 8 KiB, or it is not valid HTTP")
        code = "bad_request"
    if request.writer.output_size > 0:
        raise ConnectionError("Response is sent already, cannot send another response with the error message")
    response = web.json_response(native_error_body(text, code), status=status,
                                 headers={REQUEST_ID_HEADER: request_id, "Server": SERVER_NAME})
    response.force_close()
    return response


async def _expect_later(request: web.Request) -> None:
    """The routes' expect handler: nothing; the middleware and ``send_continue`` (stt/http/expect.py) answer."""
    return None


def apply() -> None:
    """Idempotent."""
    RequestHandler.handle_error = _json_handle_error  # type: ignore[method-assign]
    web_urldispatcher._default_expect_handler = _expect_later  # type: ignore[attr-defined]
