"""OpenAI's Realtime API, transcription sessions: GET /v1/realtime?intent=transcription (``routes.py``: the
upgrade, ``connection.py``: the client events around the shared ``stt.live`` session core, ``config.py``: the
session configuration in its GA and beta shapes, ``events.py``: the server events)."""

from __future__ import annotations

from stt.http.faces.face import Face
from stt.http.faces.realtime import routes
from stt.http.faces.realtime.errors import http_error

FACE = Face(name="realtime", prefixes=(routes.PATH,), routes=routes.routes, error_renderer=http_error,
            wrong_token_status=401, setup=routes.setup)
