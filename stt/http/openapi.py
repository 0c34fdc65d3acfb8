"""The OpenAPI 3.1 description of every HTTP endpoint, generated from the route tables of the faces and of the
site (ops, page, docs): each handler carries its operation (``stt/http/apidoc.py``), built from the parameter
tables the validator uses.

``/openapi.json`` serves it and ``/docs`` renders it to HTML, so the parameters in the docs are by
construction the ones the server accepts.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from stt.http.apidoc import AUDIO_TYPES, SCHEMAS, operation_of
from stt.http.faces.registry import FACES
from stt.http.routes import docs, ops, page

__all__ = ["AUDIO_TYPES", "build_spec", "paths"]
VERSION = "1.0.0"


def _route_tables() -> list[Iterable[web.AbstractRouteDef]]:
    return [*(face.routes for face in FACES), ops.site_routes(), page.routes, docs.routes]


def paths() -> dict[str, Any]:
    """Every documented route, path -> method -> operation."""
    out: dict[str, dict[str, Any]] = {}
    for table in _route_tables():
        for route in table:
            if not isinstance(route, web.RouteDef):
                continue
            operation = operation_of(route.handler, route.path)
            if operation is not None:
                out.setdefault(route.path, {})[route.method.lower()] = operation
    return out


@functools.cache
def build_spec() -> dict[str, Any]:
    """The whole document; cached because it only depends on code."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Whisper speech-to-text server", "version": VERSION,
                 "description": "Self-hosted Whisper: a native API, OpenAI- and Deepgram-compatible endpoints. "
                                "Every endpoint but `/health`, `/ready`, `/openapi.json` and `/docs` needs "
                                "`Authorization: Token <token>` (or `Bearer <token>`)."},
        "servers": [{"url": "/"}],
        "tags": [{"name": "native"}, {"name": "openai"}, {"name": "deepgram"}, {"name": "ops"}, {"name": "docs"},
                 {"name": "live"}, {"name": "page"}],
        "security": [{"token": []}],
        "paths": paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "`Token <token>` or `Bearer <token>`"}},
        },
    }
