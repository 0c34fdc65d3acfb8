"""The native API face: GET /ping, POST /stt, POST /detect-language; errors ``{"status": "failed", ...}``."""

from __future__ import annotations

from stt.http.faces.face import Face
from stt.http.faces.native.errors import native_error
from stt.http.faces.native.routes import routes

# A wrong token is 403 here (no token: 401), the native API's split.
FACE = Face(name="native", prefixes=("/stt", "/detect-language", "/ping"), routes=routes,
            error_renderer=native_error, wrong_token_status=403)
