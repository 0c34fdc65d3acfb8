"""The Deepgram-compatible face: pre-recorded POST /v1/listen (``routes.py``) and the live WebSocket API at
GET /v1/listen and GET /listen (``live.py``: the route, ``connection.py``: the wire protocol around the
face-independent ``stt.live`` session, ``messages.py``: the messages sent)."""

from __future__ import annotations

from stt.http.faces.deepgram import live, routes as prerecorded
from stt.http.faces.deepgram.errors import deepgram_error
from stt.http.faces.face import Face
from stt.http.faces.native.errors import native_error

# Deepgram's SDKs raise AuthenticationError only on 401, so a wrong key is 401 on both paths.
FACE = Face(name="deepgram", prefixes=("/v1/listen",), routes=(*prerecorded.routes, *live.routes),
            error_renderer=deepgram_error, wrong_token_status=401, setup=live.setup)
# /listen: the live API at the path Deepgram's tutorials and the browser page use; errors in the native shape.
LIVE_FACE = Face(name="live", prefixes=("/listen",), routes=(), error_renderer=native_error, wrong_token_status=401)
