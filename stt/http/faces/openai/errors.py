"""OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``, as its SDKs parse it."""

from __future__ import annotations

from aiohttp import web

from stt.http.faces.face import ErrorInfo


def _error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(request: web.Request, info: ErrorInfo) -> web.Response:
    code = "invalid_api_key" if info.status in (401, 403) else info.code
    body = {"error": {"message": info.message, "type": _error_type(info.status), "param": info.param,
                      "code": code}}
    return web.json_response(body, status=info.status, headers=info.headers)
