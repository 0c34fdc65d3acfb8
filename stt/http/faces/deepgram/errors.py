"""Deepgram's error shape ``{"err_code", "err_msg", "request_id"}``, with its ``dg-request-id`` header."""

from __future__ import annotations

import uuid

from aiohttp import web

from stt.http.faces.face import ErrorInfo
from stt.http.stats import request_stats

DG_REQUEST_ID = "dg-request-id"
MINTED_ID = web.RequestKey("deepgram_request_id", str)
ERR_CODES = {400: "Bad Request", 401: "INVALID_AUTH", 403: "INSUFFICIENT_PERMISSIONS", 404: "Not Found",
             405: "Method Not Allowed", 413: "PAYLOAD_TOO_LARGE", 429: "TOO_MANY_REQUESTS",
             503: "SERVICE_UNAVAILABLE"}


def deepgram_request_id(request: web.Request) -> str:
    """Deepgram's request ids are UUIDs: reuse ours when it is one (the usual case), else mint one."""
    current = request_stats(request).request_id
    try:
        return str(uuid.UUID(current))
    except ValueError:
        if MINTED_ID not in request:
            request[MINTED_ID] = str(uuid.uuid4())
        return request[MINTED_ID]


def deepgram_error(request: web.Request, info: ErrorInfo) -> web.Response:
    request_id = deepgram_request_id(request)
    code = ERR_CODES.get(info.status, "INTERNAL_SERVER_ERROR" if info.status >= 500 else info.code)
    body = {"err_code": code, "err_msg": info.message, "request_id": request_id}
    return web.json_response(body, status=info.status, headers={**info.headers, DG_REQUEST_ID: request_id})
