"""The native error shape ``{"status": "failed", "message", "code", "param"}``: also the server's default,
for paths of no face and for what aiohttp or CORS answer before the error middleware runs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from stt.http.faces.face import ErrorInfo


def native_error_body(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "failed", "message": message, "code": code}
    if param:
        body["param"] = param
    return body


def native_error(request: web.Request, info: ErrorInfo) -> web.Response:
    return web.json_response(native_error_body(info.message, info.code, info.param), status=info.status,
                             headers=info.headers)
