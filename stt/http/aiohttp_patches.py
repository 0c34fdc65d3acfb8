"""Errors that aiohttp answers itself, before any middleware runs: a request line or header over 8 KiB,
malformed HTTP, an exception that escapes the app. aiohttp's own answer is plain text that quotes the first
bytes of the offending line, and its log line does too: for an oversized ``Authorization`` header that is
the token. Here they get the API's JSON error shape and an X-Request-Id, and are logged without raw bytes.

aiohttp has no per-application hook for these (they happen before routing), so ``install()`` replaces
``RequestHandler.handle_error`` for the process; it is idempotent and the replacement keeps aiohttp's
contract (same status, connection closed, ConnectionError when a response was already started).
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from stt.http.faces.native.errors import native_error_body
from stt.http.observability import REQUEST_ID_HEADER, SERVER_NAME

log = logging.getLogger("stt.protocol")


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


def install() -> None:
    RequestHandler.handle_error = _json_handle_error  # type: ignore[method-assign]
