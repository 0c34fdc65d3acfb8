"""The OpenAI-compatible face: POST /v1/audio/transcriptions and /translations, GET /v1/models."""

from __future__ import annotations

from stt.http.faces.face import Face
from stt.http.faces.openai.errors import openai_error
from stt.http.faces.openai.routes import routes

FACE = Face(name="openai", prefixes=("/v1/audio", "/v1/models"), routes=routes, error_renderer=openai_error,
            wrong_token_status=401)
